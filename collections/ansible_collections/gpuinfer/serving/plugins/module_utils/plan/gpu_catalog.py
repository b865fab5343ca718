# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Embedded catalog of data-centre GPUs for gpu_sizing.

``memory_bytes`` is the total the CUDA driver reports to a process (``cudaMemGetInfo`` /
``torch.cuda.mem_get_info()[1]``), which is what vLLM multiplies by ``gpu_memory_utilization``.
It is a little below the marketing size and below ``nvidia-smi``'s "Total", because the driver
reserves some framebuffer (e.g. an H200 shows 143771 MiB total with 616 MiB reserved, and CUDA
sees 143156 MiB). Values come from driver/``nvidia-smi -q`` captures and the totals vLLM and
PyTorch print (e.g. "79.11 GiB" on an H100 80GB HBM3, "79.15 GiB" on an A100 80GB).

``gfd_products`` are the ``nvidia.com/gpu.product`` node labels GPU Feature Discovery sets
(the driver's product name with spaces turned into dashes). MIG (``-MIG-1g.10gb``) and sharing
(``-SHARED``) suffixes are stripped before lookup.

Speed figures (read by performance.py), each from the vendor datasheet named in ``speed_source``:
``memory_bandwidth_bytes_per_s`` (HBM/GDDR peak), ``bf16_tflops`` and ``fp8_tflops`` (dense tensor-core
TFLOP/s, i.e. the datasheet's "with sparsity" figure halved; ``fp8_tflops`` is None without FP8 tensor
cores), ``nvlink_bandwidth_bytes_per_s`` (total NVLink bandwidth per GPU, both directions, as datasheets
state it; None where the catalog entry has no NVLink) and ``pcie_bandwidth_bytes_per_s`` (host interface,
both directions). ``memory_bandwidth_gbps`` is the older, rounded GB/s field, kept as it was.

A name that fits several products (``A100``: 40 GB and 80 GB parts) is refused with the choices
(``AMBIGUOUS``) instead of silently meaning one of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import difflib
import re

MIB = 1024 ** 2
GIB = 1024 ** 3


TB = 10 ** 12
GB = 10 ** 9


def _gpu(memory_mib, bandwidth_gbps, nvlink, gpus_per_node, fp8, capability, family, gfd, form_factor, aliases=()):
    return {
        "memory_bytes": int(memory_mib * MIB),
        "memory_bandwidth_gbps": bandwidth_gbps,
        "nvlink": nvlink,
        "gpus_per_node": gpus_per_node,
        "fp8": fp8,
        "compute_capability": capability,
        "family": family,
        "gfd_products": list(gfd),
        "form_factor": form_factor,
        "aliases": list(aliases),
    }


# nvlink: "all" = every GPU of the node shares an NVLink/NVSwitch fabric; "pairs" = NVLink bridges join
# GPUs two by two (PCIe cards); "none" = PCIe only.
GPUS = {
    "A100-40GB": _gpu(40339, 1555, "all", 8, False, "8.0", "ampere", ["NVIDIA-A100-SXM4-40GB"], "SXM4",
                      ["A100-SXM4-40GB", "A100-SXM-40GB", "A100-40G"]),
    "A100-40GB-PCIe": _gpu(40339, 1555, "none", 8, False, "8.0", "ampere", ["NVIDIA-A100-PCIE-40GB"], "PCIe",
                           ["A100-PCIE-40GB"]),
    "A100-80GB": _gpu(81050, 2039, "all", 8, False, "8.0", "ampere", ["NVIDIA-A100-SXM4-80GB"], "SXM4",
                      ["A100-SXM4-80GB", "A100-SXM-80GB", "A100-80G"]),
    "A100-80GB-PCIe": _gpu(81050, 1935, "none", 8, False, "8.0", "ampere", ["NVIDIA-A100-80GB-PCIe"], "PCIe",
                           ["A100-PCIE-80GB"]),
    "H100-80GB": _gpu(81009, 3350, "all", 8, True, "9.0", "hopper", ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-SXM5-80GB"], "SXM5",
                      ["H100", "H100-SXM", "H100-SXM5-80GB", "H100-80GB-HBM3", "H100-SXM-80GB"]),
    "H100-80GB-PCIe": _gpu(81009, 2000, "none", 8, True, "9.0", "hopper", ["NVIDIA-H100-PCIe"], "PCIe",
                           ["H100-PCIe", "H100-PCIE-80GB"]),
    "H100-NVL-94GB": _gpu(95280, 3900, "pairs", 8, True, "9.0", "hopper", ["NVIDIA-H100-NVL"], "PCIe",
                          ["H100-NVL", "H100NVL"]),
    "H200-141GB": _gpu(143156, 4800, "all", 8, True, "9.0", "hopper", ["NVIDIA-H200", "NVIDIA-H200-141GB-HBM3e"], "SXM5",
                       ["H200", "H200-SXM", "H200-141GB-HBM3e"]),
    "H20": _gpu(97271, 4000, "all", 8, True, "9.0", "hopper", ["NVIDIA-H20"], "SXM5", ["H20-96GB"]),
    "B200": _gpu(182659, 8000, "all", 8, True, "10.0", "blackwell", ["NVIDIA-B200"], "SXM6", ["B200-180GB", "B200-192GB"]),
    "L40S": _gpu(45456, 864, "none", 8, True, "8.9", "ada-lovelace", ["NVIDIA-L40S"], "PCIe", ["L40S-48GB"]),
    "L4": _gpu(22560, 300, "none", 8, True, "8.9", "ada-lovelace", ["NVIDIA-L4"], "PCIe", ["L4-24GB"]),
    "A10G": _gpu(22731, 600, "none", 4, False, "8.6", "ampere", ["NVIDIA-A10G"], "PCIe", ["A10G-24GB"]),
}


def _speed(bandwidth, bf16_tflops, fp8_tflops, nvlink_bandwidth, pcie_bandwidth, source):
    return {
        "memory_bandwidth_bytes_per_s": int(bandwidth),
        "bf16_tflops": bf16_tflops,
        "fp8_tflops": fp8_tflops,
        "nvlink_bandwidth_bytes_per_s": int(nvlink_bandwidth) if nvlink_bandwidth else None,
        "pcie_bandwidth_bytes_per_s": int(pcie_bandwidth),
        "speed_source": source,
    }


_A100_SHEET = "NVIDIA A100 Tensor Core GPU datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)"
_H100_SHEET = "NVIDIA H100 Tensor Core GPU datasheet (h100-datasheet, 2023)"
# Dense figures: the datasheets' tensor-core numbers are "with sparsity"; dense is half of them.
SPEEDS = {
    # A100 SXM4 40GB: 1,555 GB/s HBM2, BF16 312 TFLOPS dense (624 sparse), no FP8, NVLink 600 GB/s, PCIe Gen4 64 GB/s.
    "A100-40GB": _speed(1555 * GB, 312.0, None, 600 * GB, 64 * GB, _A100_SHEET),
    # A100 PCIe 40GB: 1,555 GB/s, 312 dense; its optional 2-GPU NVLink bridge is not modelled (catalog nvlink: none).
    "A100-40GB-PCIe": _speed(1555 * GB, 312.0, None, None, 64 * GB, _A100_SHEET),
    # A100 SXM4 80GB: 2,039 GB/s HBM2e, 312 dense, NVLink 600 GB/s.
    "A100-80GB": _speed(2039 * GB, 312.0, None, 600 * GB, 64 * GB, _A100_SHEET),
    # A100 80GB PCIe: 1,935 GB/s, 312 dense.
    "A100-80GB-PCIe": _speed(1935 * GB, 312.0, None, None, 64 * GB, _A100_SHEET),
    # H100 SXM5 80GB: 3.35 TB/s HBM3, BF16 989 dense (1,979 sparse), FP8 1,979 dense (3,958 sparse), NVLink 900 GB/s,
    # PCIe Gen5 128 GB/s.
    "H100-80GB": _speed(3.35 * TB, 989.0, 1979.0, 900 * GB, 128 * GB, _H100_SHEET),
    # H100 PCIe 80GB: 2 TB/s HBM2e, BF16 756 dense (1,513 sparse), FP8 1,513 dense (3,026 sparse).
    "H100-80GB-PCIe": _speed(2.0 * TB, 756.0, 1513.0, None, 128 * GB, _H100_SHEET),
    # H100 NVL 94GB: 3.9 TB/s HBM3, BF16 835 dense (1,671 sparse), FP8 1,671 dense (3,341 sparse), NVLink bridge
    # 600 GB/s between the two GPUs of a pair.
    "H100-NVL-94GB": _speed(3.9 * TB, 835.0, 1671.0, 600 * GB, 128 * GB, _H100_SHEET),
    # H200 SXM 141GB: 4.8 TB/s HBM3e, same Hopper compute as H100 SXM (989 / 1,979 dense), NVLink 900 GB/s.
    "H200-141GB": _speed(4.8 * TB, 989.0, 1979.0, 900 * GB, 128 * GB, "NVIDIA H200 Tensor Core GPU datasheet (2024)"),
    # H20 96GB: 4.0 TB/s HBM3, BF16 148 TFLOPS dense, FP8 296 dense, NVLink 900 GB/s: NVIDIA's HGX H20 specification
    # (China-market part; no public datasheet PDF, figures as NVIDIA gave them to partners and the press in 2024).
    "H20": _speed(4.0 * TB, 148.0, 296.0, 900 * GB, 128 * GB, "NVIDIA HGX H20 specification (2024, partner/press figures)"),
    # HGX B200 180GB: 7.7 TB/s HBM3e per GPU (the older memory_bandwidth_gbps keeps the 8 TB/s of the launch
    # material), FP16/BF16 2.25 PFLOPS dense (4.5 sparse), FP8 4.5 PFLOPS dense (9 sparse), NVLink 5 1.8 TB/s.
    "B200": _speed(7.7 * TB, 2250.0, 4500.0, 1800 * GB, 128 * GB, "NVIDIA Blackwell datasheet, HGX B200 column (2025)"),
    # L40S 48GB: 864 GB/s GDDR6, BF16 362.05 dense (733 sparse), FP8 733 dense (1,466 sparse), PCIe Gen4 x16 64 GB/s.
    "L40S": _speed(864 * GB, 362.05, 733.0, None, 64 * GB, "NVIDIA L40S GPU datasheet (2023)"),
    # L4 24GB: 300 GB/s GDDR6, BF16 121 dense (242 sparse), FP8 242.5 dense (485 sparse), PCIe Gen4 x16 64 GB/s.
    "L4": _speed(300 * GB, 121.0, 242.5, None, 64 * GB, "NVIDIA L4 Tensor Core GPU datasheet (2023)"),
    # A10G 24GB: AWS's variant of the A10 with no datasheet of its own; the A10 datasheet's 600 GB/s GDDR6 and BF16
    # 125 TFLOPS dense (250 sparse) are used (the A10G's clocks are lower, so its compute may be below this).
    "A10G": _speed(600 * GB, 125.0, None, None, 64 * GB, "NVIDIA A10 Tensor Core GPU datasheet (2021); AWS A10G variant"),
}
for _name, _speed_spec in SPEEDS.items():
    GPUS[_name].update(_speed_spec)

# Names several catalog products answer to: refused, with the choices (they differ in memory, so guessing one would
# plan the wrong KV cache).
AMBIGUOUS = {
    "A100": ("A100-40GB", "A100-80GB"),
    "A100-SXM4": ("A100-40GB", "A100-80GB"),
    "A100-PCIE": ("A100-40GB-PCIe", "A100-80GB-PCIe"),
}

_SUFFIXES = re.compile(r"(-MIG-[0-9a-z.+]+|-SHARED)$", re.IGNORECASE)


def _key(name):
    """Case-, space- and underscore-insensitive spelling of a product name."""
    key = re.sub(r"[\s_]+", "-", (name or "").strip())
    key = _SUFFIXES.sub("", key)
    return key.upper()


_BY_KEY = {}
for _name, _spec in GPUS.items():
    for _spelling in [_name] + _spec["aliases"] + _spec["gfd_products"]:
        _BY_KEY[_key(_spelling)] = _name
        # Labels are "NVIDIA-..."; users often type the driver name without the vendor prefix, or with it.
        if _key(_spelling).startswith("NVIDIA-"):
            _BY_KEY.setdefault(_key(_spelling)[len("NVIDIA-"):], _name)
        else:
            _BY_KEY.setdefault("NVIDIA-" + _key(_spelling), _name)


class UnknownGpuError(ValueError):
    """Raised for a GPU name the catalog does not hold; the message lists close matches."""


def gpu_names():
    return sorted(GPUS)


def close_matches(name, limit=5):
    key = _key(name)
    found = []
    candidates = difflib.get_close_matches(key, list(_BY_KEY), n=limit * 3, cutoff=0.5)
    candidates.extend(k for k in sorted(_BY_KEY) if key and key in k)
    for candidate in candidates:
        if _BY_KEY[candidate] not in found:
            found.append(_BY_KEY[candidate])
    return found[:limit]


_AMBIGUOUS_BY_KEY = {}
for _spelling, _choices in AMBIGUOUS.items():
    _AMBIGUOUS_BY_KEY[_key(_spelling)] = _choices
    _AMBIGUOUS_BY_KEY["NVIDIA-" + _key(_spelling)] = _choices


def did_you_mean(name):
    """The catalog product closest to ``name`` by spelling (difflib), or None."""
    key = _key(name)
    if not key:
        return None
    best = difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=0.6)
    return _BY_KEY[best[0]] if best else None


def resolve_name(name):
    """Catalog product name for a product name, alias or GFD ``nvidia.com/gpu.product`` label (any case)."""
    if name is not None and _key(name) in _BY_KEY:
        return _BY_KEY[_key(name)]
    if name is not None and _key(name) in _AMBIGUOUS_BY_KEY:
        choices = _AMBIGUOUS_BY_KEY[_key(name)]
        raise UnknownGpuError(
            "gpu %r is ambiguous: it names %s, which differ in memory (and so in KV cache); set gpu to one of %s"
            % (name, " and ".join(choices), ", ".join(choices)))
    matches = close_matches(name)
    suggestion = did_you_mean(name)
    raise UnknownGpuError(
        "gpu %r is not in the embedded GPU catalog%s%s; allowed: %s (or a GPU Feature Discovery "
        "nvidia.com/gpu.product label such as NVIDIA-H100-80GB-HBM3), or set gpu_memory_gib instead"
        % (name, (" (did you mean %r?)" % suggestion) if suggestion else "",
           (" (close matches: %s)" % ", ".join(matches)) if matches else "", ", ".join(gpu_names())))


def lookup(name):
    """(catalog name, a private copy of its spec) for ``name``."""
    product = resolve_name(name)
    return product, copy.deepcopy(GPUS[product])
