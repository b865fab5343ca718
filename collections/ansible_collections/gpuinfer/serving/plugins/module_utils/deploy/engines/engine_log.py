# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Numbers from an inference engine's start-up log, and how they compare with a gpu_sizing plan.

vLLM (and NIM, which runs vLLM underneath) logs what it measured while it started: the weights it
loaded, the memory left for the KV cache, the KV cache in tokens, the concurrency that allows, the
CUDA-graph pool, and (0.2x releases) one line breaking the budget down. ``parse`` reads those lines
whatever precedes them on the line (``INFO 12-01 10:00:00 [gpu_worker.py:560]``, ``(EngineCore_DP0
pid=123)``, ``(VllmWorker rank=1 pid=9)``, a NIM JSON record) and in the wordings of several releases.

SGLang logs the same figures in its own words (0.5.x, rank-tagged ``[2026-12-01 10:00:00 TP0]``): "Load weight
end. ... mem usage=X GB." for the weights, and "KV Cache is allocated. dtype: ..., #tokens: N, K size: X GB,
V size: Y GB" (or "KV size: X GB" for MLA) for the KV cache, whose memory is K + V. The wordings are those of
the pinned release's source (tests/contracts/sglang/*.json, ``log_lines``).

Sizes become bytes with GiB = 1024**3: vLLM divides by ``1 << 30`` (``format_gib``) even where old
releases printed "GB", and so does SGLang (``GB = 1024 * 1024 * 1024``). A line that is not in the log
leaves its key out (never a zero).

With several workers (tensor/pipeline-parallel ranks) each logging its own lines, the KV figures keep
the smallest (the rank that binds the whole engine) and the per-rank figures the first; ``ranks``
says how many workers reported.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

GIB = 1024 ** 3

_NUMBER = r"(\d[\d,]*(?:\.\d+)?)"
_SIZE = _NUMBER + r"\s*(?:GiB|GB)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# (key, pattern, kind): kind says how a group becomes a value and how repeated lines combine.
_WEIGHTS = (
    # 0.7 - 0.26: "Model loading took 15.0 GiB and 3.265095 seconds"; 0.26 V1 runner: "... 87.0 GiB memory and ..."
    re.compile(r"Model loading took " + _SIZE),
    # 0.4 - 0.6: "Loading model weights took 14.9595 GB"
    re.compile(r"Loading model weights took " + _SIZE),
    # 0.7 - 0.10 profiling summary: "model weights take 14.99GiB; non_torch_memory takes ..."
    re.compile(r"model weights take\s+" + _SIZE),
    # SGLang: "Load weight end. elapsed=31.50 s, type=LlamaForCausalLM, avail mem=12.00 GB, mem usage=65.73 GB."
    re.compile(r"Load weight end\. .*?mem usage=" + _SIZE),
)
_KV_MEMORY = (
    # 0.34 extensible KV cache, sized after warmup (extensible_kv_cache.py measure_kv_cache_blocks): "Memory after
    # warmup: 3.1 GiB free, ...; 10906 KV cache blocks (53.25 GiB) fit within the requested 72.82 GiB. ..." The
    # "Available KV cache memory" line it also logs is the capacity reserved before CUDA graphs and the margin, which
    # is larger: the smallest figure is kept.
    re.compile(r"Memory after warmup: .*?; \d[\d,]* KV cache blocks \(" + _SIZE + r"\) fit within"),
    re.compile(r"Available KV cache memory: " + _SIZE),
    # 0.7 - 0.10: "... the rest of the memory reserved for KV Cache is 53.29GiB."
    re.compile(r"the rest of the memory reserved for KV Cache is\s+" + _SIZE),
    # 0.6: "available_kv_cache_memory    53.29GiB" (memory profiling table)
    re.compile(r"available_kv_cache_memory\s+" + _SIZE),
)
_KV_TOKENS = re.compile(r"GPU KV cache size: " + _NUMBER + r" tokens")
# SGLang: the pool it allocated, in tokens and in memory (K + V, or one KV figure for MLA).
_SGLANG_KV = re.compile(r"KV Cache is allocated\. dtype: \S+, #tokens: " + _NUMBER
                        + r", (?:K size: " + _SIZE + r", V size: " + _SIZE + r"|KV size: " + _SIZE + r")")
_CONCURRENCY = re.compile(r"Maximum concurrency for " + _NUMBER + r" tokens per request: " + _NUMBER + r"x")
_GRAPHS = re.compile(r"Graph capturing finished in " + _NUMBER + r" secs?, took " + _SIZE)
_GRAPH_ESTIMATE = re.compile(r"Estimated CUDA graph memory: " + _SIZE)
_BREAKDOWN = re.compile(
    r"Free memory on device \(" + _NUMBER + r"/" + _NUMBER + r" GiB\) on startup\. "
    r"Desired GPU memory utilization is \(" + _NUMBER + r", " + _SIZE + r"\)\. "
    r"Actual usage is " + _SIZE + r" for weight, " + _SIZE + r" for peak activation, "
    + _SIZE + r" for non-torch memory, and " + _SIZE + r" for CUDAGraph memory")
# 0.27 and later (gpu_worker.py): weights and non-torch memory are one "consumed" figure, and the CUDA-graph
# memory is the estimate the KV cache was sized after.
_BREAKDOWN_CONSUMED = re.compile(
    r"Free memory on device \(" + _NUMBER + r"/" + _NUMBER + r" GiB\) on startup\. "
    r"Desired GPU memory utilization is \(" + _NUMBER + r", " + _SIZE + r"\)\. "
    r"Actual usage is " + _SIZE + r" for consumed memory \(weights \+ non-torch\), " + _SIZE + r" for peak activation, "
    r"and " + _SIZE + r" for CUDAGraph memory")
# 0.7 - 0.10: "model weights take 14.99GiB; non_torch_memory takes 0.20GiB; PyTorch activation peak memory takes 0.37GiB"
_OLD_NON_TORCH = re.compile(r"non_torch_memory(?: takes)?\s+" + _SIZE)
_OLD_ACTIVATION = re.compile(r"PyTorch activation peak memory(?: takes)?\s+" + _SIZE)
_RUNNER = re.compile(r"\[(gpu_model_runner|model_runner)\.py:\d+\] Model loading took")


def _number(text):
    return float(text.replace(",", ""))


def _bytes(text):
    return int(round(_number(text) * GIB))


def _first_match(patterns, line):
    for pattern in patterns:
        match = pattern.search(line)
        if match:
            return match
    return None


def parse(text):
    """A dict of the numbers in a start-up log (bytes for sizes); keys whose line is missing are absent.

    Keys: weights_bytes, kv_cache_memory_bytes, kv_cache_tokens, max_concurrency,
    max_concurrency_tokens_per_request, cuda_graph_bytes, cuda_graph_seconds,
    cuda_graph_estimate_bytes, free_memory_bytes, total_memory_bytes, gpu_memory_utilization,
    requested_memory_bytes, breakdown_weights_bytes, peak_activation_bytes, non_torch_bytes,
    consumed_bytes (0.27+: weights and non-torch together),
    breakdown_cuda_graph_bytes, model_runner ("v1" or "v2"), ranks (workers that reported) and
    kv_cache_reports (how many "GPU KV cache size" or SGLang "KV Cache is allocated" lines the log holds).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = {}
    weights, kv_memory, kv_tokens, breakdowns = [], [], [], []
    for raw in (text or "").splitlines():
        line = _ANSI.sub("", raw)
        match = _first_match(_WEIGHTS, line)
        if match:
            weights.append(_bytes(match.group(1)))
            runner = _RUNNER.search(line)
            if runner and "model_runner" not in found:
                found["model_runner"] = "v1" if runner.group(1) == "gpu_model_runner" else "v2"
        match = _first_match(_KV_MEMORY, line)
        if match:
            kv_memory.append(_bytes(match.group(1)))
        match = _KV_TOKENS.search(line)
        if match:
            kv_tokens.append(int(_number(match.group(1))))
        match = _SGLANG_KV.search(line)
        if match:
            kv_tokens.append(int(_number(match.group(1))))
            if match.group(4) is not None:
                kv_memory.append(_bytes(match.group(4)))
            else:
                kv_memory.append(_bytes(match.group(2)) + _bytes(match.group(3)))
        match = _CONCURRENCY.search(line)
        if match:
            tokens, concurrency = int(_number(match.group(1))), _number(match.group(2))
            if "max_concurrency" not in found or concurrency < found["max_concurrency"]:
                found["max_concurrency"] = concurrency
                found["max_concurrency_tokens_per_request"] = tokens
        match = _GRAPHS.search(line)
        if match and "cuda_graph_bytes" not in found:
            found["cuda_graph_seconds"] = _number(match.group(1))
            found["cuda_graph_bytes"] = _bytes(match.group(2))
        match = _GRAPH_ESTIMATE.search(line)
        if match and "cuda_graph_estimate_bytes" not in found:
            found["cuda_graph_estimate_bytes"] = _bytes(match.group(1))
        match = _BREAKDOWN.search(line) or _BREAKDOWN_CONSUMED.search(line)
        if match:
            breakdowns.append(match)
        for key, pattern in (("non_torch_bytes", _OLD_NON_TORCH), ("peak_activation_bytes", _OLD_ACTIVATION)):
            match = pattern.search(line)
            if match and key not in found:
                found[key] = _bytes(match.group(1))

    if weights:
        found["weights_bytes"] = weights[0]
    if kv_memory:
        found["kv_cache_memory_bytes"] = min(kv_memory)
    if kv_tokens:
        found["kv_cache_tokens"] = min(kv_tokens)
        found["kv_cache_reports"] = len(kv_tokens)
    if breakdowns:
        first = breakdowns[0]
        found.update({
            "free_memory_bytes": _bytes(first.group(1)),
            "total_memory_bytes": _bytes(first.group(2)),
            "gpu_memory_utilization": _number(first.group(3)),
            "requested_memory_bytes": _bytes(first.group(4)),
        })
        if first.re is _BREAKDOWN:
            found.update({
                "breakdown_weights_bytes": _bytes(first.group(5)),
                "peak_activation_bytes": _bytes(first.group(6)),
                "non_torch_bytes": _bytes(first.group(7)),
                "breakdown_cuda_graph_bytes": _bytes(first.group(8)),
            })
            found.setdefault("weights_bytes", found["breakdown_weights_bytes"])
        else:
            found.update({
                "consumed_bytes": _bytes(first.group(5)),
                "peak_activation_bytes": _bytes(first.group(6)),
                "breakdown_cuda_graph_bytes": _bytes(first.group(7)),
            })
        found.setdefault("cuda_graph_bytes", found["breakdown_cuda_graph_bytes"])
        if "consumed_bytes" in found and "weights_bytes" in found:
            found.setdefault("non_torch_bytes", max(0, found["consumed_bytes"] - found["weights_bytes"]))
    ranks = max(len(weights), len(kv_memory), len(breakdowns))
    if ranks:
        found["ranks"] = ranks
    return found


def _error_pct(planned, actual):
    if planned is None or actual is None or not actual:
        return None
    return round(100.0 * (planned - actual) / float(actual), 2)


def compare(plan_result, parsed):
    """Rows {figure, planned, actual, error_pct} of a gpu_sizing result against ``parse``'s numbers.

    error_pct = (planned - actual) / actual x 100: positive means the plan predicted more than the
    engine reported. A figure either side lacks has None there and no error_pct.
    """
    memory = plan_result.get("memory_per_gpu") or {}
    figures = (
        ("weights per GPU (bytes)", memory.get("weights"), parsed.get("weights_bytes")),
        ("KV cache memory (bytes)", memory.get("kv_cache"), parsed.get("kv_cache_memory_bytes")),
        ("KV cache tokens", plan_result.get("kv_cache_tokens"), parsed.get("kv_cache_tokens")),
        ("max concurrency", plan_result.get("max_concurrency"), parsed.get("max_concurrency")),
        ("peak activation (bytes)", memory.get("activation_peak"), parsed.get("peak_activation_bytes")),
        ("non-torch memory (bytes)", memory.get("non_torch"), parsed.get("non_torch_bytes")),
        ("CUDA graphs (bytes)", memory.get("cuda_graph"), parsed.get("cuda_graph_bytes")),
    )
    return [{"figure": figure, "planned": planned, "actual": actual, "error_pct": _error_pct(planned, actual)}
            for figure, planned, actual in figures]


# The figures a verification judges, by key in compare()'s rows.
KV_TOKENS = "KV cache tokens"


def verify(plan_result, log_text, tolerance_pct=10.0, source="engine log"):
    """Judge an engine's start-up log against its plan.

    Returns {status, source, rows, parsed, kv_tokens_error_pct, engine_concurrency, min_concurrency, messages}:
    status "no_log" when the log holds none of the memory lines (an engine that did not start, or a simulated
    cluster), "fail" when the engine holds fewer full-context requests than plan.min_concurrency, "warn" when
    its KV tokens differ from the plan by more than tolerance_pct, else "ok".
    """
    if isinstance(tolerance_pct, bool) or float(tolerance_pct) < 0:
        raise ValueError("gpuinfer_verify_tolerance must be a percentage >= 0, got %r" % (tolerance_pct,))
    parsed = parse(log_text)
    plan = plan_result.get("plan") or {}
    result = {"source": source, "parsed": parsed, "rows": [], "messages": [], "kv_tokens_error_pct": None,
              "engine_concurrency": None, "min_concurrency": plan.get("min_concurrency") or 1}
    if "kv_cache_tokens" not in parsed:
        result["status"] = "no_log"
        result["messages"].append("%s has no GPU KV cache size line: no engine start-up to compare with the plan "
                                  "(the engine has not started, or the cluster is simulated)" % source)
        return result
    result["rows"] = compare(plan_result, parsed)
    kv_row = [row for row in result["rows"] if row["figure"] == KV_TOKENS][0]
    result["kv_tokens_error_pct"] = kv_row["error_pct"]
    max_model_len = plan.get("max_model_len")
    engine_concurrency = parsed.get("max_concurrency")
    if engine_concurrency is None and max_model_len:
        engine_concurrency = parsed["kv_cache_tokens"] / float(max_model_len)
    result["engine_concurrency"] = engine_concurrency
    status = "ok"
    if kv_row["error_pct"] is not None and abs(kv_row["error_pct"]) > float(tolerance_pct):
        status = "warn"
        result["messages"].append(
            "KV cache tokens: planned %s, the engine has %s (%+.1f%%, tolerance %s%%)"
            % (format(int(kv_row["planned"]), ","), format(int(kv_row["actual"]), ","), kv_row["error_pct"], tolerance_pct))
    if engine_concurrency is not None and engine_concurrency < float(result["min_concurrency"]):
        status = "fail"
        result["messages"].append(
            "the engine holds %.2f full-context (%s-token) requests, fewer than min_concurrency=%g: re-plan with more "
            "GPUs, FP8 weights or KV cache, or a shorter max_model_len"
            % (engine_concurrency, format(int(max_model_len or 0), ","), float(result["min_concurrency"])))
    result["status"] = status
    return result


def _cell(figure, value):
    if value is None:
        return "-"
    if figure.endswith("(bytes)"):
        return "%.2f GiB" % (float(value) / GIB)
    if figure == "max concurrency":
        return "%.2fx" % float(value)
    return format(int(value), ",")


def render_verification(verification):
    """Lines of the planned-vs-actual table (also the plan report's "Verified" section)."""
    lines = ["Verified against %s: %s" % (verification.get("source", "engine log"), verification.get("status"))]
    rows = verification.get("rows") or []
    if rows:
        width = max(len(row["figure"].replace(" (bytes)", "")) for row in rows)
        lines.append("  %-*s  %14s  %14s  %8s" % (width, "figure", "planned", "actual", "error"))
        for row in rows:
            error = "-" if row["error_pct"] is None else "%+.1f%%" % row["error_pct"]
            cells = (row["figure"].replace(" (bytes)", ""), _cell(row["figure"], row["planned"]),
                     _cell(row["figure"], row["actual"]), error)
            lines.append("  %-*s  %14s  %14s  %8s" % ((width,) + cells))
    lines.extend("  - " + message for message in verification.get("messages") or [])
    return lines
