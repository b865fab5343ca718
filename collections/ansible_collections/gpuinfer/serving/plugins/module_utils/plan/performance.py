# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Serving speed of a gpu_sizing plan on vLLM: predicted TTFT, TPOT and throughput under a closed-loop load.

Pure Python (no Ansible, no torch, no network). Built from the hardware (gpu_catalog's datasheet bandwidth and
dense tensor TFLOP/s) and the plan (weights and KV bytes per GPU, TP x PP, batch limits), not from a table of
measured models; the efficiency constants below are fitted once on real vLLM 0.26.0 runs on one H100 80GB HBM3
(tests/fixtures/vllm-perf/perf.jsonl: Llama-3.1-8B and Qwen3-14B, six load levels each).

One engine step (vLLM's scheduler iteration: the running decodes plus up to max_num_batched_tokens - decodes prompt
tokens, chunked prefill) takes, per pipeline stage:

    memory    = (weights read + KV read) / (HBM bandwidth x BANDWIDTH_EFFICIENCY)
    compute   = (2 x active linear params per GPU x tokens + attention FLOPs) / (dense TFLOP/s x COMPUTE_EFFICIENCY)
    comm      = TP: 2 all-reduces per layer of hidden x tokens x activation bytes, ring cost 2(TP-1)/TP over the
                GPU's NVLink (or PCIe) bandwidth x LINK_EFFICIENCY, plus ALLREDUCE_LATENCY_S per call
    stage     = max(memory, compute) + comm
    step(GPU) = sum over the PP stages (a step's batch traverses every stage: the pipeline bubble) + (PP - 1)
                point-to-point hand-offs + STEP_OVERHEAD_S
    step      = max(step(GPU), HOST_SECONDS_PER_SEQUENCE x running sequences)   (async scheduling overlaps the
                host's per-sequence work, scheduler and output streaming, with the GPU)

* weights read: the rank's weight bytes (gpu_sizing's per-GPU shard) minus the input embedding (a gather of a few
  rows, not a read of the table). MoE: a step of B tokens, each routed to k of E experts, touches
  E x (1 - (1 - k/E)^B) distinct experts per layer (expected value for independent uniform routing), so at B = 1
  only the active experts are read and at large B nearly all; the untouched experts' bytes are not read.
* KV read: every decode reads its whole context (KV bytes per token per GPU x context); a prompt chunk reads the
  KV of its earlier chunks.
* compute: linear layers 2 FLOPs per active parameter per token (lm_head only for sampled tokens); causal attention
  4 x heads x head_dim FLOPs per (query, key) pair per layer (QK^T and PV). FP8 (W8A8) and INT8 run at the GPU's FP8
  tensor rate where it has one; weight-only formats (INT4 AWQ/GPTQ, FP8 on Ampere) at the BF16 rate.
* closed loop with chunked prefill: C clients, each sending its next request when the last finishes. Identical
  requests sent together (as ``vllm bench serve --max-concurrency C`` and the fixtures' probe do) run in cycles:
  the C prompts queue and are prefilled in budget-sized steps, each step also carrying the decodes already running,
  then all decode together. The cycle is modelled step by step (requests that finish their prompt in the same step
  move together), so each step carries the running decodes plus the prompt tokens that arrive at C / request time.
  A request's TTFT = REQUEST_OVERHEAD_S + the steps up to the one that completes its prompt (queueing behind the
  prompts sent before it); its TPOT = (its last token - its first) / (output_len - 1), which includes the prompt-heavy
  steps of the requests behind it (prefill interference), so TPOT rises with concurrency. Points report the median
  request (p50), as the fixtures do; throughput = requests of a cycle / its length. Clients beyond what the engine
  can run at once (max_num_seqs, or the KV cache holding input_len + output_len per request) wait a whole cycle.
  Desynchronised (e.g. Poisson) arrivals spread the prompt-heavy steps over every request instead: TPOT nearer the
  fixtures' p90, TTFT lower.
* bound: the largest share of the median request's decode time per token: weight reads, KV reads, compute,
  communication (TP all-reduce, PP hand-off), or prefill interference (the prompt-heavy steps above a pure decode
  step). Fixed per-step and per-request overheads are not a category.

NIM runs vLLM inside for these models, so it follows the same model; TRT-LLM or SGLang back ends are not modelled.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import math

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

# --------------------------------------------------------------------------------------------
# Calibrated constants (each fitted once; tests/fixtures/vllm-perf, vLLM 0.26.0, one H100 80GB HBM3, bf16)
# --------------------------------------------------------------------------------------------

# Share of the datasheet HBM bandwidth a decode step achieves: from the two concurrency-1 TPOTs at 1024/128
# (Llama-3.1-8B 6.239 ms reading 15.0 GB of weights, Qwen3-14B 11.121 ms reading 28.0 GB): the slope of step time
# over bytes read gives 0.80 of 3.35 TB/s; the same fit predicts the 8192/8 TPOTs within 2% (longer KV reads).
BANDWIDTH_EFFICIENCY = 0.80
# Fixed time of every engine step beyond its reads and FLOPs (kernel launches inside the CUDA graph, sampling,
# scheduling): the intercept of the same two-point fit at concurrency 1 (0.55 ms).
STEP_OVERHEAD_S = 0.55e-3
# Share of the datasheet dense BF16 tensor rate a prompt achieves: from the concurrency-1 TTFTs at 1024 and 8192
# prompt tokens (Llama-3.1-8B 33.4 / 226.0 ms, Qwen3-14B 52.4 / 392.1 ms): the slope over FLOPs gives 0.62 (Llama)
# and 0.64 (Qwen3) of 989 TFLOP/s.
COMPUTE_EFFICIENCY = 0.63
# Request time outside the engine steps (HTTP, admission, first streamed chunk): the intercept of the TTFT fit
# above (9.5 ms Llama, 9.2 ms Qwen3).
REQUEST_OVERHEAD_S = 9.3e-3
# Host time per running sequence per step (scheduler, output processing and streaming of one token), overlapped
# with the GPU by async scheduling: it binds only at large batches. From the concurrency-256 levels (512/128): their
# pure-decode steps take about 27 ms (Llama-3.1-8B) and 23 ms (Qwen3-14B) at 256 sequences where the GPU needs 13 and
# 19 ms; 0.11 ms fits both levels' TPOT and throughput best (within 8%); at concurrency 64 (7 ms) it stays under the
# GPU time, as measured.
HOST_SECONDS_PER_SEQUENCE = 0.11e-3

# Not calibrated (the fixtures have no TP > 1 or PP > 1 run):
# Share of the datasheet NVLink/PCIe bandwidth a ring all-reduce reaches (NCCL busbw on H100 NVLink: about 360 of
# 450 GB/s per direction; the datasheets' NVLink figure counts both directions, so half of it is used per direction).
LINK_EFFICIENCY = 0.8
# Per all-reduce call: vLLM's custom all-reduce on NVLink takes a few microseconds for decode-sized messages; NCCL over
# PCIe more.
ALLREDUCE_LATENCY_S = 8e-6
PCIE_ALLREDUCE_LATENCY_S = 25e-6
# Per pipeline-stage hand-off (send/recv of the hidden states) on top of its bytes.
P2P_LATENCY_S = 30e-6

BOUNDS = ("weight reads", "KV reads", "compute", "communication", "prefill interference")
ENGINE_MODEL = "vllm"

# Bytes per weight for the planner's dtypes (scales neglected), and the activation bytes of each.
_WEIGHT_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5 + 2.5 / 128}


class PerformanceError(ValueError):
    """Bad input: ``field`` names the option at fault."""

    def __init__(self, field, message):
        super(PerformanceError, self).__init__(message)
        self.field = field


def model_shape(spec):
    """The model shape predict() reads, from the planner's parsed config (a sizing.ModelSpec)."""
    moe_layers = [layer for layer in spec.layers if layer["moe"]]
    return {
        "num_layers": spec.num_layers,
        "hidden_size": spec.hidden,
        "num_attention_heads": spec.num_heads,
        "num_kv_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "intermediate_size": spec.intermediate,
        "vocab_size": spec.vocab,
        "params": spec.params,
        "active_params": spec.active_params,
        "tied": spec.tied,
        "num_experts": spec.num_experts,
        "experts_per_token": spec.experts_per_token if spec.is_moe else 0,
        "moe_layers": len(moe_layers),
        "expert_params": moe_layers[0]["expert_each"] if moe_layers else 0,
    }


def normalize_concurrency(concurrency, max_num_seqs=None):
    """Sorted, de-duplicated positive ints; None means the default [1, 16, 64] plus max_num_seqs."""
    if concurrency is None:
        values = [1, 16, 64] + ([max_num_seqs] if max_num_seqs else [])
    else:
        if isinstance(concurrency, (int,)) and not isinstance(concurrency, bool):
            concurrency = [concurrency]
        if not isinstance(concurrency, (list, tuple)) or not concurrency:
            raise PerformanceError("concurrency", "concurrency=%r must be a non-empty list of positive integers (clients "
                                   "in a closed loop), such as [1, 16, 64]" % (concurrency,))
        values = [inputs.whole_number(value) for value in concurrency]
        if None in values:
            raise PerformanceError("concurrency", "concurrency=%r: %r is not a positive integer; allowed: a non-empty list of "
                                   "positive integers (clients in a closed loop)" % (list(concurrency), concurrency[values.index(None)]))
    return sorted(set(values))


def compute_tflops(gpu, dtype, quantization=None):
    """Dense tensor TFLOP/s the linear layers run at: FP8 rate for W8A8 formats on FP8 GPUs, else BF16 (fp32: half)."""
    bf16 = gpu.get("bf16_tflops")
    if not bf16:
        raise PerformanceError("gpu", "the GPU has no bf16_tflops figure: predictions need a catalog GPU")
    if dtype in ("fp8", "int8") and gpu.get("fp8_tflops"):
        return gpu["fp8_tflops"]
    if dtype == "fp32":
        return bf16 / 2.0
    return bf16


def expected_experts(num_experts, experts_per_token, tokens):
    """Expected distinct experts B tokens touch, each choosing k of E: E x (1 - (1 - k/E)^B)."""
    if not num_experts:
        return 0.0
    return num_experts * (1.0 - (1.0 - float(experts_per_token) / num_experts) ** max(0, tokens))


class _Engine(object):
    """Step-time model of one replica."""

    def __init__(self, shape, gpu, tp, pp, stage_weights_bytes, stage_layers, kv_bytes_per_token, dtype, quantization):
        self.tp, self.pp = tp, pp
        self.layers = shape["num_layers"]
        self.hidden = shape["hidden_size"]
        self.act_bytes = 4.0 if dtype == "fp32" else 2.0
        self.bandwidth = gpu["memory_bandwidth_bytes_per_s"] * BANDWIDTH_EFFICIENCY
        self.flops = compute_tflops(gpu, dtype, quantization) * 1e12 * COMPUTE_EFFICIENCY
        self.attention_flops_rate = gpu["bf16_tflops"] * 1e12 * COMPUTE_EFFICIENCY
        if gpu.get("nvlink_bandwidth_bytes_per_s") and (gpu.get("nvlink") == "all" or (gpu.get("nvlink") == "pairs" and tp <= 2)):
            self.link = gpu["nvlink_bandwidth_bytes_per_s"] / 2.0 * LINK_EFFICIENCY
            self.link_latency = ALLREDUCE_LATENCY_S
        else:
            self.link = gpu["pcie_bandwidth_bytes_per_s"] / 2.0 * LINK_EFFICIENCY
            self.link_latency = PCIE_ALLREDUCE_LATENCY_S
        vocab = shape["vocab_size"]
        tied = shape.get("tied", False)
        embed = vocab * self.hidden
        # Per-layer active linear parameters (attention, MLP, active experts), without embedding and lm_head.
        body = shape["active_params"] - embed * (1 if tied else 2)
        self.layer_active = max(0.0, float(body)) / self.layers
        self.lm_head_params = float(embed)
        self.q_width = shape["num_attention_heads"] * shape["head_dim"]
        self.moe = bool(shape.get("num_experts"))
        self.num_experts = shape.get("num_experts") or 0
        self.experts_per_token = shape.get("experts_per_token") or 0
        self.moe_fraction = float(shape.get("moe_layers") or 0) / self.layers
        wbytes = _WEIGHT_BYTES.get(dtype, 2.0)
        self.expert_bytes = float(shape.get("expert_params") or 0) * wbytes / tp
        embed_shard = embed * self.act_bytes / tp
        self.stages = []
        for index, (weights, layers) in enumerate(zip(stage_weights_bytes, stage_layers)):
            read = float(weights)
            if index == 0 and (not tied or pp > 1):
                read -= embed_shard
            self.stages.append({
                "weights": max(0.0, read),
                "layers": layers,
                "kv_per_token": float(kv_bytes_per_token) * layers / self.layers,
                "moe_layers": self.moe_fraction * layers,
                "last": index == len(stage_layers) - 1,
            })

    def step(self, decodes, decode_context, prefill_tokens, prefill_attention_pairs, prefill_context_reads, sampled):
        """(step seconds, {category: seconds}) for one step.

        decodes: running sequences decoding one token; decode_context: the sum of their contexts; prefill_tokens:
        prompt tokens in the step; prefill_attention_pairs: causal (query, key) pairs of those chunks;
        prefill_context_reads: KV tokens of earlier chunks the step's chunks read; sampled: rows through lm_head.
        """
        tokens = decodes + prefill_tokens
        parts = dict((name, 0.0) for name in BOUNDS)
        total = 0.0
        for stage in self.stages:
            weights = stage["weights"]
            if self.moe and stage["moe_layers"]:
                untouched = self.num_experts - expected_experts(self.num_experts, self.experts_per_token, tokens)
                weights -= untouched * self.expert_bytes * stage["moe_layers"]
            kv = stage["kv_per_token"] * (decode_context + prefill_context_reads)
            weight_time = weights / self.bandwidth
            kv_time = kv / self.bandwidth
            linear = 2.0 * self.layer_active * stage["layers"] * tokens / self.tp
            if stage["last"]:
                linear += 2.0 * self.lm_head_params * sampled / self.tp
            pairs = prefill_attention_pairs + decode_context
            attention = 4.0 * self.q_width * stage["layers"] * pairs / self.tp
            compute_time = linear / self.flops + attention / self.attention_flops_rate
            comm = 0.0
            if self.tp > 1:
                message = self.hidden * tokens * self.act_bytes
                comm = 2 * stage["layers"] * (self.link_latency + 2.0 * (self.tp - 1) / self.tp * message / self.link)
            if weight_time + kv_time >= compute_time:
                parts["weight reads"] += weight_time
                parts["KV reads"] += kv_time
            else:
                parts["compute"] += compute_time
            parts["communication"] += comm
            total += max(weight_time + kv_time, compute_time) + comm
        if self.pp > 1:
            hand_off = (self.pp - 1) * (P2P_LATENCY_S + self.hidden * tokens * self.act_bytes / self.link)
            parts["communication"] += hand_off
            total += hand_off
        gpu_time = total + STEP_OVERHEAD_S
        host_time = HOST_SECONDS_PER_SEQUENCE * (decodes + (1 if prefill_tokens else 0))
        return max(gpu_time, host_time), parts


class _Cohort(object):
    """Requests whose prompts completed in the same step: they decode in lockstep."""

    def __init__(self, count, first_token, remaining, context):
        self.count = count
        self.first_token = first_token
        self.remaining = remaining
        self.context = context
        self.finish = first_token if remaining == 0 else None
        self.time_parts = dict((name, 0.0) for name in BOUNDS)


def _cycle(engine, batch, input_len, output_len, budget):
    """Simulate one closed-loop cycle of ``batch`` identical requests sent together; the cohorts and the cycle length."""
    pending = [[input_len, 0] for _request in range(batch)]  # [prompt tokens left, prompt tokens done] per request, in order
    cohorts = []
    now = 0.0
    head = 0
    while head < batch or any(cohort.remaining for cohort in cohorts):
        running = [cohort for cohort in cohorts if cohort.remaining]
        decodes = sum(cohort.count for cohort in running)
        if head >= batch:
            # No prompt left: decode-only steps until the next cohort finishes (step time linear in context: midpoint).
            steps = min(cohort.remaining for cohort in running)
            context = sum(cohort.count * cohort.context for cohort in running) + decodes * (steps - 1) / 2.0
            duration, parts = engine.step(decodes, context, 0, 0.0, 0.0, decodes)
            now += duration * steps
            for cohort in running:
                cohort.remaining -= steps
                cohort.context += steps
                for name in BOUNDS:
                    cohort.time_parts[name] += parts[name] * steps
                if not cohort.remaining:
                    cohort.finish = now
            continue
        room = max(1, budget - decodes)
        prefill, pairs, reads, completed = 0, 0.0, 0.0, 0
        while head < batch and room > 0:
            left, done = pending[head]
            chunk = min(left, room)
            pairs += chunk * done + chunk * (chunk + 1) / 2.0
            reads += done
            prefill += chunk
            room -= chunk
            pending[head] = [left - chunk, done + chunk]
            if left - chunk == 0:
                completed += 1
                head += 1
        context = sum(cohort.count * cohort.context for cohort in running)
        duration, parts = engine.step(decodes, context, prefill, pairs, reads, decodes + completed)
        light, light_parts = engine.step(decodes, context, 0, 0.0, 0.0, decodes) if decodes else (0.0, None)
        now += duration
        for cohort in running:
            cohort.remaining -= 1
            cohort.context += 1
            if light_parts is not None:
                for name in BOUNDS:
                    if name != "prefill interference":
                        cohort.time_parts[name] += light_parts[name]
                cohort.time_parts["prefill interference"] += max(0.0, duration - light)
            if not cohort.remaining:
                cohort.finish = now
        if completed:
            cohorts.append(_Cohort(completed, now, output_len - 1, input_len + 1))
    return cohorts, now


def _median(pairs):
    """Median of (value, weight) pairs, interpolated like the fixtures' percentile (weights = request counts)."""
    values = []
    for value, weight in sorted(pairs):
        values.extend([value] * weight)
    k = (len(values) - 1) * 0.5
    low, high = int(k), min(int(k) + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (k - low)


def _point(engine, concurrency, batch_limit, input_len, output_len, budget):
    batch = min(concurrency, batch_limit)
    cohorts, end = _cycle(engine, batch, input_len, output_len, budget)
    cycle = end + REQUEST_OVERHEAD_S
    waves = int(math.ceil(concurrency / float(batch)))
    # Clients beyond the batch wait for a slot: each client gets one request through per `waves` cycles, so its request
    # takes waves x cycle, the extra spent queued before the first token.
    queue = (waves - 1) * cycle
    ttft = _median([(REQUEST_OVERHEAD_S + cohort.first_token + queue, cohort.count) for cohort in cohorts])
    requests_per_s = batch / cycle
    if output_len > 1:
        tpot = _median([((cohort.finish - cohort.first_token) / (output_len - 1), cohort.count) for cohort in cohorts])
        parts = dict((name, 0.0) for name in BOUNDS)
        total = sum(cohort.count for cohort in cohorts)
        for cohort in cohorts:
            for name in BOUNDS:
                parts[name] += cohort.time_parts[name] * cohort.count / float(total)
        bound = max(BOUNDS, key=lambda name: parts[name])
    else:
        tpot = None
        bound = "compute"
    return {
        "concurrency": concurrency,
        "input_len": input_len,
        "output_len": output_len,
        "ttft_ms": round(ttft * 1000.0, 2),
        "tpot_ms": round(tpot * 1000.0, 3) if tpot is not None else None,
        "output_tokens_per_s": round(requests_per_s * output_len, 1),
        "requests_per_s": round(requests_per_s, 3),
        "bound": bound,
    }


def predict(shape, gpu, tensor_parallel_size, pipeline_parallel_size, stage_weights_bytes, stage_layers,
            kv_bytes_per_token, max_num_seqs, max_num_batched_tokens, dtype, input_len, output_len, concurrency,
            kv_cache_tokens=None, quantization=None, peak=True):
    """Predicted speed of one replica under closed-loop loads.

    shape: {num_layers, hidden_size, num_attention_heads, num_kv_heads, head_dim, intermediate_size, vocab_size,
    params, active_params, tied, num_experts, experts_per_token, moe_layers (count), expert_params (parameters of
    one expert in one MoE layer)};
    gpu: a gpu_catalog entry (with the speed fields); stage_weights_bytes / stage_layers: per pipeline stage, one GPU's
    weight bytes and its layer count; kv_bytes_per_token: whole-model KV bytes of one token on one TP rank;
    kv_cache_tokens: the replica's KV capacity (caps the batch when given); concurrency: a list of client counts.

    Returns {points: [...], peak_output_tokens_per_s, peak_concurrency, batch_limit}. ``peak=False`` skips the full-batch
    point (the peak is then the best of ``points``): for callers that search over concurrency one level at a time.
    """
    input_len, output_len, max_num_seqs, budget, tp, pp = (
        inputs.whole_number(value, name=field, error=functools.partial(PerformanceError, field)) for field, value in (
            ("input_len", input_len), ("output_len", output_len), ("max_num_seqs", max_num_seqs),
            ("max_num_batched_tokens", max_num_batched_tokens), ("tensor_parallel_size", tensor_parallel_size),
            ("pipeline_parallel_size", pipeline_parallel_size)))
    levels = normalize_concurrency(concurrency, max_num_seqs)
    if not gpu or not gpu.get("memory_bandwidth_bytes_per_s"):
        raise PerformanceError("gpu", "speed predictions need a catalog GPU (its datasheet bandwidth and TFLOP/s)")
    if len(stage_weights_bytes) != pp or len(stage_layers) != pp:
        raise PerformanceError("pipeline_parallel_size", "need one weights figure and one layer count per pipeline stage")
    engine = _Engine(shape, gpu, tp, pp, stage_weights_bytes, stage_layers, kv_bytes_per_token, dtype, quantization)
    batch_limit = max_num_seqs
    if kv_cache_tokens:
        batch_limit = max(1, min(batch_limit, int(kv_cache_tokens // (input_len + output_len))))
    points = [_point(engine, level, batch_limit, input_len, output_len, budget) for level in levels]
    extra = [_point(engine, batch_limit, batch_limit, input_len, output_len, budget)] if peak else []
    best = max(points + extra, key=lambda item: item["output_tokens_per_s"])
    return {
        "points": points,
        "peak_output_tokens_per_s": best["output_tokens_per_s"],
        "peak_concurrency": best["concurrency"],
        "batch_limit": batch_limit,
    }
