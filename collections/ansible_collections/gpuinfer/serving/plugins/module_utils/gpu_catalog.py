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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import difflib
import re

MIB = 1024 ** 2
GIB = 1024 ** 3


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
                      ["A100", "A100-SXM4-40GB", "A100-SXM-40GB"]),
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


def resolve_name(name):
    """Catalog product name for a product name, alias or GFD ``nvidia.com/gpu.product`` label (any case)."""
    if name is not None and _key(name) in _BY_KEY:
        return _BY_KEY[_key(name)]
    matches = close_matches(name)
    raise UnknownGpuError(
        "gpu %r is not in the embedded GPU catalog%s; allowed: %s (or a GPU Feature Discovery "
        "nvidia.com/gpu.product label such as NVIDIA-H100-80GB-HBM3), or set gpu_memory_gib instead"
        % (name, (" (close matches: %s)" % ", ".join(matches)) if matches else "", ", ".join(gpu_names())))


def lookup(name):
    """(catalog name, a private copy of its spec) for ``name``."""
    product = resolve_name(name)
    return product, copy.deepcopy(GPUS[product])
