# -*- coding: utf-8 -*-
"""The speed model against real vLLM 0.26.0 runs on one H100 80GB (tests/fixtures/vllm-perf), planned through the
module's own entry point (gpu_sizing.size), and its physics on cases the fixtures do not cover."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, performance, sizing
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir

FIXTURES = fixture_dir("vllm-perf", "perf.jsonl")
CONFIGS = {"perf-llama8b": "llama-3.1-8b.json", "perf-qwen3-14b": "qwen3-14b.json"}
needs_fixtures = pytest.mark.skipif(FIXTURES is None, reason="tests/fixtures/vllm-perf is outside this copy of the collection")


def _levels():
    if FIXTURES is None:
        return []
    with open(os.path.join(FIXTURES, "perf.jsonl")) as handle:
        return [json.loads(line) for line in handle if line.strip()]


LEVELS = _levels()


def _flag(args, name):
    return [item.split("=", 1)[1] for item in args if item.startswith(name + "=")][0]


def _predict(level):
    args = level["args"]
    params = dict(
        model=os.path.join(FIXTURES, "configs", CONFIGS[level["case"]]),
        gpu="H100-80GB",
        tensor_parallel_size=int(_flag(args, "--tensor-parallel-size")),
        max_model_len=int(_flag(args, "--max-model-len")),
        gpu_memory_utilization=float(_flag(args, "--gpu-memory-utilization")),
        max_num_seqs=int(_flag(args, "--max-num-seqs")),
        max_num_batched_tokens=int(_flag(args, "--max-num-batched-tokens")),
        input_len=level["input_len"],
        output_len=level["output_len"],
        concurrency=[level["concurrency"]],
    )
    result = gpu_sizing.size(params)
    points = result["performance"]["points"]
    assert len(points) == 1 and points[0]["concurrency"] == level["concurrency"]
    return points[0]


def _error(predicted, measured):
    return (predicted - measured) / float(measured)


@needs_fixtures
def test_fixture_levels_are_the_documented_ones():
    assert len(LEVELS) == 12
    assert set(level["case"] for level in LEVELS) == set(CONFIGS)
    assert all(level["errors"] == 0 for level in LEVELS)


@needs_fixtures
def test_prediction_table_matches_measured_vllm():
    rows, failures = [], []
    for level in LEVELS:
        point = _predict(level)
        tpot = _error(point["tpot_ms"], level["tpot_ms_p50"])
        throughput = _error(point["output_tokens_per_s"], level["output_tok_s"])
        ttft = _error(point["ttft_ms"], level["ttft_ms_p50"])
        rows.append("| %s | %d | %d/%d | %.1f / %.1f (%+.0f%%) | %.2f / %.2f (%+.1f%%) | %.0f / %.0f (%+.1f%%) | %s |" % (
            level["case"][len("perf-"):], level["concurrency"], level["input_len"], level["output_len"],
            point["ttft_ms"], level["ttft_ms_p50"], 100 * ttft, point["tpot_ms"], level["tpot_ms_p50"], 100 * tpot,
            point["output_tokens_per_s"], level["output_tok_s"], 100 * throughput, point["bound"]))
        where = "%s c%d %d/%d" % (level["case"], level["concurrency"], level["input_len"], level["output_len"])
        if abs(tpot) > 0.15:
            failures.append("%s: TPOT %.2f ms vs %.2f measured" % (where, point["tpot_ms"], level["tpot_ms_p50"]))
        if abs(throughput) > 0.15:
            failures.append("%s: %.0f tok/s vs %.0f measured" % (where, point["output_tokens_per_s"], level["output_tok_s"]))
        if level["concurrency"] == 1 and abs(ttft) > 0.25:
            failures.append("%s: TTFT %.1f ms vs %.1f measured" % (where, point["ttft_ms"], level["ttft_ms_p50"]))
    print("\n| model | concurrency | in/out | TTFT p50 ms pred / meas | TPOT p50 ms pred / meas | output tok/s pred / meas | bound |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    assert not failures, failures


@needs_fixtures
def test_tpot_and_throughput_rise_with_concurrency():
    level = dict([level for level in LEVELS if level["case"] == "perf-llama8b"][0])
    points = []
    for clients in (1, 16, 64):
        level["concurrency"] = clients
        points.append(_predict(level))
    assert points[0]["tpot_ms"] < points[1]["tpot_ms"] < points[2]["tpot_ms"]
    assert points[0]["output_tokens_per_s"] < points[1]["output_tokens_per_s"] < points[2]["output_tokens_per_s"]
    assert points[0]["ttft_ms"] < points[1]["ttft_ms"] < points[2]["ttft_ms"]
    assert points[0]["bound"] == "weight reads"


# ----- physics on synthetic shapes -----

def _shape(experts=0, active=None, per_expert=0, layers=32, hidden=4096, vocab=32000, params=None):
    active = active if active is not None else 7e9
    return {
        "num_layers": layers, "hidden_size": hidden, "num_attention_heads": 32, "num_kv_heads": 8, "head_dim": 128,
        "intermediate_size": 14336, "vocab_size": vocab, "params": params or active, "active_params": active, "tied": False,
        "num_experts": experts, "experts_per_token": 2 if experts else 0, "moe_layers": layers if experts else 0,
        "expert_params": per_expert,
    }


def _run(shape, weights, tp=1, pp=1, gpu="H100-80GB", concurrency=(1, 8, 64), output_len=128, input_len=1024):
    spec = gpu_catalog.GPUS[gpu]
    layers = sizing.pipeline_partition(shape["num_layers"], pp)
    return performance.predict(shape, spec, tp, pp, [weights / (tp * pp)] * pp, layers, 131072 // tp, 256, 8192, "bf16",
                               input_len, output_len, list(concurrency))["points"]


def test_expected_experts_grows_from_active_to_all():
    assert performance.expected_experts(8, 2, 1) == pytest.approx(2.0)
    assert performance.expected_experts(8, 2, 256) == pytest.approx(8.0, abs=1e-6)
    assert performance.expected_experts(128, 8, 4) < performance.expected_experts(128, 8, 16) < 128


def test_moe_tpot_rises_faster_than_dense_of_same_active_params():
    # An 8-expert, top-2 MoE and a dense model with the same active parameters: at batch 1 both read about the same
    # bytes; with more clients the MoE touches more experts, the dense model reads the same weights.
    per_expert = 176e6
    dense_bytes = 2 * 13e9
    moe_bytes = dense_bytes + 2 * 6 * per_expert * 32
    moe = _run(_shape(experts=8, active=13e9, per_expert=per_expert, params=13e9 + 6 * per_expert * 32), moe_bytes)
    dense = _run(_shape(active=13e9), dense_bytes)
    assert moe[0]["tpot_ms"] == pytest.approx(dense[0]["tpot_ms"], rel=0.1)
    moe_rise = moe[-1]["tpot_ms"] / moe[0]["tpot_ms"]
    dense_rise = dense[-1]["tpot_ms"] / dense[0]["tpot_ms"]
    assert moe_rise > dense_rise * 1.3


def test_tensor_parallel_adds_communication():
    shape = _shape(active=7e9)
    one = _run(shape, 14e9, tp=1)
    two = _run(shape, 14e9, tp=2)
    # Half the weights per GPU but all-reduces: faster than TP1, slower than half of it.
    assert two[0]["tpot_ms"] < one[0]["tpot_ms"]
    assert two[0]["tpot_ms"] > one[0]["tpot_ms"] / 2
    engine = performance._Engine(shape, gpu_catalog.GPUS["H100-80GB"], 2, 1, [7e9], [32], 65536, "bf16", None)
    _time, parts = engine.step(8, 8 * 1000, 0, 0.0, 0.0, 8)
    assert parts["communication"] > 0
    single = performance._Engine(shape, gpu_catalog.GPUS["H100-80GB"], 1, 1, [14e9], [32], 131072, "bf16", None)
    assert single.step(8, 8 * 1000, 0, 0.0, 0.0, 8)[1]["communication"] == 0
    # PCIe-only cards pay more for the same all-reduces.
    pcie = performance._Engine(shape, gpu_catalog.GPUS["L40S"], 2, 1, [7e9], [32], 65536, "bf16", None)
    assert pcie.step(8, 8 * 1000, 0, 0.0, 0.0, 8)[1]["communication"] > parts["communication"]


def test_pipeline_stages_add_hand_offs_and_keep_the_bubble():
    shape = _shape(active=7e9)
    one = _run(shape, 14e9, pp=1)
    two = _run(shape, 14e9, pp=2)
    # A step traverses both stages: no faster per token than one GPU holding everything.
    assert two[0]["tpot_ms"] >= one[0]["tpot_ms"]


def test_faster_memory_means_faster_decode():
    shape = _shape(active=7e9)
    h100 = _run(shape, 14e9, gpu="H100-80GB")
    h200 = _run(shape, 14e9, gpu="H200-141GB")
    assert h200[0]["tpot_ms"] < h100[0]["tpot_ms"]


@pytest.mark.parametrize("value", [[], [0], [4, -1], ["x"], [True], "16"])
def test_bad_concurrency_is_refused(value):
    with pytest.raises(performance.PerformanceError) as error:
        performance.normalize_concurrency(value, 256)
    assert error.value.field == "concurrency" and "positive integer" in str(error.value)


def test_concurrency_default_adds_max_num_seqs_sorted_and_deduplicated():
    assert performance.normalize_concurrency(None, 256) == [1, 16, 64, 256]
    assert performance.normalize_concurrency(None, 16) == [1, 16, 64]
    assert performance.normalize_concurrency([64, 1, 64, 8], 256) == [1, 8, 64]


@pytest.mark.parametrize("field, value", [("input_len", 0), ("output_len", -3), ("max_num_seqs", 0)])
def test_bad_lengths_are_refused(field, value):
    kwargs = dict(input_len=1024, output_len=128, max_num_seqs=256)
    kwargs[field] = value
    with pytest.raises(performance.PerformanceError) as error:
        performance.predict(_shape(), gpu_catalog.GPUS["H100-80GB"], 1, 1, [14e9], [32], 131072, kwargs["max_num_seqs"], 8192,
                            "bf16", kwargs["input_len"], kwargs["output_len"], [1])
    assert error.value.field == field and repr(value) in str(error.value)


def test_every_catalog_gpu_has_speed_figures():
    for name, spec in gpu_catalog.GPUS.items():
        assert spec["memory_bandwidth_bytes_per_s"] > 1e11, name
        assert spec["bf16_tflops"] > 50, name
        assert (spec["fp8_tflops"] is not None) == spec["fp8"], name
        if spec["fp8_tflops"]:
            assert spec["fp8_tflops"] == pytest.approx(2 * spec["bf16_tflops"], rel=0.05), name
        assert (spec["nvlink_bandwidth_bytes_per_s"] is not None) == (spec["nvlink"] != "none"), name
        assert spec["pcie_bandwidth_bytes_per_s"] >= 64e9, name
        assert spec["speed_source"], name
        points = _run(_shape(active=7e9), 14e9, gpu=name, concurrency=[1])
        assert points[0]["tpot_ms"] > 0 and points[0]["output_tokens_per_s"] > 0, name
