# -*- coding: utf-8 -*-
"""The planner with engine=sglang against real SGLang start-ups (tests/fixtures/sglang-boot: SGLang 0.5.17, one H100,
dummy weights).

For each start-up the planner runs with the same model config, GPU total memory and server arguments, and its KV pool
tokens, weights and pre-load free memory are compared with SGLang's own lines ("Load weight begin/end",
"KV Cache is allocated ... #tokens: N"). ``pytest -s`` prints the table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_log
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts, gpu_catalog, sizing, sizing_sglang
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir

GIB = 1024 ** 3
MIB = 1024 ** 2
BOOT = fixture_dir("sglang-boot", "results.jsonl")
pytestmark = pytest.mark.skipif(BOOT is None, reason="tests/fixtures/sglang-boot is not in this checkout")

# KV pool tokens: within 2% of SGLang, never above it.
MAX_UNDER_PCT = 2.0
# SGLang logs memory rounded to 0.01 GB (GiB).
LOG_ROUNDING_GIB = 0.01
# nvidia-smi's "Total" of an H100 80GB HBM3 (what SGLang's get_device_memory_capacity reads).
H100_NVIDIA_SMI_MIB = 81559


def _cases():
    if BOOT is None:
        return []
    cases = []
    with open(os.path.join(BOOT, "results.jsonl")) as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                cases.append(dict(name=record["name"], config=record["config"], log="logs/%s.log" % record["name"],
                                  total_bytes=record["total_bytes"], mem_fraction_static=record["mem_fraction_static"],
                                  context_length=record["context_length"],
                                  chunked_prefill_size=record["chunked_prefill_size_eff"],
                                  max_running_requests=record["max_running_requests"]))
    # SGLang started with exactly the arguments the collection rendered (for a plan sized with vLLM's accounting):
    # --context-length=131072 --mem-fraction-static=0.92 --max-running-requests=1024 --chunked-prefill-size=8192.
    cases.append(dict(cases[0], name="serve-rendered-args", log="logs/serve-rendered-args.log", mem_fraction_static=0.92,
                      context_length=131072, chunked_prefill_size=8192, max_running_requests=1024))
    return cases


CASES = _cases()


def _read(relative):
    with open(os.path.join(BOOT, relative)) as handle:
        return handle.read()


def parse_sglang_log(text):
    """SGLang's own memory lines: the weights and the KV pool as verify reads them (engine_log.parse), and the free
    memory before and after loading, which only this calibration needs (0.5.17 wording, as in 0.5.23's model_runner.py)."""
    parsed = engine_log.parse(text)
    begin = re.search(r"Load weight begin\. avail mem=([\d.]+) GB", text)
    end = re.search(r"Load weight end\..*?avail mem=([\d.]+) GB", text)
    return {
        "pre_bytes": float(begin.group(1)) * GIB,
        "after_load_bytes": float(end.group(1)) * GIB,
        "weights_bytes": parsed["weights_bytes"],
        "kv_tokens": parsed["kv_cache_tokens"],
        "kv_bytes": parsed["kv_cache_memory_bytes"],
    }


def _plan(case, **overrides):
    config_path = os.path.join(BOOT, "configs", case["config"] + ".json")
    spec = sizing.ModelSpec(sizing.load_config_path(config_path), config_path)
    gpu_spec = dict(gpu_catalog.GPUS["H100-80GB"], memory_bytes=case["total_bytes"])
    options = dict(gpu_name="H100-80GB", gpu_spec=gpu_spec, max_model_len=case["context_length"],
                   gpu_memory_utilization=case["mem_fraction_static"], max_num_seqs=case["max_running_requests"],
                   max_num_batched_tokens=case["chunked_prefill_size"], tensor_parallel_size=1, pipeline_parallel_size=1,
                   engine="sglang")
    options.update(overrides)
    return spec, sizing.plan(spec, case["config"], case["config"], **options)


def _pct(planned, actual):
    return 100.0 * (planned - actual) / float(actual)


@pytest.fixture(scope="module")
def results():
    out = {}
    for case in CASES:
        spec, result = _plan(case)
        out[case["name"]] = (case, spec, result, parse_sglang_log(_read(case["log"])))
    print("\n%-32s %6s %10s %10s %8s %10s %10s" % ("case", "mfs", "planned", "SGLang", "error", "weights", "logged"))
    for name, (case, _spec, result, parsed) in sorted(out.items()):
        print("%-32s %6.2f %10d %10d %+7.3f%% %8.2f G %8.2f G" % (
            name, case["mem_fraction_static"], result["kv_cache_tokens"], parsed["kv_tokens"],
            _pct(result["kv_cache_tokens"], parsed["kv_tokens"]), result["memory_per_gpu"]["weights"] / float(GIB),
            parsed["weights_bytes"] / GIB))
    return out


def test_fixtures_hold_three_h100_start_ups():
    assert len(CASES) == 3
    for case in CASES:
        assert os.path.isfile(os.path.join(BOOT, case["log"]))
        assert case["total_bytes"] == 85017493504


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_kv_pool_tokens_match_sglang_never_above(results, name):
    _case, _spec, result, parsed = results[name]
    error = _pct(result["kv_cache_tokens"], parsed["kv_tokens"])
    assert error <= 0, "%s: the planner promises %+.3f%% more KV tokens than SGLang allocated" % (name, error)
    assert error >= -MAX_UNDER_PCT, "%s: the planner predicts %+.3f%% fewer KV tokens than SGLang" % (name, error)


@pytest.mark.parametrize("name", [case["name"] for case in CASES])
def test_memory_terms_match_sglangs_lines(results, name):
    _case, _spec, result, parsed = results[name]
    memory = result["memory_per_gpu"]
    # pre = total - non_torch: "Load weight begin. avail mem=".
    assert abs(memory["total"] - memory["non_torch"] - parsed["pre_bytes"]) <= LOG_ROUNDING_GIB * GIB
    # Resident after loading (weights + rotary cache + margin) vs "Load weight end ... mem usage=".
    assert 0 <= memory["weights"] - parsed["weights_bytes"] <= sizing_sglang.RESIDENT_MARGIN_BYTES + LOG_ROUNDING_GIB * GIB
    # The pool's bytes vs "K size + V size".
    assert abs(_pct(memory["kv_cache"], parsed["kv_bytes"])) <= 0.2
    assert result["plan"]["mem_fraction_static"] == _case["mem_fraction_static"]


def default_mem_fraction_static(gpu_mem_mib, tp, pp, chunked_prefill_size=None):
    """SGLang's own --mem-fraction-static when none is given: round((gpu_mem - reserved) / gpu_mem, 3), gpu_mem being
    the GPU's memory capacity in MiB (``get_device_memory_capacity``); the planner renders the same reserve from the
    CUDA total, rounded down (sizing_sglang.planned_mem_fraction_static)."""
    activation, graph = sizing_sglang.default_reserved_mb(gpu_mem_mib, tp, pp, chunked_prefill_size)
    return round((gpu_mem_mib - activation - graph) / float(gpu_mem_mib), 3)


def test_sglang_default_fraction_for_an_h100_is_083():
    """memory_hook.handle_gpu_memory_settings on an H100 (nvidia-smi 81559 MiB), TP1, chunked prefill 8192, CUDA graphs:
    reserve 512 + 1.5 x 8192 + 128 + 2 x 256 (decode graphs) + 8 x 58 (prefill graph token counts) = 13904 MiB."""
    assert len(sizing_sglang.prefill_cuda_graph_batch_sizes(8192)) == 58
    activation, graph = sizing_sglang.default_reserved_mb(H100_NVIDIA_SMI_MIB, 1, 1, 8192)
    assert activation + graph == 13904
    assert default_mem_fraction_static(H100_NVIDIA_SMI_MIB, 1, 1, 8192) == 0.83
    # TP8 adds 7/8 GiB and 512 decode graph slots (15312 MiB); a small chunk keeps the 10 GiB floor above 60 GiB.
    assert default_mem_fraction_static(H100_NVIDIA_SMI_MIB, 8, 1, 8192) == round((81559 - 15312) / 81559.0, 3)
    assert sum(sizing_sglang.default_reserved_mb(H100_NVIDIA_SMI_MIB, 1, 1, 2048)) == 10 * 1024


def test_rendered_fraction_leaves_sglangs_default_reserve(results):
    """The serve-rendered-args start-up: 0.92 (the vLLM plan's gpu_memory_utilization) left 3.68 GB after CUDA graph
    capture. A plan made with engine=sglang renders SGLang's own default instead, and warns when 0.92 is forced."""
    case = [item for item in CASES if item["name"] == "serve-rendered-args"][0]
    _spec, planned = _plan(case, gpu_memory_utilization=None)
    plan = planned["plan"]
    activation_mb, graph_mb = sizing_sglang.default_reserved_mb(H100_NVIDIA_SMI_MIB, 1, 1, 8192, 1024)
    assert plan["mem_fraction_static"] <= 0.83
    assert (1 - plan["mem_fraction_static"]) * case["total_bytes"] >= (activation_mb + graph_mb) * MIB
    flags = engine_facts.sglang_plan_flags(planned)
    assert "--mem-fraction-static=%s" % plan["mem_fraction_static"] in flags
    forced = results["serve-rendered-args"][2]
    assert any("mem_fraction_static=0.92 leaves" in warning and "SGLang's own default" in warning for warning in forced["warnings"])
    assert "--mem-fraction-static=0.92" in engine_facts.sglang_plan_flags(forced)
    print("\nserve-rendered-args: rendered 0.92 -> planned default %s (reserve %.1f GiB before graphs, SGLang's %.1f GiB)"
          % (plan["mem_fraction_static"], planned["memory_per_gpu"]["runtime_reserve"] / float(GIB),
             (activation_mb + graph_mb) / 1024.0))
