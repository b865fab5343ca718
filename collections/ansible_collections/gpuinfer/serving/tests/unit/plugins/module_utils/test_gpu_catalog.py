# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog

GIB = 1024 ** 3


def test_catalog_holds_every_gpu_the_issue_names():
    names = set(gpu_catalog.gpu_names())
    assert {"A100-40GB", "A100-80GB", "A100-80GB-PCIe", "H100-80GB", "H100-80GB-PCIe", "H100-NVL-94GB", "H200-141GB",
            "H20", "B200", "L40S", "L4", "A10G"} <= names


@pytest.mark.parametrize("label, product", [
    ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
    ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA-A100-80GB-PCIe", "A100-80GB-PCIe"),
    ("NVIDIA-A100-SXM4-40GB", "A100-40GB"),
    ("NVIDIA-H100-PCIe", "H100-80GB-PCIe"),
    ("NVIDIA-H100-NVL", "H100-NVL-94GB"),
    ("NVIDIA-H200", "H200-141GB"),
    ("NVIDIA-L40S", "L40S"),
    ("NVIDIA-L4", "L4"),
    ("NVIDIA-A10G", "A10G"),
    ("NVIDIA-B200", "B200"),
    ("NVIDIA-H20", "H20"),
    ("nvidia-h100-80gb-hbm3", "H100-80GB"),
    ("NVIDIA H100 80GB HBM3", "H100-80GB"),
    ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-80GB"),
    ("NVIDIA-H100-80GB-HBM3-SHARED", "H100-80GB"),
    ("h200", "H200-141GB"),
    ("H100", "H100-80GB"),
    ("a100_80gb", "A100-80GB"),
])
def test_product_names_and_gfd_labels_resolve(label, product):
    assert gpu_catalog.resolve_name(label) == product


def test_h200_memory_is_what_cuda_reports():
    # Measured on an H200 (driver 580): torch.cuda.mem_get_info()[1] = 150,109,880,320 bytes = 143155.94 MiB.
    _name, spec = gpu_catalog.lookup("H200")
    assert abs(spec["memory_bytes"] - 150109880320) < 1024 ** 2


def test_memory_is_below_the_marketing_size_and_ordered():
    sizes = dict((name, gpu_catalog.GPUS[name]["memory_bytes"]) for name in gpu_catalog.gpu_names())
    assert 79 * GIB < sizes["H100-80GB"] < 80 * GIB
    assert 79 * GIB < sizes["A100-80GB"] < 80 * GIB
    assert 39 * GIB < sizes["A100-40GB"] < 40 * GIB
    assert sizes["L4"] < sizes["L40S"] < sizes["H100-80GB"] < sizes["H100-NVL-94GB"] < sizes["H200-141GB"] < sizes["B200"]


def test_fp8_support_follows_the_architecture():
    for name, spec in gpu_catalog.GPUS.items():
        assert spec["fp8"] == (spec["family"] in ("hopper", "ada-lovelace", "blackwell")), name
        assert spec["fp8"] == (float(spec["compute_capability"]) >= 8.9), name


def test_nvlink_only_on_sxm_class_parts():
    assert gpu_catalog.GPUS["H100-80GB"]["nvlink"] == "all"
    assert gpu_catalog.GPUS["H100-80GB-PCIe"]["nvlink"] == "none"
    assert gpu_catalog.GPUS["H100-NVL-94GB"]["nvlink"] == "pairs"
    assert gpu_catalog.GPUS["L40S"]["nvlink"] == "none"


def test_unknown_gpu_lists_close_matches_and_allowed_names():
    with pytest.raises(gpu_catalog.UnknownGpuError) as error:
        gpu_catalog.lookup("H100-96GB")
    message = str(error.value)
    assert "'H100-96GB'" in message and "close matches" in message and "H100-80GB" in message
    assert "allowed:" in message and "A10G" in message


def test_none_is_rejected_cleanly():
    with pytest.raises(gpu_catalog.UnknownGpuError):
        gpu_catalog.lookup(None)


@pytest.mark.parametrize("name", ["A100", "a100", "NVIDIA-A100", "A100-PCIe"])
def test_ambiguous_a100_is_refused_with_the_choices(name):
    with pytest.raises(gpu_catalog.UnknownGpuError) as error:
        gpu_catalog.lookup(name)
    message = str(error.value)
    assert "ambiguous" in message and "80GB" in message and "40GB" in message


def test_near_miss_gets_did_you_mean():
    with pytest.raises(gpu_catalog.UnknownGpuError) as error:
        gpu_catalog.lookup("H100-80G")
    assert "did you mean 'H100-80GB'?" in str(error.value)


def test_speed_figures_follow_the_datasheets():
    gpus = gpu_catalog.GPUS
    assert gpus["H100-80GB"]["memory_bandwidth_bytes_per_s"] == 3350 * 10 ** 9
    assert (gpus["H100-80GB"]["bf16_tflops"], gpus["H100-80GB"]["fp8_tflops"]) == (989.0, 1979.0)
    assert gpus["H200-141GB"]["memory_bandwidth_bytes_per_s"] == 4800 * 10 ** 9
    assert gpus["A100-80GB"]["memory_bandwidth_bytes_per_s"] == 2039 * 10 ** 9 and gpus["A100-80GB"]["fp8_tflops"] is None
    assert gpus["A100-40GB"]["memory_bandwidth_bytes_per_s"] == 1555 * 10 ** 9
    assert gpus["L40S"]["memory_bandwidth_bytes_per_s"] == 864 * 10 ** 9 and gpus["L40S"]["fp8_tflops"] == 733.0
    for name, spec in gpus.items():
        # The older GB/s field and the new one agree within the B200's 8 vs 7.7 TB/s.
        assert abs(spec["memory_bandwidth_bytes_per_s"] / 1e9 - spec["memory_bandwidth_gbps"]) <= 0.04 * spec["memory_bandwidth_gbps"], name
