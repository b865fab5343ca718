# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Human-readable report of a gpu_sizing result: a summary table and a per-GPU memory bar."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts

GIB = 1024 ** 3

# Order and glyphs of the memory bar segments; the rest of the GPU shows as free.
BAR_SEGMENTS = (
    ("weights", "W", "weights"),
    ("activation_peak", "A", "activations"),
    ("non_torch", "N", "CUDA context/NCCL"),
    ("cuda_graph", "G", "CUDA graphs"),
    ("kv_cache", "K", "KV cache"),
)


def _gib(value):
    return "%.1f GiB" % (float(value or 0) / GIB)


def _count(value):
    value = float(value or 0)
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if value >= size:
            return "%.2f%s" % (value / size, unit)
    return "%d" % value


def memory_bar(memory, width=50):
    """One line like [WWWWWWAANGKKKKKKKK......] for a memory_per_gpu breakdown."""
    total = float(memory.get("total") or 0)
    if total <= 0:
        return "[" + "?" * width + "]"
    cells = []
    for key, glyph, _label in BAR_SEGMENTS:
        cells.extend(glyph * int(round(width * float(memory.get(key) or 0) / total)))
    cells = cells[:width]
    cells.extend("." * (width - len(cells)))
    return "[" + "".join(cells) + "]"


def _table(rows):
    width = max(len(label) for label, _value in rows)
    return ["  %-*s  %s" % (width, label, value) for label, value in rows]


def _engine_rows(plan):
    """Rows for a plan sized for another engine than vLLM (a vLLM plan has no ``engine`` key and no extra row)."""
    rows = []
    if plan.get("engine"):
        accounting = "SGLang %s" % plan.get("sglang_version", "") if plan["engine"] == "sglang" else "vLLM (inside NIM)"
        rows.append(("engine", "%s (memory sized with %s's accounting)" % (plan["engine"], accounting.strip())))
    if plan.get("mem_fraction_static") is not None:
        rows.append(("mem_fraction_static", plan["mem_fraction_static"]))
    return rows


def _served_model_flag(result):
    """The --served-model-name gpu_sizing added to vllm_args (only when it was given a served model name)."""
    return [flag for flag in result.get("vllm_args") or [] if engine_facts.flag_name(flag) == "--served-model-name"]


def _vllm_flags(result):
    # gpu_sizing computed them already (engine_facts.vllm_plan_flags + the served model name): its documented vllm_args.
    return [" ".join(result.get("vllm_args") or [])]


def _sglang_flags(result):
    return [" ".join(engine_facts.sglang_plan_flags(result) + _served_model_flag(result))]


def _nim_flags(result):
    """NIM takes the plan's vLLM flags it has no NIM_* variable for in NIM_PASSTHROUGH_ARGS (what the nim role
    sets), and the pipeline parallel size, context length and served model name in its own variables."""
    plan = result.get("plan") or {}
    variables = ["NIM_PIPELINE_PARALLEL_SIZE=%d" % int(engine_facts.plan_value(plan, "pipeline_parallel_size")),
                 "NIM_MAX_MODEL_LEN=%d" % int(engine_facts.plan_value(plan, "max_model_len"))]
    variables.extend("NIM_SERVED_MODEL_NAME=%s" % flag.split("=", 1)[1] for flag in _served_model_flag(result))
    return ["NIM_PASSTHROUGH_ARGS: " + " ".join(engine_facts.nim_passthrough_flags(result)), " ".join(variables)]


# The plan's flags in each engine's own terms (engine_facts: the functions the engine descriptions build pods with).
ENGINE_FLAGS = {"vllm": _vllm_flags, "sglang": _sglang_flags, "nim": _nim_flags}


def engine_flags_section(result):
    """The "<engine> flags:" lines of a plan: titled with the engine the plan is for (plan.engine; absent is vLLM)
    and holding that engine's flags. Empty when the result has no flags (gpu_sizing always returns vllm_args) or
    the plan lacks what the engine's flags need."""
    name = (result.get("plan") or {}).get("engine") or "vllm"
    if not result.get("vllm_args") or name not in ENGINE_FLAGS:
        return []
    try:
        lines = ENGINE_FLAGS[name](result)
    except (engine_facts.EngineError, TypeError, ValueError):
        return []
    return ["", "%s flags:" % engine_facts.TITLES[name]] + ["  " + line for line in lines]


def speed_section(result):
    """The "Speed" lines: one row per planned concurrency of gpu_sizing's performance prediction (none when the plan
    has no prediction: a GPU sized only by its memory, or a plan that does not fit)."""
    performance = result.get("performance") or {}
    points = performance.get("points") or []
    if not points:
        return []
    rows = [("clients", "in/out", "TTFT p50", "TPOT p50", "output tok/s", "req/s", "bound")]
    for point in points:
        rows.append(("%d" % point["concurrency"], "%d/%d" % (point["input_len"], point["output_len"]),
                     "%.0f ms" % point["ttft_ms"], "%.1f ms" % point["tpot_ms"],
                     format(int(round(point["output_tokens_per_s"])), ","), "%.2f" % point["requests_per_s"],
                     point["bound"]))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["", "Speed per replica (predicted, %s's step model; closed loop):" % performance.get("engine_model", "vllm")]
    lines.extend("  " + "  ".join(cell.rjust(width) if column < 6 else cell for column, (cell, width)
                                  in enumerate(zip(row, widths))).rstrip() for row in rows)
    lines.append("  peak output tokens/s: %s per replica, %s for the deployment" % (
        format(int(round(performance.get("peak_output_tokens_per_s_per_replica") or 0)), ","),
        format(int(round(performance.get("peak_output_tokens_per_s") or 0)), ",")))
    return lines


def _slo_row(entry):
    layout = "TP%d x PP%d%s" % (entry["tensor_parallel_size"], entry["pipeline_parallel_size"],
                                " %s" % entry["quantization"] if entry.get("quantization") else "")
    return (layout, "%d x %d = %d" % (entry["replicas"], entry["gpus_per_replica"], entry["gpus"]),
            "%d" % entry["concurrency_per_replica"], "%.0f ms" % entry["ttft_ms"], "%.1f ms" % entry["tpot_ms"],
            "%.2f" % entry["requests_per_s_per_replica"])


def slo_section(result):
    """The "Service-level objectives" lines: the targets, whether they are met, the layout chosen and the
    alternatives with their GPU counts (none when the plan was made without SLO targets)."""
    slo = result.get("slo")
    if not slo:
        return []
    targets = ", ".join("%s %s" % (label, slo[key]) for key, label in (
        ("ttft_ms", "TTFT p50 <="), ("tpot_ms", "TPOT p50 <="), ("request_rate", "requests/s >=")) if slo.get(key))
    lines = ["", "Service-level objectives (%s): %s" % (targets, "met" if slo.get("met") else "NOT MET")]
    entries = ([("chosen",) + _slo_row(slo["chosen"])] if slo.get("chosen") else []) + [
        ("",) + _slo_row(entry) for entry in slo.get("alternatives") or []]
    if entries:
        rows = [("", "layout", "replicas x GPUs", "clients/replica", "TTFT", "TPOT", "req/s/replica")] + entries
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines.extend("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
    autoscaling = slo.get("autoscaling") or {}
    if autoscaling:
        lines.append("  autoscaler: at most %s replica(s), scale up above %s waiting request(s) per replica" % (
            autoscaling.get("max_replicas"), autoscaling.get("target_waiting")))
    if slo.get("reason"):
        lines.append("  " + str(slo["reason"]))
    return lines


def render_report(result):
    """Lines of text describing a gpu_sizing result."""
    plan = result.get("plan") or {}
    model = result.get("model") or {}
    memory = result.get("memory_per_gpu") or {}
    layout = "TP%s x PP%s" % (plan.get("tensor_parallel_size"), plan.get("pipeline_parallel_size"))
    replicas = plan.get("replicas") or 1
    lines = ["GPU plan for %s on %s" % (model.get("id", "?"), plan.get("gpu", "?")), ""]
    lines.extend(_table([
        ("verdict", "fits" if result.get("fits") else "DOES NOT FIT"),
        ("parameters", "%s (active %s)" % (_count(result.get("params")), _count(result.get("active_params")))),
        ("weights", "%s (%s)" % (_gib(result.get("weights_bytes")), plan.get("dtype"))),
        ("KV cache per token", "%s bytes (%s)" % (format(int(result.get("kv_cache_bytes_per_token") or 0), ","), plan.get("kv_cache_dtype"))),
        ("layout", "%s, %s GPU(s) on %s node(s) per replica, %s replica(s)" % (
            layout, plan.get("gpus_per_replica"), plan.get("nodes"), replicas)),
        ("context (max_model_len)", format(int(plan.get("max_model_len") or 0), ",")),
        ("KV cache tokens / replica", format(int(result.get("kv_cache_tokens") or 0), ",")),
        ("max concurrency", "%.1fx at full context" % float(result.get("max_concurrency") or 0)),
        ("gpu_memory_utilization", plan.get("gpu_memory_utilization")),
    ] + _engine_rows(plan)))
    lines.extend(["", "Memory per GPU (%s total):" % _gib(memory.get("total"))])
    lines.append("  " + memory_bar(memory))
    legend = ["%s %s %s" % (glyph, label, _gib(memory.get(key))) for key, glyph, label in BAR_SEGMENTS]
    free = float(memory.get("total") or 0) - sum(float(memory.get(key) or 0) for key, _g, _l in BAR_SEGMENTS)
    legend.append(". free/reserved %s" % _gib(max(free, 0)))
    lines.append("  " + " | ".join(legend))
    lines.extend(speed_section(result))
    lines.extend(slo_section(result))
    lines.extend(engine_flags_section(result))
    # Ansible keeps a module's top-level "warnings" for itself, so the planner returns them in plan.
    for title, items in (("Warnings", plan.get("warnings")), ("Advice", result.get("advice"))):
        if items:
            lines.extend(["", title + ":"])
            lines.extend("  - " + item for item in items)
    return lines
