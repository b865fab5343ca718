# -*- coding: utf-8 -*-
"""The load-generator parsers (vllm bench serve, sglang.bench_serving) and the measured-vs-planned comparison.

vLLM: the real `vllm bench serve` run of tests/fixtures/vllm-perf/bench (stdout and --save-result JSON).
SGLang: no real sglang.bench_serving output is in the fixtures; its result block is rebuilt here line for line from
the print calls of SGLang 0.5.23 (sglang/benchmark/serving.py), whose labels and formats are recorded in
tests/contracts/sglang/sglang-0.5.23-bench-serving.json.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import bench_log
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir

BENCH = fixture_dir(os.path.join("vllm-perf", "bench"), "bench-c1.txt")
needs_bench = pytest.mark.skipif(BENCH is None, reason="tests/fixtures/vllm-perf/bench is not in this checkout")


def contracts_dir():
    folder = os.path.dirname(os.path.abspath(__file__))
    while os.path.dirname(folder) != folder:
        candidate = os.path.join(folder, "tests", "contracts", "sglang", "sglang-0.5.23-bench-serving.json")
        if os.path.exists(candidate):
            return candidate
        folder = os.path.dirname(folder)
    return None


SGLANG_CONTRACT = contracts_dir()
needs_sglang_contract = pytest.mark.skipif(SGLANG_CONTRACT is None, reason="tests/contracts is not in this checkout")


def read(name):
    with open(os.path.join(BENCH, name)) as handle:
        return handle.read()


PLAN = {"performance": {"points": [
    {"concurrency": 1, "input_len": 1024, "output_len": 128, "ttft_ms": 33.23, "tpot_ms": 6.204,
     "output_tokens_per_s": 155.9, "requests_per_s": 1.218, "bound": "weight reads"},
    {"concurrency": 16, "input_len": 1024, "output_len": 128, "ttft_ms": 120.0, "tpot_ms": 9.0,
     "output_tokens_per_s": 1700.0, "requests_per_s": 13.0, "bound": "weight reads"},
]}}


# ------------------------------------------------------------------------------------------------ vLLM, real run

@needs_bench
def test_the_real_vllm_bench_serve_stdout():
    results = bench_log.parse(read("bench-c1.txt"))
    assert len(results) == 1
    result = results[0]
    assert result["tool"] == "vllm"
    assert result["concurrency"] == 1
    # Not in the block: from the Namespace dump / the "Sampling input_len from [1024, 1024]" line before it.
    assert (result["input_len"], result["output_len"]) == (1024, 128)
    assert result["ttft_ms_p50"] == 41.41
    assert result["ttft_ms_p90"] == 57.71
    assert result["tpot_ms_p50"] == 6.23
    assert result["tpot_ms_p90"] == 6.26
    assert result["output_tokens_per_s"] == 152.28
    assert result["completed"] == 8 and result["failed"] == 0
    assert result["duration_s"] == 6.72
    assert (result["total_input_tokens"], result["total_output_tokens"]) == (8192, 1024)
    assert result["requests_per_s"] == 1.19
    assert result["ttft_ms_mean"] == 47.36 and result["ttft_ms_median"] == 41.41 and result["ttft_ms_p99"] == 82.65
    assert result["itl_ms_p90"] == 6.66 and result["e2el_ms_p99"] == 871.85


@needs_bench
def test_the_saved_json_says_the_same_as_the_stdout():
    printed = bench_log.parse(read("bench-c1.txt"))[0]
    saved = bench_log.parse_json(read("bench-c1.json"))
    assert len(saved) == 1
    for key in bench_log.FIGURES + ("concurrency", "completed", "failed", "total_input_tokens", "total_output_tokens"):
        assert saved[0][key] == pytest.approx(printed[key], abs=0.006), key
    # The JSON does not carry the lengths (no random_input_len key in a --save-result file).
    assert saved[0]["input_len"] is None
    assert bench_log.parse_json(json.loads(read("bench-c1.json")))[0]["ttft_ms_p50"] == pytest.approx(41.4129, abs=1e-3)
    # parse_any falls back to the JSON when there is no printed block.
    assert bench_log.parse_any(read("bench-c1.json"))[0]["tpot_ms_p90"] == pytest.approx(6.2615, abs=1e-3)


@needs_bench
def test_several_runs_in_one_log_each_with_its_marker():
    one = read("bench-c1.txt")
    sixteen = one.replace("Maximum request concurrency:             1 ", "Maximum request concurrency:             16")
    sixteen = sixteen.replace("max_concurrency=1,", "max_concurrency=16,")
    text = "\n".join([
        "gpuinfer-benchmark: concurrency=1 input_len=1024 output_len=128", one,
        "gpuinfer-benchmark: concurrency=16 input_len=1024 output_len=128", sixteen])
    results = bench_log.parse(text)
    assert [r["concurrency"] for r in results] == [1, 16]
    assert all((r["input_len"], r["output_len"]) == (1024, 128) for r in results)


def test_the_job_marker_gives_what_the_block_does_not_print():
    text = "\n".join([
        "gpuinfer-benchmark: concurrency=4 input_len=512 output_len=64",
        "============ Serving Benchmark Result ============",
        "Successful requests:                     8",
        "Output token throughput (tok/s):         100.00",
        "P50 TTFT (ms):                           10.00",
        "==================================================",
        "============ Serving Benchmark Result ============",
        "Successful requests:                     8",
        "==================================================",
    ])
    first, second = bench_log.parse(text)
    assert (first["concurrency"], first["input_len"], first["output_len"]) == (4, 512, 64)
    assert first["ttft_ms_p50"] == 10.0 and first["tpot_ms_p50"] is None
    # Context does not leak into the next block.
    assert second["concurrency"] is None


def test_nothing_to_parse():
    assert bench_log.parse("") == []
    assert bench_log.parse("INFO starting\nno result here\n") == []
    assert bench_log.parse_any("no result") == []


# ------------------------------------------------------------------------------------------------ SGLang, rebuilt

def sglang_output(contract, concurrency, values):
    """sglang.bench_serving's result block, line for line from its print calls (the contract's labels and formats)."""
    block = contract["result_block"]
    lines = [(block["header"]["line"], "\n" + block["header"]["text"])]
    lines += [(section["line"], section["text"]) for section in block["sections"] if section["title"] != " Serving Benchmark Result "]
    for entry in block["labels"]:
        if entry["label"] in values:
            lines.append((entry["line"], entry["format"].format(entry["label"], values[entry["label"]])))
    lines.append((block["footer"]["line"], block["footer"]["text"]))
    # Conditional sections whose lines are not printed (cache report) are left out.
    printed = [text for _line, text in sorted(lines) if "Cache Hit" not in text]
    args = ("benchmark_args=Namespace(backend='sglang', dataset_name='random-ids', random_input_len=1024, "
            "random_output_len=128, random_range_ratio=1.0, max_concurrency=%d, num_prompts=%d)" % (concurrency, 4 * concurrency))
    return "\n".join([args, "Starting warmup with 1 sequences..."] + printed) + "\n"


def sglang_values(concurrency, ttft_median, ttft_p90, tpot_median, tpot_p90, output_tps):
    return {
        "Backend:": "sglang", "Traffic request rate:": "inf", "Max request concurrency:": concurrency,
        "Successful requests:": 8, "Benchmark duration (s):": 6.5, "Total input tokens:": 8192,
        "Total input text tokens:": 8192, "Total generated tokens:": 1024, "Total generated tokens (retokenized):": 1024,
        "Request throughput (req/s):": 1.23, "Input token throughput (tok/s):": 1260.31,
        "Output token throughput (tok/s):": output_tps, "Peak output token throughput (tok/s):": output_tps + 5,
        "Peak concurrent requests:": concurrency, "Total token throughput (tok/s):": 1417.9, "Concurrency:": 0.99,
        "Mean E2E Latency (ms):": 812.5, "Median E2E Latency (ms):": 810.0, "P90 E2E Latency (ms):": 830.0,
        "P95 E2E Latency (ms):": 835.0, "P99 E2E Latency (ms):": 840.0,
        "Mean TTFT (ms):": ttft_median + 2, "Median TTFT (ms):": ttft_median, "P90 TTFT (ms):": ttft_p90,
        "P95 TTFT (ms):": ttft_p90 + 1, "P99 TTFT (ms):": ttft_p90 + 2,
        "Mean TPOT (ms):": tpot_median, "Median TPOT (ms):": tpot_median, "P90 TPOT (ms):": tpot_p90,
        "P95 TPOT (ms):": tpot_p90, "P99 TPOT (ms):": tpot_p90 + 0.1,
        "Mean ITL (ms):": 6.1, "Median ITL (ms):": 6.0, "P90 ITL (ms):": 6.5, "P95 ITL (ms):": 6.8,
        "P99 ITL (ms):": 7.0, "Max ITL (ms):": 12.0,
    }


@pytest.fixture(scope="module")
def sglang_contract():
    if SGLANG_CONTRACT is None:
        pytest.skip("tests/contracts is not in this checkout")
    with open(SGLANG_CONTRACT) as handle:
        return json.load(handle)


def test_the_sglang_contract_is_the_pinned_release(sglang_contract):
    assert sglang_contract["version"] == "0.5.23"
    assert sglang_contract["source"]["path"] == "sglang/benchmark/serving.py"
    labels = [entry["label"] for entry in sglang_contract["result_block"]["labels"]]
    for label in ("Max request concurrency:", "Median TTFT (ms):", "P90 TTFT (ms):", "Median TPOT (ms):",
                  "P90 TPOT (ms):", "Output token throughput (tok/s):"):
        assert label in labels
    # SGLang prints no P50 line: the median is the p50.
    assert not [label for label in labels if label.startswith("P50")]
    assert sglang_contract["result_block"]["header"]["text"] == "============ Serving Benchmark Result ============"


def test_a_rebuilt_sglang_output_with_two_runs(sglang_contract):
    text = (
        "gpuinfer-benchmark: concurrency=1 input_len=1024 output_len=128\n"
        + sglang_output(sglang_contract, 1, sglang_values(1, 35.5, 44.25, 6.1, 6.3, 157.5))
        + "gpuinfer-benchmark: concurrency=16 input_len=1024 output_len=128\n"
        + sglang_output(sglang_contract, 16, sglang_values(16, 140.0, 180.75, 9.5, 11.0, 1650.25)))
    # The rebuilt block looks like the real thing: label padded to 40 columns, then the value.
    assert "Median TTFT (ms):                        35.50     " in text
    results = bench_log.parse(text)
    assert [r["tool"] for r in results] == ["sglang", "sglang"]
    assert [r["concurrency"] for r in results] == [1, 16]
    first, second = results
    assert (first["input_len"], first["output_len"]) == (1024, 128)
    assert first["ttft_ms_p50"] == 35.5 and first["ttft_ms_p90"] == 44.25
    assert first["tpot_ms_p50"] == 6.1 and first["tpot_ms_p90"] == 6.3
    assert first["output_tokens_per_s"] == 157.5
    assert first["ttft_ms_p95"] == 45.25 and first["itl_ms_max"] == 12.0 and first["e2el_ms_p90"] == 830.0
    assert second["ttft_ms_p50"] == 140.0 and second["output_tokens_per_s"] == 1650.25
    assert first["completed"] == 8 and first["backend"] == "sglang"


def test_sglang_without_max_concurrency_prints_not_set(sglang_contract):
    values = sglang_values(1, 35.5, 44.25, 6.1, 6.3, 157.5)
    values["Max request concurrency:"] = "not set"
    text = sglang_output(sglang_contract, 1, values).replace("max_concurrency=1", "max_concurrency=None")
    assert bench_log.parse(text)[0]["concurrency"] is None


# ------------------------------------------------------------------------------------------------ comparison

def measured(concurrency, ttft=41.41, tpot=6.23):
    return {"tool": "vllm", "concurrency": concurrency, "input_len": 1024, "output_len": 128, "ttft_ms_p50": ttft,
            "ttft_ms_p90": 57.71, "tpot_ms_p50": tpot, "tpot_ms_p90": 6.26, "output_tokens_per_s": 152.28}


def test_compare_puts_measured_next_to_planned():
    result = bench_log.compare(PLAN, [measured(1)], "bench-c1.txt")
    assert result["status"] == "ok"
    first, second = result["points"]
    assert first["concurrency"] == 1 and (first["input_len"], first["output_len"]) == (1024, 128)
    assert first["measured"] == {"ttft_ms_p50": 41.41, "ttft_ms_p90": 57.71, "tpot_ms_p50": 6.23, "tpot_ms_p90": 6.26,
                                 "output_tokens_per_s": 152.28}
    # The plan predicts the median request: no p90.
    assert first["planned"] == {"ttft_ms_p50": 33.23, "ttft_ms_p90": None, "tpot_ms_p50": 6.204, "tpot_ms_p90": None,
                                "output_tokens_per_s": 155.9}
    assert first["error_pct"]["ttft_ms_p50"] == pytest.approx(24.6, abs=0.05)
    assert first["error_pct"]["ttft_ms_p90"] is None
    # Planned but not measured: kept, with a note.
    assert second["concurrency"] == 16 and set(second["measured"].values()) == {None}
    assert "concurrency 16 was planned but not measured" in result["messages"]


def test_compare_keeps_a_measured_point_the_plan_lacks_and_notes_other_lengths():
    other = dict(measured(64), input_len=512)
    result = bench_log.compare(PLAN, [measured(1), other])
    assert [p["concurrency"] for p in result["points"]] == [1, 16, 64]
    assert set(result["points"][2]["planned"].values()) == {None}
    assert result["points"][2]["input_len"] == 512
    assert any("measured but the plan predicts no point" in m for m in result["messages"])
    mismatch = bench_log.compare(PLAN, [dict(measured(1), input_len=2048)])
    assert any("input_len=2048" in m for m in mismatch["messages"])


def test_compare_without_results():
    result = bench_log.compare(PLAN, [], "pod log")
    assert result["status"] == "no_results" and result["points"] == []
    assert result["messages"] == ["pod log holds no benchmark result block"]


def test_slo_only_when_the_plan_has_one():
    assert bench_log.compare(PLAN, [measured(1, ttft=500.0)])["status"] == "ok"
    plan = dict(PLAN, slo={"ttft_ms": 40.0, "tpot_ms": 10.0})
    result = bench_log.compare(plan, [measured(1)])
    assert result["status"] == "fail"
    assert result["slo_violations"] == [{"concurrency": 1, "figure": "ttft_ms_p50", "measured": 41.41, "target": 40.0}]
    assert any("exceeds the plan's SLO" in m for m in result["messages"])
    assert bench_log.compare(dict(PLAN, slo={"ttft_ms_p50": 50, "tpot_ms_p50": 7}), [measured(1)])["status"] == "ok"
    assert bench_log.slo_targets(None) == {} and bench_log.slo_targets({"ttft_ms": True}) == {}


def test_render_prints_both_columns_and_the_report_section_replaces_itself():
    lines = bench_log.render(bench_log.compare(PLAN, [measured(1)], "bench-c1.txt"))
    assert lines[0] == "Benchmarked with vllm bench serve (bench-c1.txt): ok"
    assert "measured" in lines[1] and "planned" in lines[1]
    ttft = [line for line in lines if "TTFT p50" in line][0]
    assert "41.41" in ttft and "33.23" in ttft and "+24.6%" in ttft
    report = bench_log.append_section("GPU plan for x\nline\n", lines)
    assert report.startswith("GPU plan for x\nline\n\n--- Benchmarked ")
    again = bench_log.append_section(report, ["second"])
    assert again.count("--- Benchmarked ") == 1 and again.endswith("second\n") and "41.41" not in again
    assert bench_log.append_section("", ["only"]).startswith("--- Benchmarked ")
