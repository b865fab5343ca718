# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Parse what ``nvidia-smi`` prints on a GPU host and derive the facts that decide tensor-parallel placement.

Pure Python on purpose (no Ansible imports): the module ``gpuinfer.serving.gpu_host_facts`` is a thin
wrapper, the unit tests feed real captures straight in, and the file can be imported by path on a host
that has no Ansible installed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import os
import re

# The order gpu_host_facts asks for; parse_query_gpu needs it to read ``--format=csv,noheader`` output.
QUERY_GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "memory.total",
    "memory.used",
    "memory.free",
    "pci.bus_id",
    "driver_version",
    "compute_cap",
    "mig.mode.current",
)

LINK_TYPES = ("NVLINK", "PIX", "PXB", "PHB", "NODE", "SYS")
# PIX/PXB mean the NIC hangs off the same PCIe switch tree as the GPU: GPUDirect RDMA runs at full speed,
# which is what NCCL_IB_HCA should favour for that GPU.
NIC_NEAR_LINK_TYPES = ("PIX", "PXB")

_UNAVAILABLE_VALUES = frozenset(("", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]", "[insufficient permissions]"))
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Header cells are lowercase field names, optionally with a unit ("memory.total [MiB]"); data cells never are.
_HEADER_CELL = re.compile(r"^[a-z][a-z0-9_.]*(\s*\[[^\]]*\])?$")
_HEADER_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")
_CUDA_VERSION = re.compile(r"CUDA Version\s*:\s*([0-9]+(?:\.[0-9]+)*|N/A)", re.IGNORECASE)
_DRIVER_VERSION = re.compile(r"Driver Version\s*:\s*([0-9]+(?:\.[0-9]+)*)", re.IGNORECASE)
_NVLINK_CELL = re.compile(r"^NV([0-9]+)$")
_DEVICE_LABEL = re.compile(r"^(GPU|NIC)([0-9]+)$")
_NIC_LEGEND_ENTRY = re.compile(r"^\s*(NIC[0-9]+)\s*:\s*(\S+)\s*$")
_MIG_DEVICE_ROW = re.compile(r"^\|\s*([0-9]+)\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)\s*\|\s*([0-9]+)\s*MiB\s*/\s*([0-9]+)\s*MiB")
_RATE_GBPS = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*Gb/sec")
_TRAILING_COLUMNS = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")


class GpuTopologyParseError(ValueError):
    """nvidia-smi printed something this parser does not understand; the message names the offending text."""


def _is_unavailable(value):
    return value is None or value.strip().lower() in _UNAVAILABLE_VALUES


def _clean(value):
    """Return the stripped value, or None for the placeholders nvidia-smi prints for missing data."""
    if _is_unavailable(value):
        return None
    return value.strip()


def _to_int(value, field, row_number):
    cleaned = _clean(value)
    if cleaned is None:
        return None
    try:
        # "143771 MiB" with units, "143771" with nounits.
        return int(cleaned.split()[0])
    except ValueError:
        raise GpuTopologyParseError(
            "nvidia-smi --query-gpu row %d: field %r is %r, expected an integer (optionally followed by a unit such as MiB)" % (row_number, field, value)
        )


def strip_ansi(text):
    """Remove the terminal escape sequences nvidia-smi prints around the topo -m header (ESC[4m ... ESC[0m)."""
    return _ANSI_ESCAPE.sub("", text)


def parse_query_gpu(text, fields=None):
    """Parse ``nvidia-smi --query-gpu=<fields> --format=csv[,noheader][,nounits]``.

    With a header line the columns are taken from it (units such as ``[MiB]`` are dropped from the names);
    without one, ``fields`` (default QUERY_GPU_FIELDS) gives the column order.
    Returns a list of GPU dicts sorted by index.
    """
    if text is None:
        raise GpuTopologyParseError("nvidia-smi --query-gpu printed nothing (no output captured)")
    lines = [line for line in strip_ansi(text).splitlines() if line.strip()]
    if not lines:
        raise GpuTopologyParseError("nvidia-smi --query-gpu printed no lines; expected one CSV line per GPU")

    rows = list(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    if rows[0] and all(_HEADER_CELL.match(cell.strip()) for cell in rows[0]):
        header = [_HEADER_UNIT.sub("", cell).strip().lower() for cell in rows[0]]
        rows = rows[1:]
    else:
        header = list(fields or QUERY_GPU_FIELDS)
    if "index" not in header:
        raise GpuTopologyParseError(
            "nvidia-smi --query-gpu header %r has no 'index' column; query with --query-gpu=%s" % (", ".join(header), ",".join(QUERY_GPU_FIELDS))
        )

    gpus = []
    for row_number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise GpuTopologyParseError(
                "nvidia-smi --query-gpu row %d has %d values but the header has %d columns (%s): %r"
                % (row_number, len(row), len(header), ", ".join(header), ",".join(row))
            )
        record = dict(zip(header, row))
        index = _to_int(record.get("index"), "index", row_number)
        if index is None:
            raise GpuTopologyParseError("nvidia-smi --query-gpu row %d has no GPU index: %r" % (row_number, ",".join(row)))
        mig_mode = _clean(record.get("mig.mode.current"))
        gpus.append(
            {
                "index": index,
                "uuid": _clean(record.get("uuid")),
                "name": _clean(record.get("name")),
                "memory_mib": _to_int(record.get("memory.total"), "memory.total", row_number),
                "memory_used_mib": _to_int(record.get("memory.used"), "memory.used", row_number),
                "memory_free_mib": _to_int(record.get("memory.free"), "memory.free", row_number),
                "pci_bus_id": _clean(record.get("pci.bus_id")),
                "driver_version": _clean(record.get("driver_version")),
                "compute_capability": _clean(record.get("compute_cap")),
                # GPUs without MIG support print [N/A]: they behave as "Disabled" for scheduling purposes.
                "mig_mode": mig_mode if mig_mode is not None else "N/A",
            }
        )

    indices = [gpu["index"] for gpu in gpus]
    if len(set(indices)) != len(indices):
        raise GpuTopologyParseError("nvidia-smi --query-gpu lists a GPU index twice: %s" % indices)
    return sorted(gpus, key=lambda gpu: gpu["index"])


def parse_cuda_version(text):
    """CUDA version from the plain ``nvidia-smi`` banner ("CUDA Version: 13.0") or ``nvidia-smi -q``."""
    match = _CUDA_VERSION.search(strip_ansi(text or ""))
    if not match or match.group(1).upper() == "N/A":
        return None
    return match.group(1)


def parse_driver_version(text):
    """Driver version from the plain ``nvidia-smi`` banner or ``nvidia-smi -q``."""
    match = _DRIVER_VERSION.search(strip_ansi(text or ""))
    return match.group(1) if match else None


def parse_mig_devices(text):
    """MIG instances from the "MIG devices:" table of the plain ``nvidia-smi`` banner.

    Returns a list of {gpu, gi_id, ci_id, mig_dev, memory_used_mib, memory_mib}; empty when no MIG device exists.
    """
    devices = []
    in_table = False
    for line in strip_ansi(text or "").splitlines():
        if "MIG devices:" in line:
            in_table = True
            continue
        if in_table and "Processes:" in line:
            break
        if not in_table:
            continue
        match = _MIG_DEVICE_ROW.match(line)
        if match:
            gpu, gi_id, ci_id, mig_dev, used, total = (int(group) for group in match.groups())
            devices.append({"gpu": gpu, "gi_id": gi_id, "ci_id": ci_id, "mig_dev": mig_dev, "memory_used_mib": used, "memory_mib": total})
    return devices


def _split_topo_line(line, tab_separated, is_header=False):
    if tab_separated:
        return line.split("\t")
    # Copies pasted from terminals lose the tabs; cells never contain spaces, header names may ("CPU Affinity").
    if is_header:
        return re.split(r"\s{2,}", line.strip())
    return line.split()


def _parse_link_cell(cell, row_label, column_label):
    value = cell.strip()
    if value == "X":
        return {"type": "SELF", "nvlinks": 0, "raw": value}
    nvlink = _NVLINK_CELL.match(value)
    if nvlink:
        return {"type": "NVLINK", "nvlinks": int(nvlink.group(1)), "raw": value}
    if value in LINK_TYPES:
        return {"type": value, "nvlinks": 0, "raw": value}
    # SOC is what drivers before 400 printed instead of SYS.
    if value == "SOC":
        return {"type": "SYS", "nvlinks": 0, "raw": value}
    raise GpuTopologyParseError(
        "nvidia-smi topo -m: cell %s/%s is %r; expected X, NV<n>, %s" % (row_label, column_label, cell, ", ".join(LINK_TYPES[1:]))
    )


def _parse_numa_node(value):
    cleaned = _clean(value)
    if cleaned is None:
        return None
    try:
        return int(cleaned)
    except ValueError:
        # Hosts where a GPU spans nodes print a range such as "0-1": keep the text, it is still useful.
        return cleaned


def parse_topo_matrix(text):
    """Parse ``nvidia-smi topo -m`` exactly as the tool prints it.

    Returns {"devices": ["GPU0", ..., "NIC0", ...], "nic_names": {"NIC0": "mlx5_0"},
             "matrix": {row_label: {column_label: {type, nvlinks, raw}}},
             "affinity": {row_label: {"cpu_affinity", "numa_affinity", "gpu_numa_id"}}}.
    """
    if not text or not text.strip():
        raise GpuTopologyParseError("nvidia-smi topo -m printed nothing; expected the GPU topology matrix")
    lines = strip_ansi(text).splitlines()

    header_at = None
    for position, line in enumerate(lines):
        if line.strip() and line.strip().split()[0] == "GPU0":
            header_at = position
            break
    if header_at is None:
        raise GpuTopologyParseError("nvidia-smi topo -m: no header line starting with GPU0 in %r" % text[:200])

    header_line = lines[header_at]
    tab_separated = "\t" in header_line
    header = [cell.strip() for cell in _split_topo_line(header_line, tab_separated, is_header=True) if cell.strip()]
    device_columns = []
    trailing_columns = []
    for name in header:
        if name in _TRAILING_COLUMNS:
            trailing_columns.append(name)
        elif trailing_columns:
            raise GpuTopologyParseError("nvidia-smi topo -m: device column %r after the affinity columns in header %r" % (name, header_line))
        else:
            device_columns.append(name)

    matrix = {}
    affinity = {}
    for line in lines[header_at + 1:]:
        if not line.strip():
            # The matrix ends at the first blank line; the Legend follows.
            break
        cells = _split_topo_line(line, tab_separated)
        row_label = cells[0].strip()
        if not row_label:
            raise GpuTopologyParseError("nvidia-smi topo -m: matrix row without a device name: %r" % line)
        link_cells = cells[1:1 + len(device_columns)]
        if len(link_cells) != len(device_columns):
            raise GpuTopologyParseError(
                "nvidia-smi topo -m: row %s has %d link cells but the header names %d devices (%s): %r"
                % (row_label, len(link_cells), len(device_columns), ", ".join(device_columns), line)
            )
        matrix[row_label] = {}
        for column_label, cell in zip(device_columns, link_cells):
            matrix[row_label][column_label] = _parse_link_cell(cell, row_label, column_label)
        # nvidia-smi pads the affinity part with empty tab fields (e.g. "0-31\t0\t\tN/A", and only tabs on NIC rows),
        # so the values are matched to the header names in order after dropping the empty fields.
        trailing_values = [cell.strip() for cell in cells[1 + len(device_columns):] if cell.strip()]
        if trailing_values and len(trailing_values) > len(trailing_columns):
            raise GpuTopologyParseError(
                "nvidia-smi topo -m: row %s has %d values after the link cells but the header names only %s: %r"
                % (row_label, len(trailing_values), trailing_columns or "no affinity columns", line)
            )
        values = dict(zip(trailing_columns, trailing_values))
        affinity[row_label] = {
            "cpu_affinity": _clean(values.get("CPU Affinity")),
            "numa_affinity": _parse_numa_node(values.get("NUMA Affinity")),
            "gpu_numa_id": _parse_numa_node(values.get("GPU NUMA ID")),
        }

    missing_rows = [label for label in device_columns if label not in matrix]
    if missing_rows:
        raise GpuTopologyParseError("nvidia-smi topo -m: the matrix has no row for %s named in the header (output cut short?)" % ", ".join(missing_rows))

    nic_names = {}
    in_nic_legend = False
    for line in lines:
        if line.strip().startswith("NIC Legend"):
            in_nic_legend = True
            continue
        if in_nic_legend:
            entry = _NIC_LEGEND_ENTRY.match(line)
            if entry:
                nic_names[entry.group(1)] = entry.group(2)
            elif line.strip():
                in_nic_legend = False
    for label in device_columns:
        if not _DEVICE_LABEL.match(label):
            # Drivers before the NIC Legend existed used the RDMA device name itself as the column header.
            nic_names.setdefault(label, label)

    return {"devices": device_columns, "nic_names": nic_names, "matrix": matrix, "affinity": affinity}


def _gpu_labels(topo):
    labels = {}
    for label in topo["devices"]:
        match = _DEVICE_LABEL.match(label)
        if match and match.group(1) == "GPU":
            labels[int(match.group(2))] = label
    return labels


def gpu_links(topo):
    """Pairwise GPU links, one dict per unordered pair: {a, b, type, nvlinks, raw} with a < b."""
    labels = _gpu_labels(topo)
    links = []
    indices = sorted(labels)
    for position, a in enumerate(indices):
        for b in indices[position + 1:]:
            cell = topo["matrix"][labels[a]][labels[b]]
            links.append({"a": a, "b": b, "type": cell["type"], "nvlinks": cell["nvlinks"], "raw": cell["raw"]})
    return links


def _maximal_cliques(nodes, adjacency):
    """Bron-Kerbosch with pivoting; node counts on one host are small (<= 16), so recursion depth is not a concern."""
    cliques = []

    def expand(clique, candidates, excluded):
        if not candidates and not excluded:
            cliques.append(sorted(clique))
            return
        pivot = max(candidates | excluded, key=lambda node: len(adjacency[node] & candidates))
        for node in sorted(candidates - adjacency[pivot]):
            expand(clique | {node}, candidates & adjacency[node], excluded & adjacency[node])
            candidates = candidates - {node}
            excluded = excluded | {node}

    expand(set(), set(nodes), set())
    return cliques


def nvlink_islands(links, gpu_indices, excluded_gpus=()):
    """Groups of at least two GPUs where every pair is joined by NVLink (maximal cliques), largest first.

    Islands can overlap on partial meshes (e.g. hybrid cube-mesh boards); every maximal group is listed.
    GPUs in ``excluded_gpus`` (MIG enabled: no peer-to-peer at all) are left out.
    """
    usable = [index for index in gpu_indices if index not in set(excluded_gpus)]
    adjacency = dict((index, set()) for index in usable)
    for link in links:
        if link["type"] == "NVLINK" and link["a"] in adjacency and link["b"] in adjacency:
            adjacency[link["a"]].add(link["b"])
            adjacency[link["b"]].add(link["a"])
    connected = [index for index in usable if adjacency[index]]
    islands = [clique for clique in _maximal_cliques(connected, adjacency) if len(clique) >= 2]
    return sorted(islands, key=lambda island: (-len(island), island))


def max_nvlink_tp(islands):
    """Largest power of two that fits in the largest island: tensor parallel sizes must divide attention heads."""
    largest = max([len(island) for island in islands] or [1])
    size = 1
    while size * 2 <= largest:
        size *= 2
    return size


def all_pairs_nvlink(links, gpu_count):
    """True when the host has at least two GPUs and every pair is joined by NVLink."""
    return gpu_count >= 2 and bool(links) and all(link["type"] == "NVLINK" for link in links)


def nic_affinity(topo):
    """NICs from the matrix with the GPUs they sit close to.

    Returns a list of {label, name, near_gpus, links: [{gpu, type}]}; ``near_gpus`` are the GPUs
    whose path to the NIC is PIX or PXB (same PCIe switch tree), the ones NCCL_IB_HCA should pair with that NIC.
    """
    labels = _gpu_labels(topo)
    nics = []
    for label in topo["devices"]:
        match = _DEVICE_LABEL.match(label)
        if match and match.group(1) == "GPU":
            continue
        row = topo["matrix"][label]
        # A list rather than a dict keyed by GPU index: facts travel as JSON, where integer keys turn into strings.
        links = [{"gpu": index, "type": row[gpu_label]["type"]} for index, gpu_label in sorted(labels.items())]
        near = [link["gpu"] for link in links if link["type"] in NIC_NEAR_LINK_TYPES]
        nics.append(
            {
                "label": label,
                "name": topo["nic_names"].get(label, label),
                "near_gpus": near,
                "links": links,
            }
        )
    return nics


def gpu_affinity(topo):
    """CPU and NUMA affinity per GPU, plus the NICs close to it: list of {gpu, cpu_affinity, numa_node, gpu_numa_id, near_nics}."""
    labels = _gpu_labels(topo)
    nics = nic_affinity(topo)
    result = []
    for index, label in sorted(labels.items()):
        values = topo["affinity"].get(label, {})
        result.append(
            {
                "gpu": index,
                "cpu_affinity": values.get("cpu_affinity"),
                "numa_node": values.get("numa_affinity"),
                "gpu_numa_id": values.get("gpu_numa_id"),
                "near_nics": [nic["name"] for nic in nics if index in nic["near_gpus"]],
            }
        )
    return result


def build_host_facts(query_gpu_text, topo_text, smi_text=None, query_fields=None):
    """Everything gpu_host_facts reports that comes from nvidia-smi, as a plain dict.

    ``query_gpu_text``: output of --query-gpu; ``topo_text``: output of ``topo -m``;
    ``smi_text``: the plain banner (for the CUDA version and MIG devices), optional.
    """
    gpus = parse_query_gpu(query_gpu_text, query_fields)
    topo = parse_topo_matrix(topo_text)
    topo_gpus = sorted(_gpu_labels(topo))
    queried = [gpu["index"] for gpu in gpus]
    if topo_gpus != queried:
        raise GpuTopologyParseError(
            "nvidia-smi topo -m lists GPUs %s but --query-gpu lists %s; both must describe the same GPUs" % (topo_gpus, queried)
        )

    links = gpu_links(topo)
    mig_enabled = [gpu["index"] for gpu in gpus if (gpu["mig_mode"] or "").lower() == "enabled"]
    islands = nvlink_islands(links, queried, excluded_gpus=mig_enabled)
    affinity = gpu_affinity(topo)
    nics = nic_affinity(topo)

    driver_versions = sorted(set(gpu["driver_version"] for gpu in gpus if gpu["driver_version"]))
    driver_version = driver_versions[0] if driver_versions else parse_driver_version(smi_text)
    mig_devices = parse_mig_devices(smi_text)
    for gpu in gpus:
        gpu["mig_devices"] = len([device for device in mig_devices if device["gpu"] == gpu["index"]])

    numa_nodes = sorted(set(entry["numa_node"] for entry in affinity if isinstance(entry["numa_node"], int)))
    return {
        "gpus": gpus,
        "gpu_count": len(gpus),
        "gpu_products": sorted(set(gpu["name"] for gpu in gpus if gpu["name"])),
        "driver_version": driver_version,
        "cuda_version": parse_cuda_version(smi_text),
        "links": links,
        "nvlink_islands": islands,
        "max_nvlink_tp": max_nvlink_tp(islands),
        "all_pairs_nvlink": all_pairs_nvlink(links, len(gpus)),
        "mig_enabled_gpus": mig_enabled,
        "mig_devices": mig_devices,
        "nics": nics,
        "nccl_ib_hca": [nic["name"] for nic in nics if nic["near_gpus"]],
        "numa": affinity,
        "numa_nodes": numa_nodes,
    }


def _read_sysfs_value(path):
    try:
        with open(path, "r") as handle:
            return handle.read().strip()
    except (IOError, OSError):
        # Unreadable attributes (permissions, a device going away mid-scan) are reported as unknown, not fatal.
        return None


def _sysfs_state(value):
    """sysfs prints port states as "4: ACTIVE"; keep the name."""
    if value is None:
        return None
    return value.split(":", 1)[1].strip() if ":" in value else value


def read_infiniband_sysfs(path="/sys/class/infiniband"):
    """RDMA devices from /sys/class/infiniband: [{name, node_guid, fw_ver, hca_type, numa_node, ports: [...]}].

    Each port: {port, state, phys_state, rate, rate_gbps, link_layer}. A missing folder means no RDMA stack
    (no devices), not an error.
    """
    if not os.path.isdir(path):
        return []
    devices = []
    for name in sorted(os.listdir(path)):
        device_path = os.path.join(path, name)
        if not os.path.isdir(device_path):
            continue
        numa_text = _read_sysfs_value(os.path.join(device_path, "device", "numa_node"))
        numa_node = int(numa_text) if numa_text is not None and re.match(r"^-?[0-9]+$", numa_text) else None
        ports = []
        ports_path = os.path.join(device_path, "ports")
        port_names = os.listdir(ports_path) if os.path.isdir(ports_path) else []
        for port in sorted(port_names, key=lambda value: int(value) if value.isdigit() else value):
            port_path = os.path.join(ports_path, port)
            rate = _read_sysfs_value(os.path.join(port_path, "rate"))
            rate_match = _RATE_GBPS.match(rate or "")
            ports.append(
                {
                    "port": int(port) if port.isdigit() else port,
                    "state": _sysfs_state(_read_sysfs_value(os.path.join(port_path, "state"))),
                    "phys_state": _sysfs_state(_read_sysfs_value(os.path.join(port_path, "phys_state"))),
                    "rate": rate,
                    "rate_gbps": float(rate_match.group(1)) if rate_match else None,
                    "link_layer": _read_sysfs_value(os.path.join(port_path, "link_layer")),
                }
            )
        devices.append(
            {
                "name": name,
                "node_guid": _read_sysfs_value(os.path.join(device_path, "node_guid")),
                "fw_ver": _read_sysfs_value(os.path.join(device_path, "fw_ver")),
                "hca_type": _read_sysfs_value(os.path.join(device_path, "hca_type")),
                # -1 is what the kernel reports when the platform gives no NUMA information.
                "numa_node": numa_node if numa_node is not None and numa_node >= 0 else None,
                "ports": ports,
                "active": any(port["state"] == "ACTIVE" for port in ports),
            }
        )
    return devices


def merge_rdma(facts, rdma_devices):
    """Add the sysfs view of the RDMA devices to the nvidia-smi facts.

    ``nccl_ib_hca`` keeps the NICs close to a GPU (PIX/PXB) and drops those whose ports are all down, since
    NCCL would otherwise try them and time out; a NIC sysfs does not know about stays (no evidence either way).
    """
    by_name = dict((device["name"], device) for device in rdma_devices)
    for nic in facts.get("nics", []):
        device = by_name.get(nic["name"])
        nic["active"] = device["active"] if device else None
        nic["link_layer"] = sorted(set(port["link_layer"] for port in device["ports"] if port["link_layer"])) if device else []
    facts["rdma_devices"] = rdma_devices
    facts["rdma_active"] = any(device["active"] for device in rdma_devices)
    facts["infiniband_active"] = any(
        port["state"] == "ACTIVE" and port["link_layer"] == "InfiniBand" for device in rdma_devices for port in device["ports"]
    )
    facts["nccl_ib_hca"] = [nic["name"] for nic in facts.get("nics", []) if nic["near_gpus"] and nic.get("active") is not False]
    return facts
