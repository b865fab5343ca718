# -*- coding: utf-8 -*-
"""SLO-driven planning (module_utils/plan/slo.py): the layout and replicas that meet TTFT/TPOT targets and a request rate
with the fewest GPUs, planned through the module's own entry point (gpu_sizing.size) and piece by piece."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, sizing, slo
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing

LLAMA_70B = {"model": "llama-3.1-70b", "gpu": "H100-80GB", "input_len": 1024, "output_len": 128}
EXAMPLE = dict(LLAMA_70B, slo_ttft_ms=1000, slo_tpot_ms=30, request_rate=20)
ENTRY_KEYS = {"tensor_parallel_size", "pipeline_parallel_size", "quantization", "replicas", "gpus", "gpus_per_replica",
              "concurrency_per_replica", "ttft_ms", "tpot_ms", "requests_per_s_per_replica"}


def _meets(entry, targets):
    return ((targets.get("slo_ttft_ms") is None or entry["ttft_ms"] <= targets["slo_ttft_ms"])
            and (targets.get("slo_tpot_ms") is None or entry["tpot_ms"] <= targets["slo_tpot_ms"])
            and (targets.get("request_rate") is None
                 or entry["replicas"] * entry["requests_per_s_per_replica"] >= targets["request_rate"]))


def _predictor(result, params):
    """One replica's speed predictor for a plan result, as the SLO search uses it."""
    _model_id, _hub_id, spec = gpu_sizing.resolve_model(params["model"])
    _name, gpu_spec = gpu_catalog.lookup(params["gpu"])
    return slo.replica_predictor(spec, gpu_spec, result, params["input_len"], params["output_len"])


# --- Targets -------------------------------------------------------------------------------------------------------


def test_no_target_means_no_slo_planning():
    assert slo.targets() is None
    assert slo.targets(None, None, None) is None
    assert slo.targets(slo_tpot_ms=30) == {"ttft_ms": None, "tpot_ms": 30.0, "request_rate": None}


@pytest.mark.parametrize("name, value", [
    ("slo_ttft_ms", 0), ("slo_ttft_ms", -5), ("slo_tpot_ms", "30"), ("slo_tpot_ms", True), ("request_rate", float("nan")),
    ("request_rate", float("inf")), ("request_rate", -0.1), ("slo_ttft_ms", [1000]),
])
def test_bad_targets_are_refused_naming_the_option(name, value):
    with pytest.raises(slo.SloError) as refused:
        slo.targets(**{name: value})
    assert refused.value.field == name
    assert str(refused.value).startswith("%s=" % name) and "greater than 0" in str(refused.value)


@pytest.mark.parametrize("name", ["slo_ttft_ms", "slo_tpot_ms", "request_rate"])
def test_bad_targets_fail_the_task_cleanly(name):
    with pytest.raises(gpu_sizing.GpuSizingFailure) as failure:
        gpu_sizing.run(dict(LLAMA_70B, **{name: 0}))
    assert failure.value.msg.endswith("(field: %s)" % name)
    assert failure.value.result == {"field": name}


def test_slo_needs_a_catalog_gpu():
    with pytest.raises(sizing.SizingError) as refused:
        gpu_sizing.size({"model": "llama-3.1-8b", "gpu_memory_gib": 80, "slo_tpot_ms": 20})
    assert refused.value.field == "slo_tpot_ms" and "catalog GPU" in str(refused.value)


# --- The search's pieces -------------------------------------------------------------------------------------------


def test_candidate_layouts_are_powers_of_two_in_a_node_then_whole_nodes():
    _model_id, _hub_id, spec = gpu_sizing.resolve_model("llama-3.1-70b")
    assert slo.candidate_layouts(spec, 8, 1) == [(1, 1), (2, 1), (4, 1), (8, 1)]
    assert slo.candidate_layouts(spec, 8, 3) == [(1, 1), (2, 1), (4, 1), (8, 1), (8, 2), (8, 3)]
    # A fixed TP/PP joins the list (the plan may take only it; the others stay alternatives).
    assert (4, 2) in slo.candidate_layouts(spec, 8, 2, fixed_tp=4, fixed_pp=2)


def test_highest_concurrency_finds_the_last_point_meeting_past_a_tpot_dip():
    """TTFT grows with concurrency; the median request's TPOT saw-tooths (dips when the prompts fill one more step)."""
    def point(concurrency):
        tpot = 10.0 + concurrency * 0.1 - (1.5 if concurrency % 16 == 0 else 0.0)
        return {"ttft_ms": 40.0 * concurrency, "tpot_ms": tpot}

    calls = []

    def counted(concurrency):
        calls.append(concurrency)
        return point(concurrency)

    goals = {"ttft_ms": None, "tpot_ms": 13.0, "request_rate": None}
    truth = max(c for c in range(1, 257) if point(c)["tpot_ms"] <= 13.0)
    assert truth == 32  # 13.2 - 1.5: past the first miss at 31
    assert slo.highest_concurrency(counted, 256, goals, window=18) == truth
    assert len(set(calls)) < 60  # doubling and bisection, not a scan of every level
    assert slo.highest_concurrency(point, 256, dict(goals, ttft_ms=1000.0), window=18) == 25
    assert slo.highest_concurrency(point, 256, dict(goals, tpot_ms=5.0), window=18) == 0
    assert slo.highest_concurrency(point, 256, {"ttft_ms": None, "tpot_ms": None, "request_rate": 5.0}) == 256


def test_the_search_agrees_with_a_scan_of_every_concurrency():
    params = dict(LLAMA_70B, tensor_parallel_size=8, dtype="fp8", max_model_len=8192)
    result = gpu_sizing.size(params)
    batch_limit, point = _predictor(result, params)
    limit = min(batch_limit, 160)
    window = min(64, 2 * int(math.ceil(result["plan"]["max_num_batched_tokens"] / 1024.0)) + 2)
    points = [point(c) for c in range(1, limit + 1)]
    for ttft, tpot in ((None, 9.0), (None, 12.5), (700.0, 30.0), (1500.0, 12.0), (2500.0, 20.0)):
        goals = {"ttft_ms": ttft, "tpot_ms": tpot, "request_rate": None}
        truth = max([index + 1 for index, item in enumerate(points)
                     if (ttft is None or item["ttft_ms"] <= ttft) and item["tpot_ms"] <= tpot] or [0])
        assert slo.highest_concurrency(point, limit, goals, window) == truth, (ttft, tpot)


# --- Planning ------------------------------------------------------------------------------------------------------


def test_a_plan_with_slos_picks_the_layout_and_replicas_with_the_fewest_gpus():
    result = gpu_sizing.size(EXAMPLE)
    plan, found = result["plan"], result["slo"]
    assert found["met"] is True and found["nearest"] is None and found["reason"] is None
    assert (found["ttft_ms"], found["tpot_ms"], found["request_rate"]) == (1000.0, 30.0, 20.0)
    chosen = found["chosen"]
    assert set(chosen) == ENTRY_KEYS
    assert _meets(chosen, EXAMPLE)
    assert chosen["replicas"] == int(math.ceil(20 / chosen["requests_per_s_per_replica"]))
    assert chosen["gpus"] == chosen["replicas"] * chosen["tensor_parallel_size"] * chosen["pipeline_parallel_size"]
    # Llama 3.1 70B, 1024/128 at 20 requests/s within 1 s / 30 ms: one TP8 replica with FP8 weights (8 GPUs).
    assert (chosen["tensor_parallel_size"], chosen["pipeline_parallel_size"], chosen["quantization"], chosen["replicas"]) == (8, 1, "fp8", 1)
    # The alternatives meet it too, each with its GPU count, fewest GPUs first; none beats the choice.
    alternatives = found["alternatives"]
    assert 1 <= len(alternatives) <= slo.MAX_ALTERNATIVES
    assert all(set(item) == ENTRY_KEYS and _meets(item, EXAMPLE) for item in alternatives)
    assert [item["gpus"] for item in alternatives] == sorted(item["gpus"] for item in alternatives)
    assert all((item["gpus"], item["tpot_ms"]) >= (chosen["gpus"], chosen["tpot_ms"]) for item in alternatives)
    assert any(item["quantization"] is None for item in alternatives)
    # The plan follows the choice: layout, FP8 quantized online, replicas, and its engine flags.
    assert (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["replicas"]) == (8, 1, 1)
    assert plan["dtype"] == "fp8" and plan["quantize_online"] is True and plan["total_gpus"] == chosen["gpus"]
    assert "--quantization=fp8" in result["vllm_args"] and result["fits"] is True
    assert any("FP8 weights meet the SLO on 8 GPUs" in line and "instead of 16 in bf16" in line for line in result["advice"])
    # The autoscaler: the replicas the rate needs, and the queue depth past the SLO-meeting concurrency.
    admitted = int(math.ceil(plan["max_num_batched_tokens"] / 1024.0))
    assert found["autoscaling"] == {"max_replicas": 1, "target_waiting": max(1, chosen["concurrency_per_replica"] - admitted),
                                    "target_in_flight": chosen["concurrency_per_replica"]}


def test_the_chosen_concurrency_is_the_highest_that_meets_the_targets():
    result = gpu_sizing.size(EXAMPLE)
    chosen = result["slo"]["chosen"]
    _batch_limit, point = _predictor(result, EXAMPLE)
    at = point(chosen["concurrency_per_replica"])
    assert (at["ttft_ms"], at["tpot_ms"], at["requests_per_s"]) == (chosen["ttft_ms"], chosen["tpot_ms"], chosen["requests_per_s_per_replica"])
    beyond = [point(c) for c in range(chosen["concurrency_per_replica"] + 1, chosen["concurrency_per_replica"] + 40)]
    assert all(item["ttft_ms"] > 1000 or item["tpot_ms"] > 30 for item in beyond)
    # The plan's own speed prediction agrees at that load.
    check = gpu_sizing.size(dict(EXAMPLE, concurrency=[chosen["concurrency_per_replica"]]))
    assert check["performance"]["points"][0]["tpot_ms"] == chosen["tpot_ms"]


def test_the_checkpoint_precision_is_kept_when_dtype_is_named():
    result = gpu_sizing.size(dict(EXAMPLE, dtype="bf16"))
    chosen = result["slo"]["chosen"]
    assert chosen["quantization"] is None and result["plan"]["dtype"] == "bf16"
    assert (chosen["tensor_parallel_size"], chosen["replicas"], chosen["gpus"]) == (8, 2, 16)
    assert result["plan"]["total_gpus"] == 16 and result["plan"]["replicas"] == 2
    # FP8 stays advice, with the GPUs it would save.
    assert any("FP8 weights would meet the SLO on 8 GPUs" in line and "instead of 16" in line for line in result["advice"])
    assert any(item["quantization"] == "fp8" and item["gpus"] == 8 for item in result["slo"]["alternatives"])


def test_a_tighter_tpot_moves_to_a_wider_tensor_parallel_size():
    loose = gpu_sizing.size(dict(LLAMA_70B, dtype="bf16", slo_tpot_ms=30))["slo"]["chosen"]
    tight = gpu_sizing.size(dict(LLAMA_70B, dtype="bf16", slo_tpot_ms=12))["slo"]["chosen"]
    assert (loose["tensor_parallel_size"], loose["replicas"]) == (4, 1)
    assert tight["tensor_parallel_size"] == 8 and tight["tpot_ms"] <= 12 < loose["tpot_ms"]


def test_a_tighter_tpot_moves_to_fp8_where_the_gpu_has_it():
    loose = gpu_sizing.size(dict(LLAMA_70B, slo_tpot_ms=30, slo_ttft_ms=1000))
    tight = gpu_sizing.size(dict(LLAMA_70B, slo_tpot_ms=8, slo_ttft_ms=1000))
    assert tight["slo"]["met"] and tight["slo"]["chosen"]["quantization"] == "fp8"
    assert tight["slo"]["chosen"]["tpot_ms"] <= 8
    # No bf16 layout reaches 8 ms (TP8 bf16 decodes one token in 8.3 ms at one client).
    assert any("where no bf16 layout meets it" in line for line in tight["advice"])
    assert (tight["slo"]["chosen"]["tensor_parallel_size"] * tight["slo"]["chosen"]["pipeline_parallel_size"]
            >= loose["slo"]["chosen"]["tensor_parallel_size"] * loose["slo"]["chosen"]["pipeline_parallel_size"])


def test_the_request_rate_scales_the_replicas():
    found = {}
    for rate in (5, 20, 40, 80):
        answer = gpu_sizing.size(dict(LLAMA_70B, dtype="bf16", tensor_parallel_size=8, slo_tpot_ms=30, slo_ttft_ms=1000, request_rate=rate))
        chosen = answer["slo"]["chosen"]
        assert chosen["replicas"] == int(math.ceil(rate / chosen["requests_per_s_per_replica"]))
        assert answer["plan"]["replicas"] == chosen["replicas"] == answer["slo"]["autoscaling"]["max_replicas"]
        assert answer["plan"]["total_gpus"] == 8 * chosen["replicas"]
        found[rate] = chosen["replicas"]
    assert found[5] == 1 and found[5] < found[20] < found[40] < found[80]
    assert found[80] == 2 * found[40] or found[80] == 2 * found[40] - 1


def test_an_impossible_slo_is_not_met_and_names_the_nearest_feasible_targets():
    plain = gpu_sizing.size(LLAMA_70B)
    result = gpu_sizing.size(dict(EXAMPLE, slo_tpot_ms=0.5))
    found = result["slo"]
    assert found["met"] is False and found["chosen"] is None and found["autoscaling"] is None
    nearest = found["nearest"]
    # The best any layout within max_nodes reaches: TP8 with FP8 weights at one client.
    assert nearest["best_tpot_layout"] == "TP8 x PP1 fp8" and 4 < nearest["best_tpot_ms"] < 6
    assert nearest["tpot_ms"] == math.ceil(nearest["best_tpot_ms"] * 10) / 10.0
    assert nearest["ttft_ms"] == 1000.0 and nearest["request_rate"] == 20.0  # only the missed target moves
    assert _meets(nearest["chosen"], {"slo_ttft_ms": nearest["ttft_ms"], "slo_tpot_ms": nearest["tpot_ms"], "request_rate": 20})
    assert "slo_tpot_ms=0.5" in found["reason"] and "nearest feasible targets" in found["reason"] and "slo_tpot_ms=5.2" in found["reason"]
    assert found["reason"] in result["plan"]["warnings"]
    # The plan stays the memory plan.
    for key in ("tensor_parallel_size", "pipeline_parallel_size", "replicas", "dtype", "total_gpus"):
        assert result["plan"][key] == plain["plan"][key]
    with pytest.raises(gpu_sizing.GpuSizingFailure) as failure:
        gpu_sizing.run(dict(EXAMPLE, slo_tpot_ms=0.5))
    assert failure.value.msg.startswith("SLO not met (slo_ttft_ms=1000, slo_tpot_ms=0.5, request_rate=20)")
    assert "best achievable: TTFT" in failure.value.msg and "fail_on_no_fit=false" in failure.value.msg
    assert failure.value.result["slo"]["met"] is False
    answer = gpu_sizing.run(dict(EXAMPLE, slo_tpot_ms=0.5, fail_on_no_fit=False))
    assert answer["slo"]["met"] is False and answer["fits"] is True


def test_an_unreachable_ttft_relaxes_only_the_ttft():
    found = gpu_sizing.size(dict(EXAMPLE, slo_ttft_ms=10))["slo"]
    nearest = found["nearest"]
    assert found["met"] is False and nearest["tpot_ms"] == 30.0 and nearest["ttft_ms"] > 10
    assert nearest["ttft_ms"] == math.ceil(nearest["best_ttft_ms"] * 10) / 10.0


def test_fixed_replicas_are_checked_and_give_the_reachable_rate():
    found = gpu_sizing.size(dict(EXAMPLE, dtype="bf16", tensor_parallel_size=8, replicas=2, request_rate=100))["slo"]
    assert found["met"] is False and found["replicas_limit"] == 2
    nearest = found["nearest"]
    assert nearest["ttft_ms"] == 1000.0 and nearest["tpot_ms"] == 30.0
    assert 0 < nearest["request_rate"] < 100 and nearest["chosen"]["replicas"] == 2
    assert nearest["request_rate"] <= 2 * nearest["chosen"]["requests_per_s_per_replica"]
    met = gpu_sizing.size(dict(EXAMPLE, dtype="bf16", tensor_parallel_size=8, replicas=3))
    assert met["slo"]["met"] and met["slo"]["chosen"]["replicas"] == 3 and met["plan"]["replicas"] == 3


def test_a_fixed_layout_is_checked_and_the_others_stay_alternatives():
    result = gpu_sizing.size(dict(EXAMPLE, tensor_parallel_size=4, dtype="bf16"))
    found = result["slo"]
    assert found["met"] and found["chosen"]["tensor_parallel_size"] == 4 and result["plan"]["tensor_parallel_size"] == 4
    assert found["chosen"]["replicas"] == result["plan"]["replicas"] and result["plan"]["replicas"] > 1
    failed = gpu_sizing.size(dict(EXAMPLE, tensor_parallel_size=2, dtype="bf16", max_model_len=8192, slo_tpot_ms=20))["slo"]
    assert failed["met"] is False and "tensor_parallel_size=2" in failed["reason"]
    assert failed["nearest"]["chosen"]["tensor_parallel_size"] == 2


def test_one_output_token_has_no_tpot_to_miss():
    found = gpu_sizing.size(dict(LLAMA_70B, output_len=1, slo_tpot_ms=0.1, slo_ttft_ms=1000))["slo"]
    assert found["met"] and found["chosen"]["tpot_ms"] is None


def test_a_rate_alone_runs_each_replica_at_its_full_batch():
    result = gpu_sizing.size(dict(LLAMA_70B, request_rate=30, dtype="bf16", tensor_parallel_size=8))
    chosen = result["slo"]["chosen"]
    _batch_limit, point = _predictor(result, LLAMA_70B)
    assert chosen["concurrency_per_replica"] == _batch_limit
    assert chosen["replicas"] == int(math.ceil(30 / point(_batch_limit)["requests_per_s"]))


def test_no_slo_leaves_the_result_unchanged():
    for params in (LLAMA_70B, {"model": "qwen3-30b-a3b", "gpu": "H200", "engine": "sglang"}, {"model": "llama-3.1-8b", "gpu": "L4", "replicas": 3}):
        plain = gpu_sizing.run(dict(params))
        unset = gpu_sizing.run(dict(params, slo_ttft_ms=None, slo_tpot_ms=None, request_rate=None))
        assert plain == unset and "slo" not in plain


def test_the_module_is_pure_python():
    with open(slo.__file__.replace(".pyc", ".py")) as handle:
        source = handle.read()
    assert "from ansible." not in source and "import ansible" not in source
    assert os.path.basename(slo.__file__).startswith("slo.py")
