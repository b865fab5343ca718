# -*- coding: utf-8 -*-
"""What each vLLM release changed in the accounting the planner follows: one test per gated difference.

Every test names the source line it follows by its id in tests/contracts/vllm/memory-accounting-0.34.0.json (file
and line in the vLLM 0.34.0 sdist, written by tests/contracts/vllm/memory_accounting.py), and checks that the
evidence still says so.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, model_catalog, sizing

GIB = 1024 ** 3
EVIDENCE = "memory-accounting-0.34.0.json"


def evidence(term_id):
    """The term of the 0.34.0 evidence (file, line, text), or a skip where tests/contracts is not in the checkout."""
    folder = os.path.dirname(os.path.abspath(__file__))
    while os.path.dirname(folder) != folder:
        candidate = os.path.join(folder, "tests", "contracts", "vllm", EVIDENCE)
        if os.path.exists(candidate):
            with open(candidate) as handle:
                terms = dict((term["id"], term) for term in json.load(handle)["terms"])
            assert term_id in terms, "%s is not in %s" % (term_id, EVIDENCE)
            return terms[term_id]
        folder = os.path.dirname(folder)
    pytest.skip("tests/contracts is not in this checkout")


def spec_of(name):
    hf_id, config = model_catalog.lookup(name)
    return sizing.ModelSpec(config, hf_id)


def plan(name, gpu, version, **options):
    spec = spec_of(name)
    return sizing.plan(spec, name, name, gpu_name=gpu, gpu_spec=gpu_catalog.GPUS[gpu], vllm_version=version, **options)


def test_blocks_hold_64_tokens_from_0_34():
    term = evidence("block_size")
    assert term["file"] == "vllm/config/cache.py" and "= 64" in term["text"]
    assert (sizing.block_size("0.33.0"), sizing.block_size("0.34.0")) == (16, 64)
    llama = spec_of("meta-llama/Llama-3.1-8B-Instruct")
    page16 = llama.kv_bytes_per_token(2, 1, 1) * 16
    # 1000.5 blocks of 16 tokens per layer: 1000 blocks of 16, 250 of 64.
    memory = int(1000.5 * page16 * llama.num_layers)
    assert sizing.kv_cache_capacity(llama, 2, 1, range(llama.num_layers), memory, 4096, 4096)[0] == 16000
    assert sizing.kv_cache_capacity(llama, 2, 1, range(llama.num_layers), memory, 4096, 4096, block=64)[0] == 16000
    memory = int(1003 * page16 * llama.num_layers)
    assert sizing.kv_cache_capacity(llama, 2, 1, range(llama.num_layers), memory, 4096, 4096)[0] == 16048
    assert sizing.kv_cache_capacity(llama, 2, 1, range(llama.num_layers), memory, 4096, 4096, block=64)[0] == 16000
    # The plan's tokens are whole 64-token blocks (of what whole granules per layer hold, below).
    result = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.34.0", max_model_len=131072)
    assert result["kv_cache_tokens"] % 64 == 0


def test_each_layer_region_commits_whole_granules_from_0_34():
    """physical_bytes_for rounds every layer region up to the 2 MiB granule: the budget per layer is floored to it."""
    for term_id in ("kv_commit_granule", "kv_commit_per_segment"):
        assert evidence(term_id)["since"] == "0.34"
    llama = spec_of("meta-llama/Llama-3.1-8B-Instruct")
    result = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.34.0", max_model_len=131072)
    kv = result["memory_per_gpu"]["kv_cache"]
    regions = sizing.KV_CACHE_GRANULE_BYTES * llama.num_layers
    per_token = llama.kv_bytes_per_token(2, 1, llama.num_layers)
    assert result["kv_cache_tokens"] == (kv // regions * regions) // (64 * per_token) * 64
    # Not applied before 0.34 (a pool of whole blocks, no granules).
    old = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.33.0", max_model_len=131072)
    assert old["kv_cache_tokens"] == old["memory_per_gpu"]["kv_cache"] // (16 * per_token) * 16


def test_the_extensible_kv_cache_keeps_a_margin_free_from_0_34():
    """measure_kv_cache_bytes: min(requested - used, free at start - used - margin) - transient peak."""
    for term_id in ("extensible_kv_cache_option", "measured_budget", "measured_margin", "measured_transient",
                    "kv_margin_floor", "kv_margin_fraction"):
        assert evidence(term_id)["file"] in ("vllm/config/cache.py", "vllm/v1/worker/extensible_kv_cache.py")
    assert evidence("measured_budget")["line"] == 616
    assert not sizing.extensible_kv_cache("0.33.0") and sizing.extensible_kv_cache("0.34.0")
    old = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.33.0", gpu_memory_utilization=1.0)["memory_per_gpu"]
    new = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.34.0", gpu_memory_utilization=1.0)["memory_per_gpu"]
    assert old["usable"] == old["total"]
    margin = max(sizing.KV_CACHE_MARGIN_FLOOR_BYTES, int(new["activation_peak"] * sizing.KV_CACHE_MARGIN_FRACTION))
    assert new["usable"] == new["total"] - sizing.CUDA_CONTEXT_BYTES - margin
    assert new["kv_cache"] == (new["usable"] - new["weights"] - new["activation_peak"] - new["non_torch"]
                               - new["cuda_graph"])
    # At the rendered 0.92 the requested memory binds on an 80 GB GPU, as before.
    pinned = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.34.0")["memory_per_gpu"]
    assert pinned["usable"] == int(pinned["total"] * 0.92)


def test_the_margin_grows_with_the_transient_peak():
    """max(1 GiB floor, 0.75 x transient peak): a peak above 4/3 GiB sets it (1024 sequences of a 128k vocabulary)."""
    evidence("measured_margin")
    result = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.34.0", gpu_memory_utilization=1.0)
    memory = result["memory_per_gpu"]
    assert memory["activation_peak"] * 0.75 > GIB
    assert memory["usable"] == memory["total"] - sizing.CUDA_CONTEXT_BYTES - int(memory["activation_peak"] * 0.75)


def test_the_profile_sampler_pays_for_top_k_top_p_from_0_33():
    term = evidence("sampler_warmup_pass")
    assert term["file"] == "vllm/v1/worker/gpu/model_runner.py" and "for_sampler_warmup" in term["text"]
    assert sizing.sampler_bytes_per_logit("0.32.0", True) == sizing.SAMPLER_V2_BYTES_PER_LOGIT == 6
    assert sizing.sampler_bytes_per_logit("0.33.0", True) == sizing.SAMPLER_V2_WARMUP_BYTES_PER_LOGIT == 14
    spec = spec_of("meta-llama/Llama-3.1-8B-Instruct")
    # TP1 on an H100: 1024 rows of the 128,256-token vocabulary. At 6 bytes a logit the lm_head-sized transient was
    # the larger; at 14 the sampler is.
    hidden = 8192 * spec.hidden * 2
    lm_head = sizing._padded_vocab(spec.vocab) * spec.hidden * 2
    before = sizing._activation_peak(spec, "bf16", 1, range(32), True, 8192, 1024, True, 6)
    after = sizing._activation_peak(spec, "bf16", 1, range(32), True, 8192, 1024, True, 14)
    assert before == hidden + max(lm_head, 1024 * spec.vocab * 6) + sizing.RUNNER_BUFFERS_BYTES
    assert after == hidden + 1024 * spec.vocab * 14 + sizing.RUNNER_BUFFERS_BYTES > before
    old = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.32.0")
    new = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.33.0")
    assert (old["memory_per_gpu"]["activation_peak"], new["memory_per_gpu"]["activation_peak"]) == (before, after)
    assert new["kv_cache_tokens"] < old["kv_cache_tokens"]


def test_a_chunk_of_prompt_logprobs_is_in_the_transient_peak_from_0_34():
    for term_id in ("prompt_logprobs_warmup", "prompt_logprobs_chunk"):
        evidence(term_id)
    spec = spec_of("meta-llama/Llama-3.1-8B-Instruct")
    # TP8, 16 sequences, 2048 batched tokens: the sampler's rows are few and this rank's lm_head small, so a 1024-row
    # chunk of prompt logits over the whole vocabulary is the largest phase.
    without = sizing._activation_peak(spec, "bf16", 8, range(32), True, 2048, 16, True, 14, False)
    with_chunk = sizing._activation_peak(spec, "bf16", 8, range(32), True, 2048, 16, True, 14, True)
    hidden = 2048 * spec.hidden * 2
    assert with_chunk == hidden + 1024 * spec.vocab * 2 + sizing.RUNNER_BUFFERS_BYTES
    assert with_chunk > without
    options = dict(max_num_seqs=16, max_num_batched_tokens=2048, tensor_parallel_size=8)
    old = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.33.0", **options)
    new = plan("meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", "0.34.0", **options)
    assert (old["memory_per_gpu"]["activation_peak"], new["memory_per_gpu"]["activation_peak"]) == (without, with_chunk)


def test_every_model_runs_on_model_runner_v2_from_0_29():
    term = evidence("only_runner_v2")
    assert term["file"] == "vllm/v1/worker/gpu_worker.py"
    mixtral = spec_of("mistralai/Mixtral-8x7B-Instruct-v0.1")
    llama = spec_of("meta-llama/Llama-3.1-8B-Instruct")
    assert not sizing.runner_v2(mixtral, "bf16", "0.28.0") and sizing.runner_v2(mixtral, "bf16", "0.29.0")
    # 0.27 dropped 0.26's rule against quantized models; MoE stayed on V1 until 0.29, except a few architectures.
    assert not sizing.runner_v2(llama, "fp8", "0.26.0") and sizing.runner_v2(llama, "fp8", "0.27.0")
    assert sizing.runner_v2(spec_of("Qwen/Qwen3-30B-A3B"), "bf16", "0.27.0") is False
    # On V2 the profile sampler is V2's (6 bytes a logit before 0.33), not V1's top-k/top-p (28).
    options = dict(max_model_len=32768, max_num_batched_tokens=2048)
    old = plan("mistralai/Mixtral-8x7B-Instruct-v0.1", "H200-141GB", "0.28.0", **options)
    new = plan("mistralai/Mixtral-8x7B-Instruct-v0.1", "H200-141GB", "0.29.0", **options)
    assert new["memory_per_gpu"]["activation_peak"] < old["memory_per_gpu"]["activation_peak"]
    assert new["kv_cache_tokens"] > old["kv_cache_tokens"]


def test_v2_keeps_one_more_batch_in_flight_with_pipeline_parallelism_from_0_27():
    """max_concurrent_batches with async scheduling: pp + 1 on Model Runner V2, which sliding-window layers hold."""
    assert evidence("max_concurrent_batches")["text"] == "return pp_size + 1"
    evidence("sliding_window_blocks")
    # Mistral-7B-v0.1: a 4096-token window on every layer.
    mistral = sizing.ModelSpec({"model_type": "mistral", "sliding_window": 4096, "hidden_size": 4096,
                                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                                "intermediate_size": 14336, "vocab_size": 32000, "max_position_embeddings": 32768})
    settings = dict(gpu_memory_bytes=48 * GIB, gpu_memory_utilization=0.92, dtype="bf16", kv_cache_dtype="auto",
                    max_model_len=32768, max_num_batched_tokens=4096, max_num_seqs=256, gpus_per_node=8, max_nodes=1,
                    min_concurrency=1, engine="vllm")
    for version, batches in (("0.26.0", 2), ("0.27.0", 3)):
        layout = sizing.evaluate_layout(mistral, dict(settings, vllm_version=version), 1, 2)
        stage = min(layout["stages"], key=lambda item: item["tokens"])
        indexes = range(16) if stage["stage"] == 0 else range(16, 32)
        expected = sizing.kv_cache_capacity(mistral, 2, 1, indexes, stage["memory"]["kv_cache"], 32768, batches * 4096,
                                            sizing.block_size(version), sizing.group_size_factor(version))
        assert (stage["tokens"], stage["concurrency"]) == expected
        if batches == 3:
            # One batch more in flight: each request holds more window blocks, so fewer tokens fit.
            assert expected[0] < sizing.kv_cache_capacity(mistral, 2, 1, indexes, stage["memory"]["kv_cache"], 32768,
                                                          2 * 4096, sizing.block_size(version), 1.5)[0]


def test_hybrid_groups_take_the_largest_type_within_one_and_a_half_from_0_27():
    term = evidence("group_size_factor")
    assert term["file"] == "vllm/v1/core/kv_cache_planning.py" and "1.5" in term["text"]
    assert (sizing.group_size_factor("0.26.0"), sizing.group_size_factor("0.27.0")) == (1.25, 1.5)
    # 4 window + 3 full layers (a pipeline stage of a Gemma 2 style model): 3 x 1.25 < 4 < 3 x 1.5.
    spec = sizing.ModelSpec({"model_type": "gemma2", "sliding_window": 4096, "hidden_size": 1024,
                             "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8,
                             "intermediate_size": 4096, "vocab_size": 32000, "max_position_embeddings": 8192})
    layers = range(7)
    assert sum(1 for index in layers if spec.layer_window(index)) == 4
    page = spec.kv_bytes_per_token(2, 1, 1) * 16
    memory = 1000 * 4 * page
    # 1.25: groups of 3 layers (2 window groups, 1 full group); 1.5: groups of 4 (one of each).
    assert sizing.kv_cache_capacity(spec, 2, 1, layers, memory, 8192, 8192, 16, 1.25)[1] == (4000 // 3) / (2 * 513 + 512.0)
    assert sizing.kv_cache_capacity(spec, 2, 1, layers, memory, 8192, 8192, 16, 1.5)[1] == 1000 / (513 + 512.0)


def test_gpus_with_160_gib_batch_16k_tokens_from_0_28():
    term = evidence("batch_defaults_160gib")
    assert term["file"] == "vllm/engine/arg_utils.py" and "160" in term["text"]
    b200 = gpu_catalog.GPUS["B200"]["memory_bytes"]
    assert sizing.default_batch_limits("B200", b200, "0.27.0") == (8192, 1024)
    assert sizing.default_batch_limits("B200", b200, "0.28.0") == (16384, 1024)
    assert sizing.default_batch_limits("H200-141GB", gpu_catalog.GPUS["H200-141GB"]["memory_bytes"], "0.34.0") == (8192, 1024)
    assert plan("meta-llama/Llama-3.1-8B-Instruct", "B200", "0.34.0")["plan"]["max_num_batched_tokens"] == 16384


def test_blackwell_captures_graphs_up_to_1024_from_0_28():
    term = evidence("capture_ceiling_blackwell")
    assert term["file"] == "vllm/config/vllm.py" and "1024" in term["text"]
    options = dict(max_num_seqs=1024, max_num_batched_tokens=8192)
    old = plan("meta-llama/Llama-3.1-8B-Instruct", "B200", "0.27.0", **options)["memory_per_gpu"]["cuda_graph"]
    new = plan("meta-llama/Llama-3.1-8B-Instruct", "B200", "0.28.0", **options)["memory_per_gpu"]["cuda_graph"]
    assert old == sizing._cuda_graph(1, 32, 1024, 512)
    assert new == sizing._cuda_graph(1, 32, 1024, 1024) > old
    # Hopper keeps 512.
    h200 = plan("meta-llama/Llama-3.1-8B-Instruct", "H200-141GB", "0.34.0", **options)["memory_per_gpu"]["cuda_graph"]
    assert h200 == sizing._cuda_graph(1, 32, 1024, 512)


def test_the_pinned_release_is_the_one_the_evidence_was_taken_from():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts
    assert engine_facts.VLLM_VERSION == "0.34.0"
    assert evidence("image_cuda")["text"] == "ARG CUDA_VERSION=13.0.3"


def test_a_nim_plan_follows_the_vllm_release_nim_runs():
    """NIM 2.1.6 runs vLLM 0.32.0 (its release notes, tests/contracts/nim/nim-2.1.json): no extensible KV cache and
    16-token blocks, whatever the vllm role pins."""
    from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts
    assert engine_facts.NIM_VLLM_VERSION == "0.32.0"
    nim = plan("meta-llama/Llama-3.1-70B-Instruct", "A100-80GB", None, engine="nim", tensor_parallel_size=8)
    vllm = plan("meta-llama/Llama-3.1-70B-Instruct", "A100-80GB", None, engine="vllm", tensor_parallel_size=8)
    explicit = plan("meta-llama/Llama-3.1-70B-Instruct", "A100-80GB", "0.32.0", tensor_parallel_size=8)
    assert (nim["plan"]["vllm_version"], vllm["plan"]["vllm_version"]) == ("0.32.0", engine_facts.VLLM_VERSION)
    assert nim["kv_cache_tokens"] == explicit["kv_cache_tokens"] != vllm["kv_cache_tokens"]
