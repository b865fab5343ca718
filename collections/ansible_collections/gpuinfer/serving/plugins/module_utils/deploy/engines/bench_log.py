# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""What a serving load generator measured, and how it compares with a gpu_sizing plan's speed prediction.

Two load generators print the same kind of result block, each in its own labels:

* ``vllm bench serve`` (vLLM 0.26 - 0.34, vllm/benchmarks/serve.py; tests/fixtures/vllm-perf/bench holds a real run)::

    ============ Serving Benchmark Result ============
    Successful requests:                     8
    Maximum request concurrency:             1
    Output token throughput (tok/s):         152.28
    ---------------Time to First Token----------------
    Median TTFT (ms):                        41.41
    P50 TTFT (ms):                           41.41
    P90 TTFT (ms):                           57.71
    ...
    ==================================================

  and, with ``--save-result``, a JSON object (``max_concurrency``, ``p50_ttft_ms``, ``output_throughput``, ...).
  The percentile lines are those of ``--metric-percentiles`` (default 99 only: the benchmark Job asks for 50,90,99).
* ``python -m sglang.bench_serving`` (SGLang 0.5.23, sglang/benchmark/serving.py): ``Backend:``, ``Max request
  concurrency:``, ``Mean/Median/P90/P95/P99 TTFT (ms):`` and the same for TPOT, ITL and ``E2E Latency``; no P50 line
  (its median is the p50). The labels are recorded in tests/contracts/sglang/sglang-0.5.23-bench-serving.json.

A log may hold several runs (one per concurrency, as the benchmark Job runs them): ``parse`` returns one result per
block. What a block does not say (input and output lengths, and the concurrency when none was set) comes from the
lines before it: the Job's own marker line (``MARKER``), or the tools' argument dumps (``random_input_len=1024``,
``max_concurrency=1``) and vLLM's "Sampling input_len from [1024, 1024] and output_len from [128, 128]".

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

# The line the benchmark Job prints before each run (module_utils/deploy/benchmark.py writes it).
MARKER = "gpuinfer-benchmark:"

# The figures the comparison uses, in both the measured and the planned column.
FIGURES = ("ttft_ms_p50", "ttft_ms_p90", "tpot_ms_p50", "tpot_ms_p90", "output_tokens_per_s")
FIGURE_TITLES = {
    "ttft_ms_p50": "TTFT p50 (ms)",
    "ttft_ms_p90": "TTFT p90 (ms)",
    "tpot_ms_p50": "TPOT p50 (ms)",
    "tpot_ms_p90": "TPOT p90 (ms)",
    "output_tokens_per_s": "output tok/s",
}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HEADER = re.compile(r"=+ Serving Benchmark Result =+")
_FOOTER = re.compile(r"^={50}\s*$")
_LINE = re.compile(r"^(\S.*?:)\s+(\S+)\s*$")
_LATENCY = re.compile(r"^(Mean|Median|Max|P\d+(?:\.\d+)?) (TTFT|TPOT|ITL|E2EL|E2E Latency) \(ms\):$")
_METRIC = {"TTFT": "ttft", "TPOT": "tpot", "ITL": "itl", "E2EL": "e2el", "E2E Latency": "e2el"}

# Other labels of either tool -> key. Values are ints where the tool prints a count.
_LABELS = {
    "Successful requests:": ("completed", int),
    "Failed requests:": ("failed", int),
    "Maximum request concurrency:": ("concurrency", int),  # vLLM
    "Max request concurrency:": ("concurrency", int),  # SGLang ("not set" without --max-concurrency)
    "Benchmark duration (s):": ("duration_s", float),
    "Total input tokens:": ("total_input_tokens", int),
    "Total generated tokens:": ("total_output_tokens", int),
    "Request throughput (req/s):": ("requests_per_s", float),
    "Input token throughput (tok/s):": ("input_tokens_per_s", float),
    "Output token throughput (tok/s):": ("output_tokens_per_s", float),
    "Peak output token throughput (tok/s):": ("peak_output_tokens_per_s", float),
    "Total token throughput (tok/s):": ("total_tokens_per_s", float),
    "Backend:": ("backend", str),  # SGLang only
}

# Context lines before a block: the Job's marker, argparse dumps (vLLM prints its Namespace, SGLang
# "benchmark_args=Namespace(...)"), vLLM's sampling line.
_CONTEXT = (
    ("concurrency", re.compile(r"\bmax_concurrency=(\d+)")),
    ("input_len", re.compile(r"\brandom_input_len=(\d+)")),
    ("output_len", re.compile(r"\brandom_output_len=(\d+)")),
)
_MARKER_FIELD = re.compile(r"\b(concurrency|input_len|output_len)=(\d+)")
_SAMPLING = re.compile(r"Sampling input_len from \[(\d+), (\d+)\] and output_len from \[(\d+), (\d+)\]")

# `vllm bench serve --save-result` keys -> result keys.
_JSON_KEYS = {
    "max_concurrency": "concurrency",
    "completed": "completed",
    "failed": "failed",
    "duration": "duration_s",
    "total_input_tokens": "total_input_tokens",
    "total_output_tokens": "total_output_tokens",
    "request_throughput": "requests_per_s",
    "output_throughput": "output_tokens_per_s",
    "total_token_throughput": "total_tokens_per_s",
    "max_output_tokens_per_s": "peak_output_tokens_per_s",
    "backend": "backend",
}
_JSON_LATENCY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


def _number(text, kind):
    text = text.replace(",", "")
    try:
        return kind(float(text)) if kind is int else kind(text)
    except ValueError:
        return None


def _latency_key(stat, metric):
    stat = stat.lower()
    if stat.startswith("p"):
        stat = "p" + ("%g" % float(stat[1:])).replace(".", "_")
    return "%s_ms_%s" % (_METRIC.get(metric, metric.lower()), stat)


def _finish(result):
    """Fill p50 from the median (SGLang prints only the median; so does an old vLLM without 50 in its percentiles)."""
    for metric in ("ttft", "tpot", "itl", "e2el"):
        if result.get("%s_ms_p50" % metric) is None and result.get("%s_ms_median" % metric) is not None:
            result["%s_ms_p50" % metric] = result["%s_ms_median" % metric]
    for key in ("concurrency", "input_len", "output_len") + FIGURES:
        result.setdefault(key, None)
    return result


def _context_from(line, context):
    if MARKER in line:
        for key, value in _MARKER_FIELD.findall(line.split(MARKER, 1)[1]):
            context[key] = int(value)
        return
    for key, pattern in _CONTEXT:
        match = pattern.search(line)
        if match:
            context[key] = int(match.group(1))
    match = _SAMPLING.search(line)
    if match and match.group(1) == match.group(2) and match.group(3) == match.group(4):
        context["input_len"], context["output_len"] = int(match.group(1)), int(match.group(3))


def parse(text):
    """Every result block of a vllm bench serve or sglang.bench_serving output, in order.

    Each result: tool (vllm | sglang), concurrency, input_len, output_len (None where nothing says), the five
    FIGURES, and every other figure the block printed (completed, failed, duration_s, requests_per_s,
    <ttft|tpot|itl|e2el>_ms_<mean|median|p50|p90|p95|p99|max>, ...).
    """
    results = []
    context = {}
    block = None
    for raw in (text or "").splitlines():
        # tqdm redraws with carriage returns: the last segment is what a terminal shows.
        line = _ANSI.sub("", raw).split("\r")[-1].rstrip()
        if block is None:
            if _HEADER.search(line):
                block = {}
            else:
                _context_from(line, context)
            continue
        if _FOOTER.match(line):
            results.append(_close(block, context))
            block, context = None, {}
            continue
        match = _LINE.match(line.strip())
        if not match:
            continue
        label, value = match.group(1), match.group(2)
        latency = _LATENCY.match(label)
        if latency:
            block[_latency_key(latency.group(1), latency.group(2))] = _number(value, float)
        elif label in _LABELS:
            key, kind = _LABELS[label]
            parsed = _number(value, kind)
            if parsed is not None:
                block[key] = parsed
    if block:  # a run cut off before its footer: keep what it printed
        results.append(_close(block, context))
    return results


def _close(block, context):
    result = dict(block)
    result["tool"] = "sglang" if "backend" in block else "vllm"
    for key in ("concurrency", "input_len", "output_len"):
        if result.get(key) is None and context.get(key) is not None:
            result[key] = context[key]
    return _finish(result)


def parse_json(data):
    """A ``vllm bench serve --save-result`` result: a dict, its JSON text, or JSON lines (one result each)."""
    if isinstance(data, dict):
        items = [data]
    else:
        text = (data or "").strip()
        try:
            loaded = json.loads(text) if text else []
            items = loaded if isinstance(loaded, list) else [loaded]
        except ValueError:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
    results = []
    for item in items:
        result = {"tool": "vllm"}
        for key, value in item.items():
            if key in _JSON_KEYS and value is not None:
                result[_JSON_KEYS[key]] = value
                continue
            match = _JSON_LATENCY.match(key)
            if match and value is not None:
                stat = match.group(1)
                stat = "p" + ("%g" % float(stat[1:])).replace(".", "_") if stat.startswith("p") else stat
                result["%s_ms_%s" % (match.group(2), stat)] = float(value)
        for key in ("input_len", "output_len"):
            if item.get("random_" + key) is not None:
                result[key] = int(item["random_" + key])
        results.append(_finish(result))
    return results


def parse_any(text):
    """Result blocks of a printed log; else the saved JSON result(s)."""
    results = parse(text)
    if results:
        return results
    stripped = (text or "").strip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            return parse_json(stripped)
        except ValueError:
            return []
    return []


# ------------------------------------------------------------------------------------------------------ comparison

def planned_figures(point):
    """A plan.performance.points entry as the comparison's figures (p90 only where the plan predicts one)."""
    return {
        "ttft_ms_p50": point.get("ttft_ms_p50", point.get("ttft_ms")),
        "ttft_ms_p90": point.get("ttft_ms_p90"),
        "tpot_ms_p50": point.get("tpot_ms_p50", point.get("tpot_ms")),
        "tpot_ms_p90": point.get("tpot_ms_p90"),
        "output_tokens_per_s": point.get("output_tokens_per_s"),
    }


def _error_pct(measured, planned):
    if measured is None or not planned:
        return None
    return round((float(measured) - float(planned)) / float(planned) * 100.0, 1)


def slo_targets(slo):
    """{figure: limit} of plan.slo for the medians: ttft_ms / tpot_ms (or their _p50 spellings)."""
    targets = {}
    for figure in ("ttft_ms", "tpot_ms"):
        if not isinstance(slo, dict):
            break
        for key in (figure + "_p50", figure):
            value = slo.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                targets[figure + "_p50"] = float(value)
                break
    return targets


def compare(plan, results, source="benchmark output"):
    """The measured results next to the plan's predicted points, matched by concurrency.

    Returns {status, source, tool, points: [{concurrency, input_len, output_len, measured, planned, error_pct}],
    slo, slo_violations, messages}. status: no_results (nothing parsed), fail (a measured median above a plan.slo
    target), else ok. A planned concurrency that was not measured keeps measured null, and a measured one the plan has
    no point for keeps planned null.
    """
    plan = plan or {}
    planned_points = list(((plan.get("performance") or {}).get("points")) or [])
    messages = []
    if not results:
        return {"status": "no_results", "source": source, "tool": None, "points": [], "slo": plan.get("slo"),
                "slo_violations": [], "messages": ["%s holds no benchmark result block" % source]}
    by_concurrency = {}
    for result in results:
        if result.get("concurrency") in by_concurrency:
            messages.append("%s holds two results for concurrency %s: the last one is used" % (source, result.get("concurrency")))
        by_concurrency[result.get("concurrency")] = result
    points = []
    seen = set()
    for point in planned_points:
        concurrency = point.get("concurrency")
        result = by_concurrency.get(concurrency)
        seen.add(concurrency)
        if result is None:
            messages.append("concurrency %s was planned but not measured" % concurrency)
        points.append(_row(concurrency, point, result, messages))
    for concurrency, result in sorted(by_concurrency.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        if concurrency not in seen:
            messages.append("concurrency %s was measured but the plan predicts no point for it" % concurrency)
            points.append(_row(concurrency, None, result, messages))
    targets = slo_targets(plan.get("slo"))
    violations = []
    for row in points:
        for figure, limit in sorted(targets.items()):
            value = row["measured"].get(figure)
            if value is not None and value > limit:
                violations.append({"concurrency": row["concurrency"], "figure": figure, "measured": value, "target": limit})
    messages.extend("concurrency %s: measured %s %.2f exceeds the plan's SLO %.2f"
                    % (v["concurrency"], FIGURE_TITLES[v["figure"]], v["measured"], v["target"]) for v in violations)
    return {"status": "fail" if violations else "ok", "source": source,
            "tool": results[0].get("tool"), "points": points, "slo": plan.get("slo"),
            "slo_violations": violations, "messages": messages}


def _row(concurrency, point, result, messages):
    planned = planned_figures(point) if point else dict.fromkeys(FIGURES)
    measured = dict((key, (result or {}).get(key)) for key in FIGURES) if result else dict.fromkeys(FIGURES)
    input_len = (point or {}).get("input_len")
    output_len = (point or {}).get("output_len")
    if result:
        for key, planned_len in (("input_len", input_len), ("output_len", output_len)):
            if planned_len is not None and result.get(key) is not None and result[key] != planned_len:
                messages.append("concurrency %s: measured with %s=%s, the plan predicts %s=%s"
                                % (concurrency, key, result[key], key, planned_len))
        input_len = input_len if input_len is not None else result.get("input_len")
        output_len = output_len if output_len is not None else result.get("output_len")
    return {"concurrency": concurrency, "input_len": input_len, "output_len": output_len,
            "measured": measured, "planned": planned,
            "error_pct": dict((key, _error_pct(measured[key], planned[key])) for key in FIGURES)}


def _cell(value):
    if value is None:
        return "-"
    return "{:,.2f}".format(value)


def render(comparison):
    """The comparison as report lines: one row per figure and concurrency, measured next to planned."""
    tool = {"vllm": "vllm bench serve", "sglang": "sglang.bench_serving"}.get(comparison.get("tool"), "benchmark")
    lines = ["Benchmarked with %s (%s): %s" % (tool, comparison.get("source"), comparison.get("status"))]
    if comparison.get("points"):
        lines.append("  %11s  %-10s  %-14s %12s %12s %8s" % ("concurrency", "in/out", "figure", "measured", "planned", "error"))
        for row in comparison["points"]:
            lengths = "%s/%s" % (row["input_len"] if row["input_len"] is not None else "?",
                                 row["output_len"] if row["output_len"] is not None else "?")
            for index, figure in enumerate(FIGURES):
                error = row["error_pct"][figure]
                lines.append("  %11s  %-10s  %-14s %12s %12s %8s" % (
                    row["concurrency"] if index == 0 else "", lengths if index == 0 else "", FIGURE_TITLES[figure],
                    _cell(row["measured"][figure]), _cell(row["planned"][figure]),
                    "-" if error is None else "%+.1f%%" % error))
    lines.extend("  note: %s" % message for message in comparison.get("messages") or [])
    return lines


REPORT_SECTION = "--- Benchmarked "


def append_section(report_text, lines):
    """plan-report.txt with its Benchmarked section replaced (or added) by lines."""
    kept = []
    for line in (report_text or "").splitlines():
        if line.startswith(REPORT_SECTION):
            break
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    section = [REPORT_SECTION + "(measured next to the plan's speed prediction) ---"] + list(lines)
    return "\n".join((kept + [""] if kept else []) + section) + "\n"
