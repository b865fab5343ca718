# -*- coding: utf-8 -*-
"""The planner against real vLLM start-ups (tests/fixtures/vllm-boot: vLLM 0.26.0 on one H200, dummy weights).

For every start-up the planner runs with the same model config, GPU total memory and engine arguments, and its
KV-cache tokens and memory terms are compared with what vLLM logged. ``pytest -s`` prints the table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_log
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, model_catalog, sizing
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir, load_json

GIB = 1024 ** 3
BOOT = fixture_dir("vllm-boot", "cases.json")
pytestmark = pytest.mark.skipif(BOOT is None, reason="tests/fixtures/vllm-boot is not in this checkout")

# KV-cache tokens: the goal is within 2% of vLLM on every start-up; never more than 2% above it (a plan that
# promises more concurrency than the engine gives is worse than a cautious one), never more than 5% below.
MAX_OVER_PCT = 2.0
MAX_UNDER_PCT = 5.0
GOAL_MEAN_ABS_PCT = 2.0
# Individual terms; vLLM logs them rounded to 0.01 GiB.
WEIGHTS_PCT = 1.0
KV_MEMORY_PCT = 1.0
ACTIVATION_GIB = 0.1
NON_TORCH_GIB = 0.05
CUDA_GRAPH_GIB = 0.15


def _cases():
    if BOOT is None:
        return []
    cases = load_json(BOOT, "cases.json")
    # The two `vllm serve` start-ups of the README, with the arguments it (and the log's non-default args) gives;
    # what they leave out is vLLM's default for an H200 (8192 batched tokens, 1024 sequences).
    cases.append(dict(cases[0], name="serve-llama8b", log="logs/serve-llama8b.log"))
    cases.append(dict(cases[0], name="offline-start-hub-cache-models", log="logs/offline-start-hub-cache-models.log",
                      max_model_len=8192, gpu_memory_utilization=0.5, max_num_seqs=None, max_num_batched_tokens=None))
    return cases


CASES = _cases()


def _read(relative):
    with open(os.path.join(BOOT, relative)) as handle:
        return handle.read()


def _plan(case):
    config_path = os.path.join(BOOT, "configs", case["config"] + ".json")
    spec = sizing.ModelSpec(sizing.load_config_path(config_path), config_path)
    gpu_spec = dict(gpu_catalog.GPUS["H200-141GB"], memory_bytes=case["gpu_total_bytes"])
    return spec, sizing.plan(
        spec, case["config"], case["config"], gpu_name="H200-141GB", gpu_spec=gpu_spec,
        dtype=case.get("dtype"), kv_cache_dtype=case.get("kv_cache_dtype") or "auto",
        max_model_len=case["max_model_len"], gpu_memory_utilization=case["gpu_memory_utilization"],
        max_num_seqs=case["max_num_seqs"], max_num_batched_tokens=case["max_num_batched_tokens"],
        tensor_parallel_size=case["tensor_parallel_size"], pipeline_parallel_size=1,
        # The fixtures are vLLM 0.26 start-ups: plan with that release's accounting.
        vllm_version=case.get("vllm_version", "0.26.0"))


def _pct(planned, actual):
    return 100.0 * (planned - actual) / float(actual)


@pytest.fixture(scope="module")
def results():
    out = {}
    for case in CASES:
        spec, plan = _plan(case)
        out[case["name"]] = (case, spec, plan, engine_log.parse(_read(case["log"])))
    return out


def test_every_case_is_a_single_gpu_start_with_a_quantization_the_planner_knows():
    assert len(CASES) >= 7
    for case in CASES:
        assert case["tensor_parallel_size"] == 1
        assert case.get("quantization") in (None, "fp8")
        assert os.path.isfile(os.path.join(BOOT, case["log"]))


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_planner_uses_the_engines_gpu_and_arguments(results, name):
    case, _spec, plan, parsed = results[name]
    memory = plan["memory_per_gpu"]
    assert memory["total"] == case["gpu_total_bytes"]
    # vLLM's own record of the total and the requested budget (rounded to 0.01 GiB in its log).
    assert abs(memory["total"] - parsed["total_memory_bytes"]) <= 0.01 * GIB
    assert abs(memory["usable"] - parsed["requested_memory_bytes"]) <= 0.01 * GIB
    assert plan["plan"]["tensor_parallel_size"] == 1 and plan["plan"]["pipeline_parallel_size"] == 1


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_kv_cache_tokens_match_vllm(results, name):
    _case, _spec, plan, parsed = results[name]
    error = _pct(plan["kv_cache_tokens"], parsed["kv_cache_tokens"])
    assert error <= MAX_OVER_PCT, "%s: planner promises %+.2f%% more KV tokens than vLLM" % (name, error)
    assert error >= -MAX_UNDER_PCT, "%s: planner predicts %+.2f%% fewer KV tokens than vLLM" % (name, error)


def test_kv_cache_tokens_meet_the_goal_on_average(results):
    errors = [abs(_pct(plan["kv_cache_tokens"], parsed["kv_cache_tokens"])) for _c, _s, plan, parsed in results.values()]
    assert sum(errors) / len(errors) <= GOAL_MEAN_ABS_PCT


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_memory_terms_match_vllms_breakdown(results, name):
    _case, _spec, plan, parsed = results[name]
    memory = plan["memory_per_gpu"]
    assert abs(_pct(memory["weights"], parsed["weights_bytes"])) <= WEIGHTS_PCT
    assert abs(_pct(memory["kv_cache"], parsed["kv_cache_memory_bytes"])) <= KV_MEMORY_PCT
    assert abs(memory["activation_peak"] - parsed["peak_activation_bytes"]) <= ACTIVATION_GIB * GIB
    assert abs(memory["non_torch"] - parsed["non_torch_bytes"]) <= NON_TORCH_GIB * GIB
    assert abs(memory["cuda_graph"] - parsed["cuda_graph_bytes"]) <= CUDA_GRAPH_GIB * GIB


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_the_runner_and_what_it_subtracts_follow_the_log(results, name):
    # The log's own breakdown: KV = requested - weights - peak activation - non-torch, and the V1 runner also takes
    # its CUDA-graph estimate off; the planner must pick the same runner for the model.
    case, spec, _plan_result, parsed = results[name]
    v2 = parsed["model_runner"] == "v2"
    assert sizing.runner_v2(spec, sizing.normalize_dtype(case["dtype"]), case.get("vllm_version", "0.26.0")) == v2
    left = (parsed["requested_memory_bytes"] - parsed["breakdown_weights_bytes"] - parsed["peak_activation_bytes"]
            - parsed["non_torch_bytes"] - (0 if v2 else parsed["cuda_graph_estimate_bytes"]))
    assert abs(left - parsed["kv_cache_memory_bytes"]) <= 0.03 * GIB


@pytest.mark.parametrize("name", [case["name"] for case in CASES if case["name"].startswith(("serve", "offline"))])
def test_max_concurrency_matches_vllm(results, name):
    _case, _spec, plan, parsed = results[name]
    assert parsed["max_concurrency_tokens_per_request"] == plan["plan"]["max_model_len"]
    assert abs(_pct(plan["max_concurrency"], parsed["max_concurrency"])) <= MAX_OVER_PCT


def test_sliding_window_layers_are_sized_as_vllm_sizes_them(results):
    # Mistral-7B-v0.1 and Phi-3 use a window on every layer, Gemma 2 on every other. A window far shorter than
    # max_model_len (Mistral) lets vLLM hold far more tokens than full attention would; one about as long costs a
    # block per request (Phi-3, Gemma 2). Either way the planner's count is closer to vLLM's than a full-attention
    # count of the same memory, and the warning that it treats every layer as full attention is gone.
    checked = 0
    for name, (_case, spec, plan, parsed) in results.items():
        if not spec.sliding_window or spec.window_layers is None:
            continue
        checked += 1
        full = plan["memory_per_gpu"]["kv_cache"] // (16 * plan["kv_cache_bytes_per_token"]) * 16
        assert abs(plan["kv_cache_tokens"] - parsed["kv_cache_tokens"]) < abs(full - parsed["kv_cache_tokens"]), name
        assert not any("sliding-window" in warning for warning in plan["warnings"]), name
    assert checked == 3


def _gib(value):
    return "-" if value is None else "%.2f" % (value / float(GIB))


def test_print_the_comparison_table(results):
    rows = []
    for name, (_case, _spec, plan, parsed) in results.items():
        table = dict((row["figure"], row) for row in engine_log.compare(plan, parsed))
        rows.append((name, plan["kv_cache_tokens"], parsed["kv_cache_tokens"], table))
    print("\n%-40s %10s %10s %7s | %13s | %13s | %11s | %11s | %11s" % (
        "case", "planned", "vLLM", "err%", "weights GiB", "KV GiB", "activation", "non-torch", "CUDA graph"))
    for name, planned, actual, table in rows:
        cells = []
        for figure in ("weights per GPU (bytes)", "KV cache memory (bytes)", "peak activation (bytes)",
                       "non-torch memory (bytes)", "CUDA graphs (bytes)"):
            row = table[figure]
            cells.append("%s/%s" % (_gib(row["planned"]), _gib(row["actual"])))
        print("%-40s %10d %10d %+7.2f | %13s | %13s | %11s | %11s | %11s" % (
            (name, planned, actual, _pct(planned, actual)) + tuple(cells)))
    assert len(rows) == len(CASES)


# ----- the rules behind the numbers, on configs of their own -----

def _spec(**fields):
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 3072, "intermediate_size": 8192,
              "num_hidden_layers": 4, "num_attention_heads": 24, "num_key_value_heads": 6, "vocab_size": 32000,
              "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}
    config.update(fields)
    return sizing.ModelSpec(config, "test")


def test_tensor_parallel_sizes_follow_vllms_head_rule_not_powers_of_two():
    # vLLM: attention heads % TP == 0, and KV heads % TP == 0 or TP % KV heads == 0.
    assert sizing.valid_tensor_parallel_sizes(_spec(), 8) == [1, 2, 3, 6]
    assert sizing.valid_tensor_parallel_sizes(_spec(num_attention_heads=12, num_key_value_heads=2), 8) == [1, 2, 4, 6]
    assert sizing.tp_problem(_spec(), 3) is None
    assert "KV heads do not divide" in sizing.tp_problem(_spec(), 4)
    assert "attention heads" in sizing.tp_problem(_spec(), 5)
    spec = _spec()
    result = sizing.plan(spec, "test", "test", gpu_memory_gib=80, tensor_parallel_size=6, max_model_len=8192)
    assert result["plan"]["tensor_parallel_size"] == 6


@pytest.mark.parametrize("model_type, tied", [("gemma2", True), ("gemma", True), ("gemma3_text", True), ("llama", False),
                                              ("qwen2", False), ("phi3", False), ("mistral", False)])
def test_an_absent_tie_word_embeddings_takes_the_config_class_default(model_type, tied):
    spec = _spec(model_type=model_type)
    assert spec.tied is tied
    assert _spec(model_type=model_type, tie_word_embeddings=not tied).tied is (not tied)


def test_which_layers_use_the_window():
    assert _spec(model_type="mistral", sliding_window=4096).window_layers == frozenset(range(4))
    assert _spec(model_type="phi3", sliding_window=2047).window_layers == frozenset(range(4))
    assert _spec(model_type="gemma2", sliding_window=4096).window_layers == frozenset([0, 2])
    assert _spec(model_type="mistral", sliding_window=None).window_layers == frozenset()
    assert _spec(model_type="qwen2", sliding_window=4096, use_sliding_window=False).window_layers == frozenset()
    # Not shown by the fixtures (Qwen2's max_window_layers, other types): sized as full attention, with a warning.
    unknown = _spec(model_type="qwen2", sliding_window=4096, use_sliding_window=True)
    assert unknown.window_layers is None and unknown.layer_window(0) is None
    result = sizing.plan(unknown, "test", "test", gpu_memory_gib=80, max_model_len=32768)
    assert any("sliding-window attention (window 4096)" in warning for warning in result["warnings"])
    known = sizing.plan(_spec(model_type="mistral", sliding_window=4096), "test", "test", gpu_memory_gib=80, max_model_len=32768)
    assert not any("sliding-window" in warning for warning in known["warnings"])


def test_window_layers_hold_window_plus_in_flight_tokens_per_request():
    spec = _spec(model_type="mistral", sliding_window=4096)
    page = spec.kv_bytes_per_token(2, 1, 1) * 16
    memory = 1000 * 4 * page  # 1000 blocks of the 4 layers
    # cdiv(min(4095 + 2 x 2048, 32768), 16) + 1 = 513 blocks per request.
    tokens, concurrency = sizing.kv_cache_capacity(spec, 2, 1, range(4), memory, 32768, 2 * 2048)
    assert concurrency == 1000 / 513.0 and tokens == int(1000 / 513.0 * 32768)
    # A context shorter than the window: one block more than full attention needs.
    tokens, concurrency = sizing.kv_cache_capacity(spec, 2, 1, range(4), memory, 1024, 2 * 2048)
    assert concurrency == 1000 / 65.0
    full = _spec()
    tokens, concurrency = sizing.kv_cache_capacity(full, 2, 1, range(4), memory, 32768, 2 * 2048)
    assert tokens == 1000 * 16 and concurrency == 1000 / 2048.0


def test_hybrid_layers_share_blocks_group_by_group():
    # Gemma 2 style, 2 window + 2 full layers: groups of 2 layers, a block of each group per 16 tokens.
    spec = _spec(model_type="gemma2", sliding_window=4096)
    page = spec.kv_bytes_per_token(2, 1, 1) * 16
    tokens, concurrency = sizing.kv_cache_capacity(spec, 2, 1, range(4), 1000 * 2 * page, 8192, 2 * 8192)
    assert concurrency == 1000 / (512 + 513.0)


def test_the_v1_runner_takes_cuda_graphs_off_the_kv_cache():
    hf_id = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    _hf, config = model_catalog.lookup(hf_id)
    spec = sizing.ModelSpec(config, hf_id)
    # vLLM 0.26 (the fixtures' release) ran MoE models on the V1 runner; from 0.29 every model runs on V2.
    assert not sizing.runner_v2(spec, "bf16", "0.26.0") and sizing.runner_v2(spec, "bf16", "0.29.0")
    memory = sizing.plan(spec, hf_id, hf_id, gpu_name="H200-141GB", gpu_spec=gpu_catalog.GPUS["H200-141GB"],
                         max_model_len=32768, vllm_version="0.26.0")["memory_per_gpu"]
    assert memory["kv_cache"] == (memory["usable"] - memory["weights"] - memory["activation_peak"] - memory["non_torch"]
                                  - memory["cuda_graph"])


def test_the_pinned_release_takes_cuda_graphs_off_the_kv_cache_for_every_model():
    """vLLM 0.27+ subtracts its CUDA-graph estimate before sizing the KV cache; 0.26's Model Runner V2 did not."""
    hf_id = "meta-llama/Llama-3.1-8B-Instruct"
    _hf, config = model_catalog.lookup(hf_id)
    spec = sizing.ModelSpec(config, hf_id)
    assert sizing.runner_v2(spec, "bf16", "0.26.0")
    plans = dict((version, sizing.plan(spec, hf_id, hf_id, gpu_name="H200-141GB", gpu_spec=gpu_catalog.GPUS["H200-141GB"],
                                       max_model_len=32768, vllm_version=version)) for version in ("0.26.0", "0.29.0"))
    old, pinned = plans["0.26.0"]["memory_per_gpu"], plans["0.29.0"]["memory_per_gpu"]
    assert old["kv_cache"] == old["usable"] - old["weights"] - old["activation_peak"] - old["non_torch"]
    assert pinned["kv_cache"] == old["kv_cache"] - pinned["cuda_graph"]
    assert plans["0.29.0"]["kv_cache_tokens"] < plans["0.26.0"]["kv_cache_tokens"]
    # The default is the release the vllm role pins.
    assert sizing.plan(spec, hf_id, hf_id, gpu_name="H200-141GB", gpu_spec=gpu_catalog.GPUS["H200-141GB"],
                       max_model_len=32768)["plan"]["vllm_version"] == "0.34.0"
    with pytest.raises(sizing.SizingError, match="vllm_version"):
        sizing.plan(spec, hf_id, hf_id, gpu_memory_gib=80, vllm_version="latest")
