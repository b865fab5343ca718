# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.shm import (
    GIB,
    MIB,
    format_gib,
    shm_size_bytes,
    shm_size_for_plan,
)
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.layout import replica_layout


def test_single_gpu_gets_the_one_gib_floor():
    assert shm_size_bytes(1) == GIB


def test_tensor_parallel_adds_nccl_buffers_per_rank():
    # 1 GiB base + 8 x 512 MiB = 5 GiB
    assert shm_size_bytes(8) == 5 * GIB
    # 1 GiB + 2 x 512 MiB = 2 GiB
    assert shm_size_bytes(2) == 2 * GIB


def test_odd_rank_count_rounds_up_to_whole_gib():
    # 1 GiB + 3 x 512 MiB = 2.5 GiB -> 3 GiB
    assert shm_size_bytes(3) == 3 * GIB


def test_pipeline_stages_in_one_pod_add_p2p_buffers():
    # TP 4 x PP 2 on one node: 8 ranks, 2 stages in the pod
    # 1 GiB + 8 x 512 MiB + 8 x 256 MiB = 7 GiB
    assert shm_size_bytes(4, 2) == 7 * GIB


def test_multi_node_counts_only_the_ranks_of_one_node():
    # TP 8 x PP 2 over 2 nodes: one stage of 8 ranks per pod, no on-node P2P
    assert shm_size_bytes(8, 2, nodes=2) == 5 * GIB
    assert shm_size_bytes(8, 2, nodes=2, gpus_per_node=8) == 5 * GIB


def test_multi_node_with_several_stages_per_node():
    # TP 4 x PP 4 over 2 nodes: 2 stages (8 ranks) per pod
    assert shm_size_bytes(4, 4, nodes=2) == 1 * GIB + 8 * 512 * MIB + 8 * 256 * MIB


def test_node_memory_bounds_the_result():
    # 8 ranks want 5 GiB; 16 GiB node at 25% allows 4 GiB
    assert shm_size_bytes(8, node_memory_bytes=16 * GIB) == 4 * GIB
    # Large node: the plan's need, not the cap
    assert shm_size_bytes(8, node_memory_bytes=2048 * GIB) == 5 * GIB
    # Tiny node: the 1 GiB floor stays
    assert shm_size_bytes(8, node_memory_bytes=2 * GIB) == GIB
    # Custom fraction
    assert shm_size_bytes(8, node_memory_bytes=16 * GIB, max_node_fraction=0.125) == 2 * GIB


def test_float_node_memory_from_jinja_math_is_accepted():
    assert shm_size_bytes(8, node_memory_bytes=float(16 * GIB) + 0.5) == 4 * GIB


def test_format_gib_rounds_up():
    assert format_gib(GIB) == "1Gi"
    assert format_gib(GIB + 1) == "2Gi"
    assert format_gib(16 * GIB) == "16Gi"


def test_plan_accepts_full_result_or_inner_plan():
    inner = {"tensor_parallel_size": 8, "pipeline_parallel_size": 2, "nodes": 2, "gpus_per_node": 8,
             "layout": replica_layout(8, 2, 2, 8)}
    assert shm_size_for_plan({"plan": inner, "weights_bytes": 1}) == "5Gi"
    assert shm_size_for_plan(inner) == "5Gi"
    assert shm_size_for_plan({"plan": {"tensor_parallel_size": 1, "layout": replica_layout(1)}}) == "1Gi"


def test_string_integers_from_yaml_are_accepted():
    assert shm_size_bytes("4", "1") == 3 * GIB


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tensor_parallel_size": 0}, "tensor_parallel_size must be a positive integer, got 0"),
        ({"tensor_parallel_size": 2.5}, "tensor_parallel_size must be a positive integer, got 2.5"),
        ({"tensor_parallel_size": True}, "tensor_parallel_size must be a positive integer, got True"),
        ({"tensor_parallel_size": "eight"}, "tensor_parallel_size must be a positive integer, got 'eight'"),
        ({"tensor_parallel_size": 2, "pipeline_parallel_size": 0}, "pipeline_parallel_size must be a positive integer, got 0"),
        ({"tensor_parallel_size": 3, "nodes": 2}, "do not split evenly over 2 nodes"),
        ({"tensor_parallel_size": 2, "node_memory_bytes": 16 * GIB, "max_node_fraction": 0}, "max_node_fraction must be a number in (0, 1]"),
        ({"tensor_parallel_size": 2, "node_memory_bytes": 16 * GIB, "max_node_fraction": "half"}, "max_node_fraction must be a number in (0, 1]"),
        ({"tensor_parallel_size": 2, "node_memory_bytes": -1}, "node_memory_bytes must be a positive integer, got -1"),
    ],
)
def test_invalid_inputs_name_the_field_and_value(kwargs, message):
    with pytest.raises(ValueError) as excinfo:
        shm_size_bytes(**kwargs)
    assert message in str(excinfo.value)


def test_plan_without_its_layout_is_rejected():
    with pytest.raises(ValueError) as excinfo:
        shm_size_for_plan({"plan": {"tensor_parallel_size": 8, "nodes": 1}})
    assert "no plan.layout" in str(excinfo.value) and "plan again" in str(excinfo.value)
    with pytest.raises(ValueError) as excinfo:
        shm_size_for_plan(["not", "a", "dict"])
    assert "must be a dict" in str(excinfo.value)
