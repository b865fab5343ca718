# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Parsers of gpu_topology on real nvidia-smi captures (h200x2, device-1gpu) and hand-written hosts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import gpu_topology
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster.gpu_topology import GpuTopologyParseError
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir


FIXTURES = fixture_dir("gpu_hosts", "h200x2")
pytestmark = pytest.mark.skipif(FIXTURES is None, reason="tests/fixtures/gpu_hosts is only in the repository checkout, not in an ansible-test copy")
HOSTS = ["h200x2", "device-1gpu", "dgx-h100-8", "l40s-pcie-4", "a100-mig", "h100-pcie-nvlink-pairs"]


def read(host, name):
    with open(os.path.join(FIXTURES, host, name), "r") as handle:
        return handle.read()


def facts_for(host):
    facts = gpu_topology.build_host_facts(read(host, "query_gpu.csv"), read(host, "topo_m.txt"), read(host, "smi.txt"))
    return gpu_topology.merge_rdma(facts, gpu_topology.read_infiniband_sysfs(os.path.join(FIXTURES, host, "infiniband")))


def link(facts, a, b):
    matches = [entry for entry in facts["links"] if (entry["a"], entry["b"]) == (a, b)]
    assert len(matches) == 1, "expected exactly one link entry for GPU%d-GPU%d" % (a, b)
    return matches[0]


# ---------------------------------------------------------------- real capture: 2 x H200


def test_h200x2_capture_keeps_the_ansi_codes_of_the_real_tool():
    raw = read("h200x2", "topo_m.txt")
    assert "\x1b[4mGPU0" in raw and "GPU NUMA ID\x1b[0m" in raw
    assert "\t" in raw


def test_h200x2_gpus():
    facts = facts_for("h200x2")
    assert facts["gpu_count"] == 2
    assert [gpu["index"] for gpu in facts["gpus"]] == [0, 1]
    first = facts["gpus"][0]
    assert first["name"] == "NVIDIA H200"
    assert first["uuid"] == "GPU-c3a13d1d-449f-2b65-8cc7-9b3d1b9fb079"
    assert first["memory_mib"] == 143771
    assert first["memory_free_mib"] == 143156
    assert first["compute_capability"] == "9.0"
    assert first["pci_bus_id"] == "00000000:00:06.0"
    assert first["mig_mode"] == "Disabled"
    assert facts["gpus"][1]["pci_bus_id"] == "00000000:00:07.0"
    assert facts["driver_version"] == "580.159.04"
    assert facts["cuda_version"] == "13.0"
    assert facts["gpu_products"] == ["NVIDIA H200"]


def test_h200x2_topology():
    facts = facts_for("h200x2")
    assert facts["links"] == [{"a": 0, "b": 1, "type": "NVLINK", "nvlinks": 18, "raw": "NV18"}]
    assert facts["nvlink_islands"] == [[0, 1]]
    assert facts["max_nvlink_tp"] == 2
    assert facts["all_pairs_nvlink"] is True
    # "0-31\t0\t\tN/A": the empty field nvidia-smi inserts must not shift N/A into the NUMA column.
    assert facts["numa"] == [
        {"gpu": 0, "cpu_affinity": "0-31", "numa_node": 0, "gpu_numa_id": None, "near_nics": []},
        {"gpu": 1, "cpu_affinity": "0-31", "numa_node": 0, "gpu_numa_id": None, "near_nics": []},
    ]
    assert facts["nics"] == [] and facts["nccl_ib_hca"] == []


def test_h200x2_noheader_nounits_with_explicit_fields():
    gpus = gpu_topology.parse_query_gpu(read("h200x2", "query_gpu_noheader.csv"), fields=["index", "name", "memory.total", "compute_cap", "driver_version"])
    assert [(gpu["index"], gpu["name"], gpu["memory_mib"], gpu["compute_capability"], gpu["driver_version"]) for gpu in gpus] == [
        (0, "NVIDIA H200", 143771, "9.0", "580.159.04"),
        (1, "NVIDIA H200", 143771, "9.0", "580.159.04"),
    ]


def test_noheader_default_field_order_matches_the_module_query():
    lines = read("h200x2", "query_gpu.csv").splitlines()[1:]
    without_units = "\n".join(line.replace(" MiB", "") for line in lines)
    assert gpu_topology.parse_query_gpu(without_units) == gpu_topology.parse_query_gpu(read("h200x2", "query_gpu.csv"))


def test_h200x2_versions_from_nvidia_smi_q():
    text = read("h200x2", "smi_q.txt")
    assert gpu_topology.parse_cuda_version(text) == "13.0"
    assert gpu_topology.parse_driver_version(text) == "580.159.04"


# ---------------------------------------------------------------- real capture: the device machine (1 x H200)


def test_device_single_h200():
    facts = facts_for("device-1gpu")
    assert facts["gpu_count"] == 1
    assert facts["gpus"][0]["name"] == "NVIDIA H200"
    assert facts["gpus"][0]["memory_mib"] == 143771
    assert facts["gpus"][0]["compute_capability"] == "9.0"
    assert facts["links"] == []
    assert facts["nvlink_islands"] == []
    assert facts["max_nvlink_tp"] == 1
    assert facts["all_pairs_nvlink"] is False
    assert facts["numa"][0]["cpu_affinity"] == "0-15"
    assert facts["driver_version"] == "580.159.04" and facts["cuda_version"] == "13.0"


def test_device_parse_here_matches_the_parse_on_the_device():
    with open(os.path.join(FIXTURES, "device-1gpu", "facts_on_device.json")) as handle:
        on_device = json.load(handle)
    here = json.loads(json.dumps(facts_for("device-1gpu")))
    for key in ("gpus", "gpu_count", "driver_version", "cuda_version", "links", "nvlink_islands", "max_nvlink_tp", "all_pairs_nvlink", "numa"):
        assert here[key] == on_device[key], key


# ---------------------------------------------------------------- hand-written hosts


def test_dgx_h100_nvswitch_is_one_island_of_eight():
    facts = facts_for("dgx-h100-8")
    assert facts["gpu_count"] == 8
    assert len(facts["links"]) == 28
    assert all(entry["type"] == "NVLINK" and entry["nvlinks"] == 18 for entry in facts["links"])
    assert facts["nvlink_islands"] == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert facts["max_nvlink_tp"] == 8
    assert facts["all_pairs_nvlink"] is True
    assert facts["numa_nodes"] == [0, 1]
    assert facts["numa"][0]["cpu_affinity"] == "0-55,112-167"
    assert facts["numa"][7]["numa_node"] == 1


def test_dgx_h100_nic_affinity():
    facts = facts_for("dgx-h100-8")
    assert [nic["name"] for nic in facts["nics"]] == ["mlx5_%d" % index for index in range(8)]
    for index in range(8):
        assert facts["numa"][index]["near_nics"] == ["mlx5_%d" % index]
        assert facts["nics"][index]["near_gpus"] == [index]
    nic0 = dict((entry["gpu"], entry["type"]) for entry in facts["nics"][0]["links"])
    assert nic0 == {0: "PXB", 1: "NODE", 2: "NODE", 3: "NODE", 4: "SYS", 5: "SYS", 6: "SYS", 7: "SYS"}


def test_dgx_h100_infiniband_sysfs():
    facts = facts_for("dgx-h100-8")
    devices = dict((device["name"], device) for device in facts["rdma_devices"])
    assert sorted(devices) == ["mlx5_%d" % index for index in range(8)]
    port = devices["mlx5_0"]["ports"][0]
    assert port == {"port": 1, "state": "ACTIVE", "phys_state": "LinkUp", "rate": "400 Gb/sec (4X NDR)", "rate_gbps": 400.0, "link_layer": "InfiniBand"}
    assert devices["mlx5_0"]["numa_node"] == 0 and devices["mlx5_4"]["numa_node"] == 1
    assert devices["mlx5_0"]["hca_type"] == "MT4129"
    assert devices["mlx5_5"]["active"] is False and devices["mlx5_5"]["ports"][0]["state"] == "DOWN"
    assert facts["infiniband_active"] is True and facts["rdma_active"] is True
    # The port that is down would make NCCL hang on GPU5's rail: it is not offered for NCCL_IB_HCA.
    assert facts["nccl_ib_hca"] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_4", "mlx5_6", "mlx5_7"]


def test_dgx_without_sysfs_keeps_every_near_nic():
    facts = gpu_topology.build_host_facts(read("dgx-h100-8", "query_gpu.csv"), read("dgx-h100-8", "topo_m.txt"), read("dgx-h100-8", "smi.txt"))
    gpu_topology.merge_rdma(facts, [])
    assert facts["nccl_ib_hca"] == ["mlx5_%d" % index for index in range(8)]
    assert facts["rdma_active"] is False


def test_l40s_pcie_only_has_no_island():
    facts = facts_for("l40s-pcie-4")
    assert facts["gpu_count"] == 4
    assert facts["gpus"][0]["memory_mib"] == 46068
    assert facts["gpus"][0]["compute_capability"] == "8.9"
    # GPUs without MIG support print [N/A] for the MIG mode.
    assert facts["gpus"][0]["mig_mode"] == "N/A"
    assert facts["nvlink_islands"] == []
    assert facts["max_nvlink_tp"] == 1
    assert facts["all_pairs_nvlink"] is False
    assert link(facts, 0, 1)["type"] == "PHB"
    assert link(facts, 2, 3)["type"] == "NODE"
    assert link(facts, 0, 2)["type"] == "SYS" and link(facts, 1, 3)["type"] == "SYS"
    assert set(entry["type"] for entry in facts["links"]) == {"PHB", "NODE", "SYS"}
    assert all(entry["nvlinks"] == 0 for entry in facts["links"])


def test_l40s_roce_nics_are_not_infiniband_and_not_near():
    facts = facts_for("l40s-pcie-4")
    assert [nic["name"] for nic in facts["nics"]] == ["mlx5_0", "mlx5_1"]
    assert all(nic["near_gpus"] == [] for nic in facts["nics"])
    assert facts["nics"][0]["link_layer"] == ["Ethernet"]
    assert facts["rdma_active"] is True
    assert facts["infiniband_active"] is False
    assert facts["nccl_ib_hca"] == []
    assert facts["rdma_devices"][0]["ports"][0]["rate_gbps"] == 100.0


def test_h100_pcie_bridges_make_two_islands():
    facts = facts_for("h100-pcie-nvlink-pairs")
    assert facts["gpus"][0]["name"] == "NVIDIA H100 PCIe"
    assert facts["nvlink_islands"] == [[0, 1], [2, 3]]
    assert facts["max_nvlink_tp"] == 2
    assert facts["all_pairs_nvlink"] is False
    assert link(facts, 0, 1) == {"a": 0, "b": 1, "type": "NVLINK", "nvlinks": 12, "raw": "NV12"}
    assert link(facts, 1, 2)["type"] == "SYS"
    assert facts["numa_nodes"] == [0, 1]


def test_a100_mig_gpus_are_left_out_of_islands():
    facts = facts_for("a100-mig")
    assert [gpu["mig_mode"] for gpu in facts["gpus"]] == ["Disabled", "Disabled", "Enabled", "Enabled"]
    assert facts["mig_enabled_gpus"] == [2, 3]
    # All four are NV4 to each other, but MIG turns peer-to-peer off on GPUs 2 and 3.
    assert facts["all_pairs_nvlink"] is True
    assert facts["nvlink_islands"] == [[0, 1]]
    assert facts["max_nvlink_tp"] == 2
    assert [gpu["mig_devices"] for gpu in facts["gpus"]] == [0, 0, 2, 7]
    assert facts["mig_devices"][0] == {"gpu": 2, "gi_id": 1, "ci_id": 0, "mig_dev": 0, "memory_used_mib": 12, "memory_mib": 19968}
    assert facts["cuda_version"] == "12.2" and facts["driver_version"] == "535.216.03"


@pytest.mark.parametrize("host", HOSTS)
def test_every_fixture_is_consistent(host):
    facts = facts_for(host)
    count = facts["gpu_count"]
    assert count == len(facts["gpus"]) == len(facts["numa"])
    assert len(facts["links"]) == count * (count - 1) // 2
    assert all(entry["type"] in gpu_topology.LINK_TYPES for entry in facts["links"])
    assert all(gpu["uuid"].startswith("GPU-") for gpu in facts["gpus"])
    assert facts["cuda_version"] is not None
    json.dumps(facts)


@pytest.mark.parametrize("host", HOSTS)
def test_truncated_output_raises_a_parse_error_not_an_index_error(host):
    """Every prefix of real output either parses or fails with GpuTopologyParseError (a ValueError)."""
    for name, parse in (("topo_m.txt", gpu_topology.parse_topo_matrix), ("query_gpu.csv", gpu_topology.parse_query_gpu)):
        lines = read(host, name).splitlines(True)
        for cut in range(len(lines) + 1):
            text = "".join(lines[:cut])
            chopped = text[:-3] if len(text) > 3 else text
            for attempt in (text, chopped):
                try:
                    parse(attempt)
                except GpuTopologyParseError as error:
                    assert isinstance(error, ValueError)
                    assert str(error)


# ---------------------------------------------------------------- formats seen in the wild


PASTED_WITHOUT_TABS = """        GPU0    GPU1    GPU2    GPU3    NIC0    NIC1    CPU Affinity    NUMA Affinity   GPU NUMA ID
GPU0     X      NV12    SYS     SYS     PXB     SYS     48-63,176-191   3               N/A
GPU1    NV12     X      SYS     SYS     PXB     SYS     48-63,176-191   3               N/A
GPU2    SYS     SYS      X      NV12    SYS     PIX     16-31,144-159   1               N/A
GPU3    SYS     SYS     NV12     X      SYS     PIX     16-31,144-159   1               N/A
NIC0    PXB     PXB     SYS     SYS      X      SYS
NIC1    SYS     SYS     PIX     PIX     SYS      X

Legend:

  X    = Self
  NV#  = Connection traversing a bonded set of # NVLinks

NIC Legend:

  NIC0: mlx5_0
  NIC1: mlx5_bond_0
"""


def test_space_separated_copy_is_parsed_too():
    topo = gpu_topology.parse_topo_matrix(PASTED_WITHOUT_TABS)
    links = gpu_topology.gpu_links(topo)
    assert gpu_topology.nvlink_islands(links, [0, 1, 2, 3]) == [[0, 1], [2, 3]]
    nics = gpu_topology.nic_affinity(topo)
    assert [(nic["name"], nic["near_gpus"]) for nic in nics] == [("mlx5_0", [0, 1]), ("mlx5_bond_0", [2, 3])]
    affinity = gpu_topology.gpu_affinity(topo)
    assert affinity[2]["cpu_affinity"] == "16-31,144-159" and affinity[2]["numa_node"] == 1


OLD_DRIVER_NIC_COLUMNS = """\t\x1b[4mGPU0\tGPU1\tmlx5_0\tCPU Affinity\x1b[0m
GPU0\t X \tSOC\tPHB\t0-11
GPU1\tSOC\t X \tSOC\t12-23
mlx5_0\tPHB\tSOC\t X \t

Legend:

  X    = Self
  SOC  = Connection traversing PCIe as well as the SMP link between CPU sockets(e.g. QPI)
"""


def test_old_driver_uses_device_names_as_columns_and_soc():
    topo = gpu_topology.parse_topo_matrix(OLD_DRIVER_NIC_COLUMNS)
    links = gpu_topology.gpu_links(topo)
    assert links == [{"a": 0, "b": 1, "type": "SYS", "nvlinks": 0, "raw": "SOC"}]
    nics = gpu_topology.nic_affinity(topo)
    assert nics[0]["name"] == "mlx5_0" and nics[0]["near_gpus"] == []
    assert gpu_topology.gpu_affinity(topo)[1] == {"gpu": 1, "cpu_affinity": "12-23", "numa_node": None, "gpu_numa_id": None, "near_nics": []}


# ---------------------------------------------------------------- derived facts on synthetic meshes


def mesh(pairs, count):
    nvlinked = set(tuple(sorted(pair)) for pair in pairs)
    return [
        {"a": a, "b": b, "type": "NVLINK" if (a, b) in nvlinked else "SYS", "nvlinks": 2 if (a, b) in nvlinked else 0}
        for a in range(count)
        for b in range(a + 1, count)
    ]


def test_hybrid_cube_mesh_gives_overlapping_islands_of_four():
    # DGX-1 (V100): two fully connected quads plus one link from each GPU to its twin in the other quad.
    quads = [(a, b) for quad in ((0, 1, 2, 3), (4, 5, 6, 7)) for a in quad for b in quad if a < b]
    twins = [(index, index + 4) for index in range(4)]
    islands = gpu_topology.nvlink_islands(mesh(quads + twins, 8), list(range(8)))
    assert islands[:2] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [0, 4] in islands and all(len(island) >= 2 for island in islands)
    assert gpu_topology.max_nvlink_tp(islands) == 4


def test_max_tp_is_a_power_of_two_inside_the_largest_island():
    assert gpu_topology.max_nvlink_tp([]) == 1
    assert gpu_topology.max_nvlink_tp([[0, 1, 2]]) == 2
    assert gpu_topology.max_nvlink_tp([[0, 1, 2, 3, 4, 5]]) == 4
    assert gpu_topology.max_nvlink_tp([[0, 1], list(range(2, 10))]) == 8


def test_a_missing_link_splits_a_full_mesh():
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4) if (a, b) != (0, 3)]
    islands = gpu_topology.nvlink_islands(mesh(pairs, 4), [0, 1, 2, 3])
    assert islands == [[0, 1, 2], [1, 2, 3]]
    assert gpu_topology.all_pairs_nvlink(mesh(pairs, 4), 4) is False


def test_single_gpu_is_not_all_pairs_nvlink():
    assert gpu_topology.all_pairs_nvlink([], 1) is False


# ---------------------------------------------------------------- clear errors


def test_errors_are_value_errors_naming_the_problem():
    assert issubclass(GpuTopologyParseError, ValueError)
    cases = [
        (gpu_topology.parse_topo_matrix, "", "printed nothing"),
        (gpu_topology.parse_topo_matrix, "No devices were found\n", "no header line starting with GPU0"),
        (gpu_topology.parse_topo_matrix, "\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tNV18\n", "row GPU1 has 1 link cells but the header names 2"),
        (gpu_topology.parse_topo_matrix, "\tGPU0\tGPU1\nGPU0\t X \tNVX\nGPU1\tNVX\t X \n", "cell GPU0/GPU1 is 'NVX'"),
        (gpu_topology.parse_topo_matrix, "\tGPU0\tGPU1\nGPU0\t X \tNV2\n", "the matrix has no row for GPU1"),
        (gpu_topology.parse_query_gpu, "", "printed no lines"),
        (gpu_topology.parse_query_gpu, "index, name\n0, A, extra\n", "row 1 has 3 values but the header has 2"),
        (gpu_topology.parse_query_gpu, "index, memory.total [MiB]\n0, lots MiB\n", "field 'memory.total' is 'lots MiB'"),
        (gpu_topology.parse_query_gpu, "name, uuid\nA, GPU-1\n", "no 'index' column"),
        (gpu_topology.parse_query_gpu, "index, name\n0, A\n0, B\n", "lists a GPU index twice"),
    ]
    for parse, text, expected in cases:
        with pytest.raises(GpuTopologyParseError) as caught:
            parse(text)
        assert expected in str(caught.value)


def test_query_and_topology_must_describe_the_same_gpus():
    with pytest.raises(GpuTopologyParseError) as caught:
        gpu_topology.build_host_facts(read("dgx-h100-8", "query_gpu.csv"), read("h200x2", "topo_m.txt"), None)
    assert "topo -m lists GPUs [0, 1] but --query-gpu lists [0, 1, 2, 3, 4, 5, 6, 7]" in str(caught.value)


def test_unavailable_values_become_none():
    gpus = gpu_topology.parse_query_gpu(
        "index, uuid, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], pci.bus_id, driver_version, compute_cap, mig.mode.current\n"
        "0, GPU-x, Tesla T4, 15360 MiB, [N/A], [Not Supported], 00000000:00:04.0, 535.54.03, 7.5, [N/A]\n"
    )
    assert gpus[0]["memory_used_mib"] is None and gpus[0]["memory_free_mib"] is None
    assert gpus[0]["mig_mode"] == "N/A"


def test_cuda_version_absent_or_na():
    assert gpu_topology.parse_cuda_version(None) is None
    assert gpu_topology.parse_cuda_version("| NVIDIA-SMI 470.57.02    Driver Version: 470.57.02    CUDA Version: N/A |") is None


def test_missing_infiniband_folder_means_no_devices(tmp_path):
    assert gpu_topology.read_infiniband_sysfs(str(tmp_path / "absent")) == []
