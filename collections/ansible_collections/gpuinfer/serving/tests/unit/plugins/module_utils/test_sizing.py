# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, model_catalog, sizing

GIB = 1024 ** 3

# Reference parameter counts: each catalog config instantiated with transformers 5.24.0 / torch 2.15.0 on the
# meta device (AutoModelForCausalLM.from_config under `with torch.device("meta")`, sum of p.numel()), in a
# scratch venv outside the project. The planner must agree within 0.5%; it agrees exactly except DeepSeek-V3,
# where vLLM loads the router's e_score_correction_bias (256 per MoE layer) that transformers keeps as a buffer.
REFERENCE_PARAMS = {
    "meta-llama/Llama-3.1-8B-Instruct": 8030261248,
    "meta-llama/Llama-3.1-70B-Instruct": 70553706496,
    "meta-llama/Llama-3.1-405B-Instruct": 405853388800,
    "meta-llama/Llama-3.2-3B-Instruct": 3212749824,
    "mistralai/Mistral-7B-Instruct-v0.3": 7248023552,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 46702792704,
    "mistralai/Mixtral-8x22B-Instruct-v0.1": 140630071296,
    "Qwen/Qwen2.5-7B-Instruct": 7615616512,
    "Qwen/Qwen2.5-72B-Instruct": 72706203648,
    "Qwen/Qwen3-14B": 14768307200,
    "Qwen/Qwen3-32B": 32762123264,
    "Qwen/Qwen3-30B-A3B": 30532122624,
    "Qwen/Qwen3-235B-A22B": 235093634560,
    "google/gemma-2-27b-it": 27227128320,
    "microsoft/Phi-3-mini-4k-instruct": 3821079552,
    "deepseek-ai/DeepSeek-V3": 671026404352,
}


def spec_of(name):
    hf_id, config = model_catalog.lookup(name)
    return sizing.ModelSpec(config, hf_id)


def plan_for(model, gpu, **options):
    hf_id, config = model_catalog.lookup(model)
    gpu_name, gpu_spec = gpu_catalog.lookup(gpu)
    return sizing.plan(sizing.ModelSpec(config, hf_id), hf_id, hf_id, gpu_name=gpu_name, gpu_spec=gpu_spec, **options)


def layout(result):
    return result["plan"]["tensor_parallel_size"], result["plan"]["pipeline_parallel_size"], result["plan"]["nodes"]


# ----- parameter counts -----

@pytest.mark.parametrize("hf_id", sorted(REFERENCE_PARAMS))
def test_parameter_count_matches_transformers(hf_id):
    params = spec_of(hf_id).params
    assert abs(params - REFERENCE_PARAMS[hf_id]) <= 0.005 * REFERENCE_PARAMS[hf_id]


@pytest.mark.parametrize("hf_id", [h for h in sorted(REFERENCE_PARAMS) if h != "deepseek-ai/DeepSeek-V3"])
def test_parameter_count_is_exact_for_non_deepseek(hf_id):
    assert spec_of(hf_id).params == REFERENCE_PARAMS[hf_id]


def test_deepseek_differs_only_by_the_router_correction_bias():
    assert spec_of("deepseek-v3").params - REFERENCE_PARAMS["deepseek-ai/DeepSeek-V3"] == 58 * 256


@pytest.mark.parametrize("model, experts, top_k, hidden, moe_intermediate, moe_layers, published", [
    ("mixtral-8x7b", 8, 2, 4096, 14336, 32, 12.9e9),
    ("mixtral-8x22b", 8, 2, 6144, 16384, 56, 39e9),
    ("qwen3-30b-a3b", 128, 8, 2048, 768, 48, 3.3e9),
    ("qwen3-235b-a22b", 128, 8, 4096, 1536, 94, 22e9),
    ("deepseek-v3", 256, 8, 7168, 2048, 58, 37e9),  # 61 layers, the first 3 dense
])
def test_active_parameters_of_moe_models(model, experts, top_k, hidden, moe_intermediate, moe_layers, published):
    spec = spec_of(model)
    idle_experts = (experts - top_k) * 3 * hidden * moe_intermediate * moe_layers
    assert spec.active_params == spec.params - idle_experts
    assert abs(spec.active_params - published) < 0.03 * published  # the model cards' "activated" figures


def test_dense_models_are_all_active():
    spec = spec_of("llama-3.1-70b")
    assert spec.active_params == spec.params == 70553706496


# ----- KV cache per token -----

def test_llama3_70b_kv_cache_per_token_counts_kv_heads():
    # 2 (K,V) x 80 layers x 8 KV heads x 128 head_dim x 2 bytes = 327,680 bytes/token. The common rule of thumb
    # "2 x layers x hidden_size x 2 bytes" = 2 x 80 x 8192 x 2 = 2,621,440 ignores grouped-query attention (64 query
    # heads share 8 KV heads) and overstates Llama-3-70B's KV cache 8x.
    spec = spec_of("meta-llama/Llama-3.1-70B-Instruct")
    assert spec.kv_bytes_per_token(2) == 327680
    rule_of_thumb = 2 * spec.num_layers * spec.hidden * 2
    assert rule_of_thumb == 8 * spec.kv_bytes_per_token(2)
    assert plan_for("llama-3.1-70b", "A100-80GB")["kv_cache_bytes_per_token"] == 327680


@pytest.mark.parametrize("model, kv_bytes", [
    ("llama-3.1-8b", 131072),
    ("llama-3.1-405b", 516096),
    ("qwen2.5-7b", 57344),        # 4 KV heads
    ("qwen3-235b-a22b", 192512),  # 4 KV heads, explicit head_dim 128
    ("gemma-2-27b", 376832),      # explicit head_dim 128 (not 4608 / 32 = 144)
    ("phi-3-mini", 393216),       # multi-head attention: here the rule of thumb happens to be right
    ("deepseek-v3", 70272),       # MLA: one (512 + 64) latent x 61 layers x 2 bytes, not 2 x 128 heads x 192
])
def test_kv_bytes_per_token(model, kv_bytes):
    assert spec_of(model).kv_bytes_per_token(2) == kv_bytes


def test_fp8_kv_cache_halves_the_bytes():
    result = plan_for("llama-3.1-70b", "H100", kv_cache_dtype="fp8")
    assert result["kv_cache_bytes_per_token"] == 163840
    assert "--kv-cache-dtype=fp8" in result["vllm_args"]


def test_kv_heads_replicate_when_tp_exceeds_them():
    spec = spec_of("llama-3.1-70b")
    # 8 KV heads: TP8 holds one per rank; TP16 still holds one per rank (replicated), not half.
    assert spec.kv_bytes_per_token(2, 8) == spec.kv_bytes_per_token(2, 16) == 2 * 80 * 1 * 128 * 2


def test_mla_latent_is_not_split_across_ranks():
    spec = spec_of("deepseek-r1")
    assert spec.kv_bytes_per_token(2, 8) == spec.kv_bytes_per_token(2, 1) == 70272


# ----- weights -----

def test_bf16_weights_are_two_bytes_per_parameter():
    spec = spec_of("llama-3.1-8b")
    assert sizing.weights_bytes(spec, "bf16") == 2 * 8030261248


def test_fp8_keeps_embeddings_and_lm_head_in_bf16():
    spec = spec_of("llama-3.1-8b")
    embeddings = 2 * 128256 * 4096
    norms = 4096 * (2 * 32 + 1)
    linear = 8030261248 - embeddings - norms
    assert sizing.weights_bytes(spec, "fp8") == linear + 2 * (embeddings + norms)


def test_int4_adds_group_scales_and_zeros():
    spec = spec_of("llama-3.1-70b")
    embeddings = 2 * 128256 * 8192
    norms = 8192 * (2 * 80 + 1)
    linear = 70553706496 - embeddings - norms
    expected = int(linear * (0.5 + 2.5 / 128) + 2 * (embeddings + norms))
    assert abs(sizing.weights_bytes(spec, "int4") - expected) <= 1


def test_deepseek_defaults_to_its_shipped_block_fp8():
    result = plan_for("deepseek-v3", "H200")
    assert result["plan"]["dtype"] == "fp8"
    assert result["plan"]["quantization"] == "fp8"
    assert "--quantization=fp8" not in result["vllm_args"]  # vLLM reads it from the checkpoint
    # one fp32 scale per 128x128 block on top of 1 byte per weight
    assert 671e9 < result["weights_bytes"] < 690e9


def test_online_fp8_needs_the_quantization_flag():
    result = plan_for("llama-3.1-70b", "H100", dtype="fp8")
    assert "--quantization=fp8" in result["vllm_args"]
    assert result["plan"]["quantization"] == "fp8"


def test_tensor_parallel_shards_weights():
    spec = spec_of("llama-3.1-70b")
    whole = sizing.rank_weight_bytes(spec, "bf16", 1, range(80), True, True, 1)
    quarter = sizing.rank_weight_bytes(spec, "bf16", 4, range(80), True, True, 1)
    assert whole == sizing.weights_bytes(spec, "bf16") + 2 * 2 * 8192 * (128256 % 64 and 64 - 128256 % 64)
    assert 0.25 * whole < quarter < 0.2505 * whole  # norms are replicated


def test_pipeline_partition_follows_vllm():
    assert sizing.pipeline_partition(126, 2) == [63, 63]
    assert sizing.pipeline_partition(61, 4) == [15, 15, 16, 15]
    assert sizing.pipeline_partition(80, 3) == [27, 27, 26]


# ----- memory model -----

def test_memory_breakdown_adds_up_and_tokens_fill_whole_blocks():
    result = plan_for("llama-3.1-8b", "H100")
    memory = result["memory_per_gpu"]
    assert memory["total"] == gpu_catalog.GPUS["H100-80GB"]["memory_bytes"]
    assert memory["usable"] == int(memory["total"] * 0.92)
    # The pinned vLLM (0.34) sizes its KV cache after CUDA-graph capture, so the graphs come off the KV budget; at 0.92
    # on an 80 GB GPU the requested memory binds before the free memory less the margin does.
    assert memory["kv_cache"] == (memory["usable"] - memory["weights"] - memory["activation_peak"] - memory["non_torch"]
                                  - memory["cuda_graph"])
    assert memory["cuda_graph"] > 0
    # 64-token blocks from 0.34 (Llama-3.1-8B on one GPU: 131,072 bytes of KV per token), in each of the 32 layers'
    # regions whole 2 MiB granules.
    assert result["kv_cache_tokens"] % 64 == 0
    committed = memory["kv_cache"] // (32 * 2 ** 21) * (32 * 2 ** 21)
    blocks = committed // (64 * 131072)
    assert result["kv_cache_tokens"] == blocks * 64
    assert result["max_concurrency"] == round(result["kv_cache_tokens"] / 131072.0, 2)


def test_vllm_defaults_are_applied():
    h100 = plan_for("llama-3.1-8b", "H100")["plan"]
    a100 = plan_for("llama-3.1-8b", "A100-80GB")["plan"]
    assert h100["gpu_memory_utilization"] == 0.92
    assert h100["max_model_len"] == 131072
    assert (h100["max_num_batched_tokens"], h100["max_num_seqs"]) == (8192, 1024)
    # vLLM keeps the A100 on the small defaults (larger batches reduced its throughput)
    assert (a100["max_num_batched_tokens"], a100["max_num_seqs"]) == (2048, 256)


def test_llama_8b_on_one_h100_is_in_the_range_vllm_reports():
    # vLLM logs ~54-57 GiB of KV cache for Llama-3.1-8B on one H100 at 0.9-0.92 utilization; the estimate must be
    # close and not above it.
    memory = plan_for("llama-3.1-8b", "H100")["memory_per_gpu"]
    assert 14.9 * GIB < memory["weights"] < 15.0 * GIB
    assert 50 * GIB < memory["kv_cache"] < 57 * GIB


# ----- plans for the seed's examples -----

def test_7b_fits_one_gpu():
    result = plan_for("mistral-7b", "A100-80GB")
    assert layout(result) == (1, 1, 1)
    assert result["plan"]["gpus_per_replica"] == 1 and result["fits"]


def test_70b_fp16_on_a100_tp2_holds_too_little_kv_cache_so_tp4():
    result = plan_for("llama-3.1-70b", "A100-80GB")
    assert layout(result) == (4, 1, 1) and result["fits"]
    tp2 = [alt for alt in result["plan"]["alternatives"] if alt["tensor_parallel_size"] == 2][0]
    # The common "TP=2" answer: 65.7 GiB of weights per 79 GiB GPU leaves ~4 GiB for KV cache, ~25k tokens (24,576 with
    # vLLM 0.34's whole 2 MiB granules per layer), not even one 128k-token request.
    assert tp2["kv_cache_gib_per_gpu"] < 6
    assert 20000 < tp2["kv_cache_tokens"] < 40000
    assert not tp2["meets_targets"]
    assert any(line.startswith("TP2 x PP1 leaves") and "%d tokens" % tp2["kv_cache_tokens"] in line for line in result["advice"])
    assert result["kv_cache_tokens"] > 400000


def test_70b_fp16_on_a100_short_context_stays_on_tp2():
    result = plan_for("llama-3.1-70b", "A100-80GB", max_model_len=8192)
    assert layout(result) == (2, 1, 1)
    assert result["max_concurrency"] >= 1


def test_70b_concurrency_target_moves_tp2_to_tp4():
    result = plan_for("llama-3.1-70b", "A100-80GB", max_model_len=32768, min_concurrency=4)
    assert layout(result) == (4, 1, 1)
    assert result["max_concurrency"] >= 4


def test_seed_scenario_70b_on_8xa100_fixed_tp8():
    result = plan_for("llama-3.1-70b", "NVIDIA-A100-SXM4-80GB", tensor_parallel_size=8)
    assert layout(result) == (8, 1, 1) and result["fits"]
    assert result["plan"]["gpu"] == "A100-80GB"
    assert result["plan"]["gpu_labels"] == ["NVIDIA-A100-SXM4-80GB"]
    assert result["kv_cache_tokens"] > 1300000
    assert "--tensor-parallel-size=8" in result["vllm_args"]


def test_seed_scenario_70b_on_8xa100_concurrency_needs_8():
    result = plan_for("llama-3.1-70b", "A100-80GB", min_concurrency=8)
    assert layout(result) == (8, 1, 1) and result["fits"]
    assert result["max_concurrency"] >= 8


def test_405b_fp16_on_h100_takes_two_nodes_tp8_pp2():
    result = plan_for("llama-3.1-405b", "H100-80GB")
    assert layout(result) == (8, 2, 2) and result["fits"]
    assert result["plan"]["stage_layers"] == [63, 63]
    assert result["plan"]["gpus_per_replica"] == 16
    assert any("spans 2 nodes" in warning for warning in result["warnings"])
    assert any(line.startswith("FP8 fits this on 8 GPUs instead of 16") for line in result["advice"])


def test_405b_fp8_on_h200_fits_one_node():
    result = plan_for("llama-3.1-405b", "H200", dtype="fp8")
    assert result["plan"]["nodes"] == 1 and result["plan"]["pipeline_parallel_size"] == 1 and result["fits"]
    busy = plan_for("llama-3.1-405b", "H200", dtype="fp8", min_concurrency=4)
    assert layout(busy) == (8, 1, 1) and busy["fits"]


def test_moe_and_mla_plans():
    assert layout(plan_for("deepseek-r1", "H200")) == (8, 1, 1)
    assert layout(plan_for("deepseek-v3", "H100")) == (8, 2, 2)
    qwen = plan_for("qwen3-235b-a22b", "H100")
    assert layout(qwen) == (8, 1, 1)
    assert "FP8 fits this on 4 GPUs instead of 8: quantize first (an FP8 checkpoint, or --quantization=fp8)" in qwen["advice"]


def test_fp8_advice_only_on_fp8_capable_gpus():
    result = plan_for("qwen3-235b-a22b", "A100-80GB")
    assert not any(line.startswith("FP8 fits") for line in result["advice"])
    assert not any("kv-cache-dtype" in line for line in result["advice"])


def test_pcie_gpus_warn_about_wide_tensor_parallel():
    result = plan_for("llama-3.1-70b", "L40S", max_model_len=8192)
    assert result["plan"]["tensor_parallel_size"] >= 4
    assert any("PCIe" in warning for warning in result["warnings"])
    assert not any("PCIe" in warning for warning in plan_for("llama-3.1-70b", "A100-80GB")["warnings"])


def test_every_catalog_model_plans_on_h200():
    for hf_id in model_catalog.model_ids():
        spec = spec_of(hf_id)
        result = plan_for(hf_id, "H200", max_model_len=min(8192, spec.max_position_embeddings))
        assert result["fits"], hf_id
        assert result["plan"]["tensor_parallel_size"] * result["plan"]["pipeline_parallel_size"] == result["plan"]["gpus_per_replica"]


# ----- when nothing fits -----

def test_no_fit_says_by_how_much_and_what_would():
    result = plan_for("llama-3.1-405b", "A100-80GB", max_nodes=1)
    assert not result["fits"]
    text = " ".join(result["warnings"])
    assert "does not fit on TP8 x PP1 on A100-80GB" in text and "GiB more than its usable" in text
    assert "fits with more GPUs: TP8 x PP2 = 16 GPUs on 2 node(s)" in text
    assert "fits with FP8 weights (dtype=fp8, weight-only on this pre-Hopper GPU)" in text
    assert result["plan"]["warnings"] == result["warnings"]


def test_concurrency_short_suggests_shorter_context():
    result = plan_for("llama-3.1-70b", "A100-80GB", max_nodes=1, tensor_parallel_size=2, pipeline_parallel_size=1)
    assert not result["fits"]
    assert result["kv_cache_tokens"] < 131072
    assert any("fits with a shorter context: max_model_len=" in warning for warning in result["warnings"])


# ----- validation -----

@pytest.mark.parametrize("options, field, words", [
    ({"tensor_parallel_size": 3}, "tensor_parallel_size", "does not divide the 64 attention heads"),
    ({"tensor_parallel_size": 16, "gpus_per_node": 8}, "tensor_parallel_size", "exceeds gpus_per_node"),
    ({"pipeline_parallel_size": 200}, "pipeline_parallel_size", "exceeds the model's 80 layers"),
    ({"max_model_len": 0}, "max_model_len", "positive integer"),
    ({"max_model_len": 200000}, "max_model_len", "max_position_embeddings 131072"),
    ({"min_concurrency": -1}, "min_concurrency", "positive number"),
    ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization", "(0, 1]"),
    ({"max_num_seqs": 0}, "max_num_seqs", "positive integer"),
    ({"dtype": "int3"}, "dtype", "allowed: bf16, fp16, fp32, fp8, int8, int4"),
    ({"kv_cache_dtype": "int8"}, "kv_cache_dtype", "allowed: auto, fp8"),
])
def test_bad_input_names_the_field(options, field, words):
    with pytest.raises(sizing.SizingError) as error:
        plan_for("llama-3.1-70b", "A100-80GB", **options)
    assert error.value.field == field
    assert words in str(error.value)


def test_tp_that_does_not_divide_heads_lists_allowed_sizes():
    # Llama 3.2 3B has 24 attention heads: TP16 (within a 16-GPU node) does not divide them.
    with pytest.raises(sizing.SizingError) as error:
        plan_for("llama-3.2-3b", "H100", tensor_parallel_size=16, gpus_per_node=16)
    assert "does not divide the 24 attention heads" in str(error.value)
    assert "allowed for meta-llama/Llama-3.2-3B-Instruct: 1, 2, 4, 8" in str(error.value)


def test_gpu_memory_gib_sizes_an_unlisted_gpu():
    hf_id, config = model_catalog.lookup("llama-3.1-8b")
    result = sizing.plan(sizing.ModelSpec(config, hf_id), hf_id, hf_id, gpu_memory_gib=48)
    assert result["memory_per_gpu"]["total"] == 48 * GIB
    assert result["plan"]["gpu"] == "48 GiB GPU" and result["plan"]["gpu_labels"] == []
    with pytest.raises(sizing.SizingError) as error:
        sizing.plan(sizing.ModelSpec(config, hf_id), hf_id, hf_id)
    assert error.value.field == "gpu"


def test_config_file_errors(tmp_path):
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    with pytest.raises(sizing.SizingError) as error:
        sizing.load_config_path(str(tmp_path))
    assert error.value.field == "model" and "not valid JSON" in str(error.value)
    with pytest.raises(sizing.SizingError) as error:
        sizing.load_config_path(str(tmp_path / "missing"))
    assert "no config.json" in str(error.value)
    broken.write_text(json.dumps({"hidden_size": 4096, "num_hidden_layers": 0}))
    with pytest.raises(sizing.SizingError) as error:
        sizing.ModelSpec(sizing.load_config_path(str(broken)), str(broken))
    assert "'num_hidden_layers' must be a positive integer, got 0" in str(error.value)


def test_multimodal_text_config_is_read(tmp_path):
    config = {"architectures": ["SomeVLM"], "text_config": dict(model_catalog.MODELS["Qwen/Qwen2.5-7B-Instruct"])}
    spec = sizing.ModelSpec(config, "vlm")
    assert spec.params == REFERENCE_PARAMS["Qwen/Qwen2.5-7B-Instruct"]


@pytest.mark.parametrize("dtype", ["int4", "int8"])
def test_integer_weights_for_a_float_checkpoint_are_refused(dtype):
    """vLLM can quantize unquantized weights online only to FP8: AWQ/GPTQ/compressed-tensors need their checkpoint."""
    hf_id, config = model_catalog.lookup("meta-llama/Llama-3.1-70B-Instruct")
    with pytest.raises(sizing.SizingError) as caught:
        sizing.plan(sizing.ModelSpec(config), hf_id, hf_id, gpu_memory_gib=80, dtype=dtype)
    assert caught.value.field == "dtype"
    message = str(caught.value)
    assert "dtype=%r" % dtype in message and "pre-quantized" in message and "dtype=fp8" in message


def test_fp8_on_a_float_checkpoint_is_online_quantization_and_a_quantized_checkpoint_keeps_its_method():
    hf_id, config = model_catalog.lookup("meta-llama/Llama-3.1-70B-Instruct")
    online = sizing.plan(sizing.ModelSpec(config), hf_id, hf_id, gpu_memory_gib=80, dtype="fp8")
    assert online["plan"]["quantize_online"] and online["plan"]["quantization"] == "fp8"
    assert "--quantization=fp8" in online["vllm_args"]
    awq = dict(config, torch_dtype="float16", quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})
    served = sizing.plan(sizing.ModelSpec(awq), "awq", "org/awq", gpu_memory_gib=80)
    assert served["plan"]["quantization"] == "awq" and not served["plan"]["quantize_online"]
    assert not [arg for arg in served["vllm_args"] if arg.startswith(("--quantization", "--dtype"))]
    with pytest.raises(sizing.SizingError, match="already quantized"):
        sizing.plan(sizing.ModelSpec(awq), "awq", "org/awq", gpu_memory_gib=80, dtype="fp8")


# ----- no-fit messages that do not contradict themselves -----

def _suggested_lengths(result):
    import re
    # The suggestions ("fits with a shorter context: max_model_len=N", "a shorter context fits: max_model_len=N").
    return [int(value) for line in result["warnings"] + result["advice"] if "shorter context" in line
            for value in re.findall(r"max_model_len=(\d+)", line)]


def test_no_fit_over_max_nodes_says_so_and_never_suggests_beyond_the_model_limit():
    """TP8 x PP2 holds the targets but needs two nodes: not 'short of the tokens needed', no 684032-token context."""
    result = plan_for("llama-3.1-405b", "H100-80GB", max_nodes=1, pipeline_parallel_size=2)
    assert not result["fits"]
    text = " ".join(result["warnings"])
    assert "short of" not in text
    assert "more than max_nodes=1 allows" in text
    assert "fits with more GPUs: TP8 x PP2 = 16 GPUs on 2 node(s)" in text
    assert all(length < 131072 for length in _suggested_lengths(result))


@pytest.mark.parametrize("options", [dict(max_nodes=1), dict(max_nodes=1, pipeline_parallel_size=2),
                                     dict(max_nodes=1, tensor_parallel_size=8, pipeline_parallel_size=1, min_concurrency=64)])
def test_no_fit_suggestions_stay_within_the_model_limit(options):
    result = plan_for("llama-3.1-405b", "H100-80GB", **options)
    assert not result["fits"]
    limit = result["model"]["max_position_embeddings"]
    assert all(length <= limit and length < result["plan"]["max_model_len"] for length in _suggested_lengths(result))


def test_shorter_context_advice_is_shorter():
    result = plan_for("llama-3.1-70b", "A100-80GB", max_nodes=1, tensor_parallel_size=2, pipeline_parallel_size=1)
    assert _suggested_lengths(result) and all(length < 131072 for length in _suggested_lengths(result))


# ----- configs of architectures the planner does not model -----

LLAMA4_LIKE = {
    "architectures": ["Llama4ForConditionalGeneration"],
    "model_type": "llama4",
    "torch_dtype": "bfloat16",
    "vision_config": {"hidden_size": 1408, "num_hidden_layers": 34},
    "text_config": {
        "model_type": "llama4_text", "hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 202048, "max_position_embeddings": 10485760, "num_local_experts": 16, "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1, "attention_chunk_size": 8192, "no_rope_layers": [1, 1, 1, 0],
    },
}


def test_unknown_architecture_reads_text_config_and_warns_naming_the_assumptions():
    spec = sizing.ModelSpec(json.loads(json.dumps(LLAMA4_LIKE)), "llama4/config.json")
    assert spec.hidden == 5120 and spec.num_layers == 48 and spec.is_moe and spec.num_experts == 16
    result = sizing.plan(spec, "llama4", "org/llama4", gpu_name="H100-80GB", gpu_spec=gpu_catalog.lookup("H100-80GB")[1],
                         max_model_len=131072, max_nodes=2)
    text = " ".join(result["plan"]["warnings"])
    assert "Llama4ForConditionalGeneration (model_type 'llama4_text') is not an architecture the planner models" in text
    assert "interleave_moe_layer_step" in text and "attention_chunk_size" in text and "max_position_embeddings 10485760" in text
    assert "keeps its language model under text_config" in text and "no vision" in text


def test_unknown_architecture_without_the_essential_fields_is_refused():
    config = {"architectures": ["Llama4ForConditionalGeneration"], "text_config": {"model_type": "llama4_text", "hidden_size": 5120}}
    with pytest.raises(sizing.SizingError) as error:
        sizing.ModelSpec(config, "llama4/config.json")
    assert "llama4/config.json (text_config)" in str(error.value) and "num_hidden_layers" in str(error.value)


def test_known_architectures_get_no_assumption_warning():
    result = plan_for("qwen3-14b", "H100-80GB")
    assert not any("not an architecture the planner models" in warning for warning in result["warnings"])


# ----- engines -----

def test_nim_plans_with_vllms_accounting():
    # NIM 2.1.6 runs vLLM 0.32.0: a NIM plan is that release's vLLM plan.
    vllm = plan_for("llama-3.1-8b", "H100-80GB", vllm_version="0.32.0")
    nim = plan_for("llama-3.1-8b", "H100-80GB", engine="nim")
    assert nim["kv_cache_tokens"] == vllm["kv_cache_tokens"] and nim["memory_per_gpu"] == vllm["memory_per_gpu"]
    assert nim["plan"]["engine"] == "nim" and "engine" not in vllm["plan"] and "mem_fraction_static" not in vllm["plan"]


def test_sglang_plan_carries_sglangs_default_fraction_and_its_pool():
    result = plan_for("llama-3.1-8b", "H100-80GB", engine="sglang")
    plan = result["plan"]
    assert plan["engine"] == "sglang" and plan["mem_fraction_static"] == plan["gpu_memory_utilization"] == 0.828
    memory = result["memory_per_gpu"]
    assert set(memory) >= {"total", "usable", "weights", "activation_peak", "non_torch", "cuda_graph", "kv_cache"}
    assert memory["weights"] + memory["kv_cache"] <= memory["usable"]
    assert memory["kv_cache"] == result["kv_cache_tokens"] * 131072
    # A fraction the user sets wins, with a warning when it leaves less than SGLang's own reserve.
    forced = plan_for("llama-3.1-8b", "H100-80GB", engine="sglang", gpu_memory_utilization=0.92)
    assert forced["plan"]["mem_fraction_static"] == 0.92 and forced["kv_cache_tokens"] > result["kv_cache_tokens"]
    assert any("mem_fraction_static=0.92 leaves" in warning for warning in forced["warnings"])


def test_sglang_fraction_depends_on_the_layout():
    result = plan_for("llama-3.1-70b", "H100-80GB", engine="sglang")
    assert result["plan"]["tensor_parallel_size"] >= 2
    assert result["plan"]["mem_fraction_static"] < 0.828
    with pytest.raises(sizing.SizingError):
        plan_for("llama-3.1-8b", "H100-80GB", engine="trtllm")
