#!/usr/bin/env python3
"""The source lines of a vLLM release that the planner's memory accounting follows, with their line numbers.

``module_utils/plan/sizing.py`` models vLLM's start-up accounting (what "GPU KV cache size: N tokens" comes out as).
Each entry of TERMS below names one term of it: a source line of vLLM (a substring of exactly one line of
the file, the first that holds it), the release that introduced it where the planner gates on that, and the
planner constant or function that follows it. This script finds every line in a release's sdist and writes
``memory-accounting-<version>.json`` next to it:

    {engine, version, source {url, sha256}, terms: [{id, file, line, text, since, planner, value, note}], missing}

``missing`` lists the terms whose line the release no longer has: the accounting changed there and the
planner needs a look (``refresh.py --latest`` prints them). The unit tests read the pinned release's file
and check that the planner's constants are these values (tests/unit/test_vllm_memory_accounting.py).

    .venv/bin/python tests/contracts/vllm/memory_accounting.py --version 0.34.0 [--archive vllm-0.34.0.tar.gz]

Standard library only (the sdist is read as text, never imported).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import extract  # noqa: E402  (the sdist download and reading of tests/contracts/vllm/extract.py)

# id, file, the line's text, since (None: older than 0.27 or not gated), planner name, value, note
TERMS = [
    ("block_size", "vllm/config/cache.py", "DEFAULT_BLOCK_SIZE: ClassVar[int] = 64", "0.34",
     "sizing.BLOCK_SIZE_FROM_0_34", 64, "KV-cache block size in tokens (16 up to 0.33)"),
    ("block_size_flash_attn", "vllm/v1/attention/backends/flash_attn.py",
     "return super().get_preferred_block_size(default_block_size)", None, None, None,
     "FlashAttention keeps the default block size (the backend the planner's dense models use)"),
    ("default_gpu_memory_utilization", "vllm/config/cache.py",
     "DEFAULT_GPU_MEMORY_UTILIZATION: ClassVar[float] = 0.92", None,
     "sizing.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION", 0.92,
     "the utilization without the extensible KV cache; the plan renders it explicitly"),
    ("gpu_memory_utilization_unset", "vllm/config/cache.py",
     "gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)", "0.34", None, None,
     "unset resolves to 1.0 with the extensible KV cache (resolved_gpu_memory_utilization)"),
    ("extensible_kv_cache_option", "vllm/config/cache.py",
     "enable_extensible_kv_cache: bool = Field(default=None)", "0.34", "sizing.extensible_kv_cache", True,
     "the KV cache is sized from memory measured after warmup and CUDA-graph capture"),
    ("extensible_kv_cache_default", "vllm/config/vllm.py",
     "enabled = unsupported is None and (exports_fd or not fabric_unavailable)", "0.34", None, None,
     "on by default on CUDA (no KV connector, no kv_cache_memory_bytes)"),
    ("kv_margin_floor", "vllm/v1/worker/extensible_kv_cache.py",
     "KV_CACHE_MARGIN_FLOOR_BYTES = (3 if current_platform.is_rocm() else 1) << 30", "0.34",
     "sizing.KV_CACHE_MARGIN_FLOOR_BYTES", 1 << 30, "margin floor on CUDA"),
    ("kv_margin_fraction", "vllm/v1/worker/extensible_kv_cache.py", "KV_CACHE_MARGIN_FRACTION = 0.75", "0.34",
     "sizing.KV_CACHE_MARGIN_FRACTION", 0.75, "margin share of the transient peak"),
    ("kv_commit_granule", "vllm/utils/extensible_tensor.py", "_MIN_GRANULARITY = 2 << 20", "0.34",
     "sizing.KV_CACHE_GRANULE_BYTES", 2 << 20, "each layer region of the KV cache is mapped in whole granules"),
    ("kv_commit_per_segment", "vllm/v1/worker/extensible_kv_cache.py", "-(-num_blocks * stride // granule) * granule",
     "0.34", None, None, "physical_bytes_for: every segment (layer region) rounded up to the granule"),
    ("measured_non_kv", "vllm/v1/worker/extensible_kv_cache.py",
     "non_kv_used = init_free_memory - free_memory - committed_bytes", "0.34", None, None,
     "memory in use after capture: weights, non-torch, CUDA graphs"),
    ("measured_margin", "vllm/v1/worker/extensible_kv_cache.py",
     "margin = max(margin_floor_bytes, int(transient_peak_bytes * margin_fraction))", "0.34", None, None, ""),
    ("measured_budget", "vllm/v1/worker/extensible_kv_cache.py",
     "available = min(requested_memory - non_kv_used, headroom - margin)", "0.34", None, None,
     "requested memory, or the free memory at start less the margin"),
    ("measured_transient", "vllm/v1/worker/extensible_kv_cache.py",
     "available -= max(transient_peak_bytes, torch_reserve_growth_bytes)", "0.34", None, None,
     "the transient peak stays free"),
    ("transient_is_profiled_peak", "vllm/v1/worker/gpu_worker.py",
     "kv_cache.reserved_headroom_bytes = getattr(", "0.34", None, None,
     "the transient peak starts as the profile run's activation peak"),
    ("graphs_before_measuring", "vllm/v1/worker/gpu_worker.py",
     "cuda_graph_memory_bytes = self.model_runner.capture_model()", None, None, None,
     "CUDA graphs are captured before measure_kv_cache_blocks runs: resident, so taken off"),
    ("measure_after_warmup", "vllm/v1/worker/gpu_worker.py", "measure_kv_cache_blocks(", "0.34", None, None, ""),
    ("no_graph_estimate_when_extensible", "vllm/v1/worker/gpu/model_runner.py",
     "# The extensible KV cache measures the capture footprint after warmup.", "0.34", None, None,
     "profile_cudagraph_memory returns 0: the graphs are measured, not estimated"),
    ("graph_estimate_in_budget", "vllm/v1/worker/gpu_worker.py", "- cudagraph_memory_estimate", None,
     "sizing.cuda_graphs_in_budget", True, "without the extensible KV cache the estimate comes off (0.27+)"),
    ("only_runner_v2", "vllm/v1/worker/gpu_worker.py", "return GPUModelRunner(self.vllm_config, self.device)",
     "0.29", "sizing.runner_v2", True,
     "every model runs on Model Runner V2 (0.29: its default for every model; 0.34 has no V1 runner left)"),
    ("sampler_warmup_pass", "vllm/v1/worker/gpu/model_runner.py",
     "warmup_params = SamplingParams.for_sampler_warmup()", "0.33",
     "sizing.SAMPLER_V2_WARMUP_BYTES_PER_LOGIT", 14,
     "the profile run samples again with top-k/top-p, penalties and logprobs"),
    ("sampler_fp32_copy", "vllm/v1/worker/gpu/sample/sampler.py",
     "logits = torch.empty_like(logits, dtype=torch.float32).copy_(logits)", None, None, None,
     "4 bytes per logit beside the bf16 logits"),
    ("sampler_flashinfer_topk_topp", "vllm/v1/sample/ops/topk_topp_sampler.py",
     "next_token_ids = flashinfer.sampling.top_k_top_p_sampling_from_logits(", None, None, None,
     "FlashInfer masks the top-k logits (fp32) and takes their softmax (fp32): 8 bytes per logit"),
    ("prompt_logprobs_warmup", "vllm/v1/worker/gpu/warmup.py",
     "prompt_logprobs = max_logprobs if max_logprobs != 0 else None", "0.34", None, None,
     "the sizing warmup's full-budget prefill asks for prompt logprobs"),
    ("prompt_logprobs_chunk", "vllm/v1/worker/gpu/sample/prompt_logprob.py", "CHUNK_SIZE = 1024", "0.34",
     "sizing.PROMPT_LOGPROBS_CHUNK_ROWS", 1024, "prompt logits are computed 1024 rows at a time"),
    ("max_concurrent_batches", "vllm/config/vllm.py", "return pp_size + 1", "0.27", None, None,
     "async scheduling on Model Runner V2 keeps pipeline depth + 1 batches in flight (sliding windows)"),
    ("group_size_factor", "vllm/v1/core/kv_cache_planning.py", "if max_num_layers < min_num_layers * 1.5:", "0.27",
     "sizing.group_size_factor", 1.5, "hybrid models' KV-cache group size"),
    ("batch_defaults_160gib", "vllm/engine/arg_utils.py", "if device_memory >= 160 * GiB_bytes:", "0.28",
     "sizing.default_batch_limits", [16384, 1024], "max_num_batched_tokens, max_num_seqs on >= 160 GiB GPUs"),
    ("capture_ceiling_blackwell", "vllm/config/vllm.py",
     "1024 if current_platform.is_device_capability_family(100) else 512", "0.28",
     "sizing.CUDA_GRAPH_MAX_CAPTURE_SIZE_BLACKWELL", 1024, "CUDA-graph capture ceiling on compute capability 10.x"),
    ("sliding_window_blocks", "vllm/v1/kv_cache_interface.py", "return cdiv(num_tokens, self.block_size) + 1", None,
     None, None, "blocks a sliding-window request holds: cdiv(min(window - 1 + in flight, max_model_len), block) + 1"),
    ("reported_tokens", "vllm/v1/core/kv_cache_utils.py",
     "return int(max_concurrency * max_model_len), max_concurrency", None, None, None,
     "\"GPU KV cache size\" = int(blocks / blocks per request x max_model_len)"),
    ("allocator_split_limit", "vllm/v1/worker/gpu_worker.py",
     "# Workspaces (e.g. the MoE workspace) grow in steps during this pass,", "0.34", None, None,
     "the profile run caps the allocator's split size at 20 MiB, so less fragmentation is counted as consumed "
     "(not modelled: no measurement)"),
    ("image_cuda", "docker/Dockerfile", "ARG CUDA_VERSION=13.0.3", None, "engine_vllm.ENGINE.image_cuda", "13.0",
     "the image's CUDA, hence the driver the validation asks for"),
]


def locate(files, terms=TERMS):
    """(found entries, missing ids) of ``terms`` in ``files`` (path -> text)."""
    found, missing = [], []
    for term_id, path, text, since, planner, value, note in terms:
        lines = (files.get(path) or "").splitlines()
        number = next((index + 1 for index, line in enumerate(lines) if text in line), None)
        if number is None:
            missing.append(term_id)
            continue
        found.append({"id": term_id, "file": path, "line": number, "text": lines[number - 1].strip(),
                      "since": since, "planner": planner, "value": value, "note": note})
    return found, missing


def build(version, files, url, sha):
    terms, missing = locate(files)
    return {"engine": "vllm", "version": version, "source": {"url": url, "sha256": sha}, "terms": terms,
            "missing": missing}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=extract.DEFAULT_VERSION)
    parser.add_argument("--archive", help="use this sdist instead of downloading it")
    parser.add_argument("--source-url", help="where --archive came from")
    parser.add_argument("--out", help="output path (default: next to this script)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    def log(message):
        if not args.quiet:
            print(message, file=sys.stderr)

    files, url, sha = extract.fetch_files("vllm", args.version, args.archive, args.source_url, log)
    contract = build(args.version, files, url, sha)
    out = Path(args.out) if args.out else HERE / ("memory-accounting-%s.json" % args.version)
    out.write_text(json.dumps(contract, indent=2) + "\n")
    log("wrote %s: %d terms found, %d missing%s" % (out, len(contract["terms"]), len(contract["missing"]),
                                                   (" (" + ", ".join(contract["missing"]) + ")") if contract["missing"] else ""))
    return 1 if contract["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
