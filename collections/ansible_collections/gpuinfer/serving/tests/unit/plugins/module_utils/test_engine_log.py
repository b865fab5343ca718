# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_log
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, sizing
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir, load_json

GIB = 1024 ** 3
BOOT = fixture_dir("vllm-boot", "cases.json")
needs_boot = pytest.mark.skipif(BOOT is None, reason="tests/fixtures/vllm-boot is not in this checkout")
H200_TOTAL = 150109880320


def gib(value):
    return int(round(value * GIB))


def read_log(name):
    with open(os.path.join(BOOT, "logs", name)) as handle:
        return handle.read()


def log_names():
    return sorted(os.listdir(os.path.join(BOOT, "logs"))) if BOOT else []


# What each real start-up logged, copied from its lines (vLLM prints sizes in GiB with two decimals).
FIXTURE_FIGURES = {
    "llama8b-u092-mml131k-seq1024-bt8192.log": dict(weights=15.0, kv=112.28, tokens=919824, graphs=0.98, activation=1.1, util=0.92),
    "llama8b-u090-mml32k-seq256-bt2048.log": dict(weights=15.0, kv=109.58, tokens=897680, graphs=0.59, activation=1.01, util=0.9),
    "qwen25-7b-u092-mml32k-seq1024-bt8192.log": dict(weights=14.29, kv=112.98, tokens=2115440, graphs=0.89, activation=1.13, util=0.92),
    "mistral7b-u092-mml32k-seq256-bt4096.log": dict(weights=13.5, kv=114.38, tokens=2495481, graphs=0.59, activation=0.51, util=0.92),
    "gemma2-27b-u092-mml8k-seq256-bt8192.log": dict(weights=50.72, kv=75.34, tokens=214454, graphs=0.77, activation=2.34, util=0.92),
    "mixtral8x7b-u095-mml32k-seq256-bt8192.log": dict(weights=87.0, kv=43.41, tokens=355616, graphs=0.49, activation=1.78, util=0.95),
    "phi3mini-u080-mml4k-seq256-bt2048.log": dict(weights=7.12, kv=104.28, tokens=283628, graphs=0.53, activation=0.22, util=0.8),
    "serve-llama8b.log": dict(weights=15.0, kv=112.28, tokens=919824, graphs=0.98, activation=1.1, util=0.92,
                              concurrency=7.02, per_request=131072),
    "offline-start-hub-cache-models.log": dict(weights=15.0, kv=53.57, tokens=438816, graphs=0.98, activation=1.1, util=0.5,
                                               concurrency=53.57, per_request=8192),
}


# ----- every real log -----

@needs_boot
def test_every_fixture_log_is_covered():
    logs = [name for name in log_names() if name.endswith(".log")]
    assert len(logs) >= 10
    assert set(logs) == set(FIXTURE_FIGURES) | {"offline-start-as-rendered.log"}
    assert set(case["log"] for case in load_json(BOOT, "cases.json")) <= set("logs/" + name for name in logs)


@needs_boot
@pytest.mark.parametrize("name", sorted(FIXTURE_FIGURES))
def test_real_start_up_logs(name):
    expected = FIXTURE_FIGURES[name]
    parsed = engine_log.parse(read_log(name))
    assert parsed["weights_bytes"] == gib(expected["weights"])
    assert parsed["kv_cache_memory_bytes"] == gib(expected["kv"])
    assert parsed["kv_cache_tokens"] == expected["tokens"]
    assert parsed["cuda_graph_bytes"] == gib(expected["graphs"])
    assert parsed["peak_activation_bytes"] == gib(expected["activation"])
    assert parsed["gpu_memory_utilization"] == expected["util"]
    if "concurrency" in expected:
        assert parsed["max_concurrency"] == expected["concurrency"]
        assert parsed["max_concurrency_tokens_per_request"] == expected["per_request"]
    else:
        # `vllm.LLM(...)` start-ups in 0.26 do not print the concurrency line: the key is absent, not 0.
        assert "max_concurrency" not in parsed and "max_concurrency_tokens_per_request" not in parsed
    assert parsed["ranks"] == 1 and parsed["kv_cache_reports"] == 1


@needs_boot
@pytest.mark.parametrize("name", sorted(FIXTURE_FIGURES))
def test_real_breakdown_line_is_consistent_with_the_other_lines(name):
    parsed = engine_log.parse(read_log(name))
    assert parsed["breakdown_weights_bytes"] == parsed["weights_bytes"]
    assert parsed["breakdown_cuda_graph_bytes"] == parsed["cuda_graph_bytes"]
    assert abs(parsed["total_memory_bytes"] - H200_TOTAL) <= 0.005 * GIB
    assert abs(parsed["requested_memory_bytes"] - parsed["gpu_memory_utilization"] * H200_TOTAL) <= 0.005 * GIB
    assert parsed["free_memory_bytes"] < parsed["total_memory_bytes"]
    assert 0.2 * GIB < parsed["non_torch_bytes"] < 0.25 * GIB
    # The KV cache is what the budget leaves: less than the requested memory minus the weights.
    assert 0 < parsed["kv_cache_memory_bytes"] < parsed["requested_memory_bytes"] - parsed["weights_bytes"]


@needs_boot
def test_the_runner_is_read_from_the_file_that_logged_the_weights():
    runners = dict((name, engine_log.parse(read_log(name))["model_runner"]) for name in FIXTURE_FIGURES)
    assert runners.pop("mixtral8x7b-u095-mml32k-seq256-bt8192.log") == "v1"
    assert set(runners.values()) == {"v2"}
    assert engine_log.parse(read_log("mixtral8x7b-u095-mml32k-seq256-bt8192.log"))["cuda_graph_estimate_bytes"] == gib(0.39)


@needs_boot
def test_a_start_up_that_fails_before_loading_gives_no_numbers():
    assert engine_log.parse(read_log("offline-start-as-rendered.log")) == {}
    assert engine_log.parse(read_log("serve-check.txt")) == {}


# ----- wordings and prefixes -----

@pytest.mark.parametrize("line, key, value", [
    ("INFO 12-01 19:02:10 [model_runner.py:305] Model loading took 15.0 GiB and 3.206367 seconds", "weights_bytes", gib(15.0)),
    ("(EngineCore_DP0 pid=123) INFO 12-01 19:12:44 [gpu_model_runner.py:5347] Model loading took 87.0 GiB memory and 0.91 seconds",
     "weights_bytes", gib(87.0)),
    ("INFO 06-01 10:00:00 model_runner.py:1071] Loading model weights took 14.9595 GB", "weights_bytes", gib(14.9595)),
    ("INFO 03-01 10:00:00 [gpu_model_runner.py:1329] Model loading took 14.9889 GiB and 4.470003 seconds", "weights_bytes", gib(14.9889)),
    ("(VllmWorker rank=0 pid=77) INFO 05-01 10:00:00 [gpu_worker.py:227] Available KV cache memory: 53.29 GiB",
     "kv_cache_memory_bytes", gib(53.29)),
    ("INFO 05-01 10:00:00 [kv_cache_utils.py:634] GPU KV cache size: 1,969,008 tokens", "kv_cache_tokens", 1969008),
    ("INFO 05-01 10:00:00 [kv_cache_utils.py:634] GPU KV cache size: 436576 tokens", "kv_cache_tokens", 436576),
    ("INFO 05-01 10:00:00 [kv_cache_utils.py:637] Maximum concurrency for 32768 tokens per request: 54.35x", "max_concurrency", 54.35),
    ("INFO 05-01 10:00:00 [kv_cache_utils.py:637] Maximum concurrency for 131,072 tokens per request: 7.02x",
     "max_concurrency_tokens_per_request", 131072),
    ("INFO 05-01 10:00:00 [gpu_model_runner.py:1686] Graph capturing finished in 17 secs, took 0.40 GiB", "cuda_graph_bytes", gib(0.40)),
    ("INFO 05-01 10:00:00 [gpu_model_runner.py:1686] Graph capturing finished in 1 sec, took 1.25 GiB", "cuda_graph_seconds", 1.0),
    ('{"level": "INFO", "time": "2025-06-01T10:00:00", "file_path": "/opt/nim/llm/.venv/lib/python3.12/site-packages/vllm/'
     'v1/core/kv_cache_utils.py", "line_number": 634, "message": "GPU KV cache size: 2,115,440 tokens", "exc_info": "None"}',
     "kv_cache_tokens", 2115440),
    ('{"level":"INFO","time":"2025-06-01T10:00:00","message":"Available KV cache memory: 60.25 GiB"}',
     "kv_cache_memory_bytes", gib(60.25)),
    ("\x1b[1;36m(EngineCore pid=9)\x1b[0;0m INFO 05-01 10:00:00 [gpu_worker.py:560] Available KV cache memory: 1.00 GiB",
     "kv_cache_memory_bytes", GIB),
    ("INFO 04-12 08:21:19 [worker.py:267] model weights take 21.21GiB; non_torch_memory takes 0.20GiB; PyTorch activation "
     "peak memory takes 0.37GiB; the rest of the memory reserved for KV Cache is 1.57GiB.", "kv_cache_memory_bytes", gib(1.57)),
    ("INFO 04-12 08:21:19 [worker.py:267] model weights take 21.21GiB; non_torch_memory takes 0.20GiB; PyTorch activation "
     "peak memory takes 0.37GiB; the rest of the memory reserved for KV Cache is 1.57GiB.", "peak_activation_bytes", gib(0.37)),
    ("INFO 12-13 19:54:18 worker.py:243] model weights take   14.96GiB", "weights_bytes", gib(14.96)),
    ("INFO 12-13 19:54:18 worker.py:243] non_torch_memory     1.79GiB", "non_torch_bytes", gib(1.79)),
    ("INFO 12-13 19:54:18 worker.py:243] available_kv_cache_memory    53.29GiB", "kv_cache_memory_bytes", gib(53.29)),
])
def test_wordings_and_prefixes(line, key, value):
    parsed = engine_log.parse(line + "\n")
    assert parsed[key] == value


def test_breakdown_line_with_any_prefix():
    line = ("(EngineCore_DP0 pid=5) INFO 12-01 19:18:53 [gpu_worker.py:857] Free memory on device (78.5/79.11 GiB) on startup. "
            "Desired GPU memory utilization is (0.9, 71.2 GiB). Actual usage is 14.99 GiB for weight, 1.19 GiB for peak "
            "activation, 0.2 GiB for non-torch memory, and 0.5 GiB for CUDAGraph memory. Replace gpu_memory_utilization ...")
    parsed = engine_log.parse(line)
    assert parsed["free_memory_bytes"] == gib(78.5) and parsed["total_memory_bytes"] == gib(79.11)
    assert parsed["gpu_memory_utilization"] == 0.9 and parsed["requested_memory_bytes"] == gib(71.2)
    assert parsed["breakdown_weights_bytes"] == gib(14.99) and parsed["peak_activation_bytes"] == gib(1.19)
    assert parsed["non_torch_bytes"] == gib(0.2) and parsed["breakdown_cuda_graph_bytes"] == gib(0.5)
    # Without their own lines, the breakdown gives the weights and the CUDA graphs.
    assert parsed["weights_bytes"] == gib(14.99) and parsed["cuda_graph_bytes"] == gib(0.5)
    assert "kv_cache_tokens" not in parsed and "kv_cache_memory_bytes" not in parsed


def test_tensor_parallel_ranks_keep_the_binding_kv_figures_and_count_the_ranks():
    log = "\n".join([
        "(VllmWorker TP0 pid=11) INFO 05-01 10:00:00 [gpu_model_runner.py:1329] Model loading took 8.12 GiB and 4.1 seconds",
        "(VllmWorker TP1 pid=12) INFO 05-01 10:00:00 [gpu_model_runner.py:1329] Model loading took 8.10 GiB and 4.2 seconds",
        "(VllmWorker TP0 pid=11) INFO 05-01 10:00:09 [gpu_worker.py:227] Available KV cache memory: 60.10 GiB",
        "(VllmWorker TP1 pid=12) INFO 05-01 10:00:09 [gpu_worker.py:227] Available KV cache memory: 60.05 GiB",
        "(EngineCore_DP0 pid=10) INFO 05-01 10:00:10 [kv_cache_utils.py:634] GPU KV cache size: 984,512 tokens",
        "(EngineCore_DP0 pid=10) INFO 05-01 10:00:10 [kv_cache_utils.py:634] GPU KV cache size: 983,680 tokens",
        "(EngineCore_DP0 pid=10) INFO 05-01 10:00:10 [kv_cache_utils.py:637] Maximum concurrency for 131,072 tokens per request: 7.51x",
        "(EngineCore_DP0 pid=10) INFO 05-01 10:00:10 [kv_cache_utils.py:637] Maximum concurrency for 131,072 tokens per request: 7.50x",
    ])
    parsed = engine_log.parse(log)
    assert parsed["ranks"] == 2 and parsed["kv_cache_reports"] == 2
    assert parsed["kv_cache_tokens"] == 983680
    assert parsed["kv_cache_memory_bytes"] == gib(60.05)
    assert parsed["max_concurrency"] == 7.5
    assert parsed["weights_bytes"] == gib(8.12)
    assert parsed["model_runner"] == "v1"


def test_missing_lines_leave_keys_out():
    parsed = engine_log.parse("INFO 12-01 19:02:10 [model_runner.py:305] Model loading took 15.0 GiB and 3.2 seconds\n"
                              "INFO something unrelated: 12 tokens, 3 GiB\n")
    assert parsed == {"weights_bytes": gib(15.0), "model_runner": "v2", "ranks": 1}
    assert engine_log.parse("") == {} and engine_log.parse(None) == {}


def test_bytes_and_gib_units():
    parsed = engine_log.parse(b"Available KV cache memory: 2.50 GiB\nGPU KV cache size: 1,000 tokens\n")
    assert parsed["kv_cache_memory_bytes"] == 2684354560 == int(2.5 * 1024 ** 3)
    assert parsed["kv_cache_tokens"] == 1000


# ----- compare -----

def test_compare_rows_and_errors():
    plan = {"memory_per_gpu": {"weights": 110, "kv_cache": 90, "activation_peak": 5, "non_torch": 2, "cuda_graph": 1},
            "kv_cache_tokens": 1010, "max_concurrency": 3.0}
    parsed = {"weights_bytes": 100, "kv_cache_memory_bytes": 100, "kv_cache_tokens": 1000, "peak_activation_bytes": 4,
              "non_torch_bytes": 2}
    rows = engine_log.compare(plan, parsed)
    assert [row["figure"] for row in rows] == [
        "weights per GPU (bytes)", "KV cache memory (bytes)", "KV cache tokens", "max concurrency",
        "peak activation (bytes)", "non-torch memory (bytes)", "CUDA graphs (bytes)"]
    by_figure = dict((row["figure"], row) for row in rows)
    assert by_figure["weights per GPU (bytes)"]["error_pct"] == 10.0
    assert by_figure["KV cache memory (bytes)"]["error_pct"] == -10.0
    assert by_figure["KV cache tokens"]["error_pct"] == 1.0
    assert by_figure["peak activation (bytes)"]["error_pct"] == 25.0
    assert by_figure["non-torch memory (bytes)"]["error_pct"] == 0.0
    # Figures the log lacks: planned kept, no actual, no error.
    assert by_figure["max concurrency"] == {"figure": "max concurrency", "planned": 3.0, "actual": None, "error_pct": None}
    assert by_figure["CUDA graphs (bytes)"]["actual"] is None and by_figure["CUDA graphs (bytes)"]["error_pct"] is None


@needs_boot
def test_compare_a_plan_with_the_served_llama():
    case = load_json(BOOT, "cases.json")[0]
    config_path = os.path.join(BOOT, "configs", case["config"] + ".json")
    spec = sizing.ModelSpec(sizing.load_config_path(config_path), config_path)
    plan = sizing.plan(spec, case["config"], case["config"], gpu_name="H200-141GB",
                       gpu_spec=dict(gpu_catalog.GPUS["H200-141GB"], memory_bytes=case["gpu_total_bytes"]),
                       max_model_len=case["max_model_len"], gpu_memory_utilization=case["gpu_memory_utilization"],
                       max_num_seqs=case["max_num_seqs"], max_num_batched_tokens=case["max_num_batched_tokens"],
                       tensor_parallel_size=1, pipeline_parallel_size=1,
                       vllm_version=case.get("vllm_version", "0.26.0"))  # the release that logged the fixture
    parsed = engine_log.parse(read_log("serve-llama8b.log"))
    rows = engine_log.compare(plan, parsed)
    assert len(rows) == 7
    for row in rows:
        assert row["planned"] is not None and row["actual"] is not None
        assert row["error_pct"] == round(100.0 * (row["planned"] - row["actual"]) / row["actual"], 2)
    tokens = [row for row in rows if row["figure"] == "KV cache tokens"][0]
    assert (tokens["planned"], tokens["actual"]) == (plan["kv_cache_tokens"], parsed["kv_cache_tokens"])
    # The planner and the parser agree on units: both sides of every byte figure are within a few percent.
    for row in rows:
        if row["figure"].endswith("(bytes)") and row["figure"] != "CUDA graphs (bytes)":
            assert abs(row["error_pct"]) < 10, row


# vLLM 0.27+ (gpu_worker.py): weights and non-torch are one "consumed" figure; KV line and concurrency on one line.
V029_LOG = "\n".join([
    "(EngineCore pid=77) INFO 12-01 10:00:01 [gpu_model_runner.py:5472] Model loading took 14.99 GiB memory and 3.412000 seconds",
    "(EngineCore pid=77) INFO 12-01 10:00:09 [gpu_model_runner.py:6895] Estimated CUDA graph memory: 0.97 GiB total",
    "(EngineCore pid=77) INFO 12-01 10:00:09 [gpu_worker.py:626] Available KV cache memory: 111.31 GiB",
    "(EngineCore pid=77) INFO 12-01 10:00:09 [gpu_worker.py:840] Free memory on device (139.29/139.8 GiB) on startup. "
    "Desired GPU memory utilization is (0.92, 128.62 GiB). Actual usage is 15.22 GiB for consumed memory "
    "(weights + non-torch), 1.1 GiB for peak activation, and 0.97 GiB for CUDAGraph memory. Replace "
    "gpu_memory_utilization config with `--kv-cache-memory=119519999999` (111.31 GiB) to fit into requested memory.",
    "(EngineCore pid=77) INFO 12-01 10:00:09 [kv_cache_utils.py:2033] GPU KV cache size: 911,872 tokens, "
    "Maximum concurrency for 131,072 tokens per request: 6.96x",
])


def test_the_0_29_wording_of_the_breakdown_and_kv_lines():
    parsed = engine_log.parse(V029_LOG)
    assert parsed["weights_bytes"] == gib(14.99)
    assert parsed["consumed_bytes"] == gib(15.22)
    assert parsed["non_torch_bytes"] == gib(15.22) - gib(14.99)
    assert parsed["peak_activation_bytes"] == gib(1.1)
    assert parsed["cuda_graph_estimate_bytes"] == parsed["breakdown_cuda_graph_bytes"] == gib(0.97)
    assert parsed["kv_cache_memory_bytes"] == gib(111.31)
    assert parsed["kv_cache_tokens"] == 911872
    assert parsed["max_concurrency"] == 6.96 and parsed["max_concurrency_tokens_per_request"] == 131072
    assert parsed["requested_memory_bytes"] == gib(128.62)


# vLLM 0.34 (extensible KV cache): the lines as its source formats them (gpu_worker.py:796, extensible_kv_cache.py:693,
# kv_cache_utils.py:1169 in the 0.34.0 sdist); the numbers are made up.
V034_LOG = "\n".join([
    "(EngineCore pid=77) INFO 12-01 10:00:01 [model_runner.py:442] Model loading took 14.99 GiB memory and 3.41 seconds",
    "(EngineCore pid=77) INFO 12-01 10:00:09 [gpu_worker.py:796] Available KV cache memory: 112.28 GiB",
    "(EngineCore pid=77) INFO 12-01 10:00:40 [extensible_kv_cache.py:693] Memory after warmup: 111.9 GiB free, 0.25 GiB "
    "committed to the KV cache, 1.1 GiB kept for transient activations (1.1 GiB allocated at peak, 0.5 GiB of torch "
    "reservation growth); 13608 KV cache blocks (106.31 GiB) fit within the requested 128.62 GiB. Torch may reserve "
    "up to 17.4 GiB.",
    "(EngineCore pid=77) INFO 12-01 10:00:40 [kv_cache_utils.py:1169] GPU KV cache size: 870,912 tokens, "
    "Maximum concurrency for 131,072 tokens per request: 6.64x",
])


def test_the_0_34_extensible_kv_cache_line_is_the_kv_memory():
    parsed = engine_log.parse(V034_LOG)
    assert parsed["model_runner"] == "v2"
    # Not the 112.28 GiB reserved before CUDA graphs and the margin.
    assert parsed["kv_cache_memory_bytes"] == gib(106.31)
    assert parsed["kv_cache_tokens"] == 870912 and parsed["max_concurrency"] == 6.64


def _plan(tokens, min_concurrency=1, max_model_len=131072):
    return {"plan": {"max_model_len": max_model_len, "min_concurrency": min_concurrency},
            "memory_per_gpu": {"weights": gib(14.99), "kv_cache": gib(111.3)}, "kv_cache_tokens": tokens,
            "max_concurrency": tokens / float(max_model_len)}


def test_verify_within_tolerance_is_ok_and_renders_the_table():
    result = engine_log.verify(_plan(900000), V029_LOG, 10, "pod llm/llm-vllm-0")
    assert result["status"] == "ok" and not result["messages"]
    assert result["kv_tokens_error_pct"] == round(100.0 * (900000 - 911872) / 911872, 2)
    lines = engine_log.render_verification(result)
    assert lines[0] == "Verified against pod llm/llm-vllm-0: ok"
    (kv_line,) = [line for line in lines if "KV cache tokens" in line]
    assert "900,000" in kv_line and "911,872" in kv_line and "-1.3%" in kv_line


def test_verify_warns_beyond_the_tolerance():
    result = engine_log.verify(_plan(1100000), V029_LOG, 10)
    assert result["status"] == "warn"
    assert "planned 1,100,000, the engine has 911,872 (+20.6%, tolerance 10%)" in result["messages"][0]


def test_verify_fails_when_the_engine_holds_fewer_full_context_requests_than_planned():
    result = engine_log.verify(_plan(911872, min_concurrency=8), V029_LOG, 10)
    assert result["status"] == "fail" and result["engine_concurrency"] == 6.96
    assert "fewer than min_concurrency=8" in result["messages"][-1]


def test_verify_without_engine_lines_says_so():
    result = engine_log.verify(_plan(911872), "kwok: no container started\n", 10, "pod llm/x")
    assert result["status"] == "no_log" and not result["rows"]
    assert "pod llm/x has no GPU KV cache size line" in result["messages"][0]
    with pytest.raises(ValueError, match="gpuinfer_verify_tolerance"):
        engine_log.verify(_plan(1), V029_LOG, -1)
