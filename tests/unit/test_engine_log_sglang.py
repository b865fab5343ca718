"""engine_log.parse on SGLang start-up lines, written from the pinned release's own f-strings.

The formats come from tests/contracts/sglang/sglang-<version>.json (``log_lines``, extracted from SGLang's source
by tests/contracts/sglang/extract.py). Each placeholder gets a known value, so the test fails when a release
changes a wording the parser relies on, or adds a placeholder this test does not know.
"""

import json
import re
from pathlib import Path

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_log, engine_sglang

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "sglang" / ("sglang-%s.json" % engine_sglang.VERSION)
GIB = 1024 ** 3
# placeholder expression (a piece of it) -> the value the line gets
VALUES = (
    ("'is allocated'", "is allocated"),
    ("cache_name", "KV Cache"),
    ("self.dtype", "torch.bfloat16"),
    ("num_tokens", "1234567"),
    ("kv_size_GB", "20.50"),
    ("k_size_GB", "10.25"),
    ("v_size_GB", "10.25"),
    ("weight_load_mem_usage", "65.73"),
    ("after_avail_memory", "12.00"),
    ("weight_load_time", "31.50"),
    ("type(self.model)", "LlamaForCausalLM"),
    ("quant_str", ""),
    ("max_total_num_tokens", "1234567"),
    ("chunked_prefill_size", "8192"),
    ("max_prefill_tokens", "16384"),
    ("max_running_requests", "256"),
    ("context_len", "131072"),
    ("available_gpu_mem", "available_gpu_mem"),
    ("startup_available_gpu_memory_gb", "10.11"),
)


def render(fmt):
    def value(match):
        expression = match.group(1)
        for piece, text in VALUES:
            if piece in expression:
                return text
        pytest.fail("placeholder {%s} of an SGLang log line is new to this test: %s" % (expression, fmt))
    return "[2026-12-01 10:00:00 TP0] " + re.sub(r"\{((?:[^{}]|\{[^{}]*\})*)\}", value, fmt)


def log_lines(key):
    lines = json.loads(CONTRACT.read_text())["log_lines"]
    assert key in lines, "the contract has no %s line: refresh it (tests/contracts/refresh.py sglang)" % key
    return [fmt for fmt in lines[key] if "skipped" not in fmt]


def test_the_contract_holds_the_lines_verify_reads():
    assert log_lines("load_weight_end") and log_lines("kv_cache_allocated")


@pytest.mark.parametrize("fmt", log_lines("kv_cache_allocated"))
def test_kv_cache_line(fmt):
    found = engine_log.parse(render(fmt))
    assert found["kv_cache_tokens"] == 1234567
    assert found["kv_cache_memory_bytes"] == int(round(20.50 * GIB))


@pytest.mark.parametrize("fmt", log_lines("load_weight_end"))
def test_weights_line(fmt):
    assert engine_log.parse(render(fmt))["weights_bytes"] == int(round(65.73 * GIB))


def test_a_whole_start_up_of_two_ranks_keeps_the_binding_rank():
    weights = render(log_lines("load_weight_end")[0])
    kv = [fmt for fmt in log_lines("kv_cache_allocated") if "K size" in fmt][0]
    smaller = render(kv).replace("1234567", "1200000").replace("TP0", "TP1")
    found = engine_log.parse("\n".join([weights, weights.replace("TP0", "TP1"), render(kv), smaller,
                                        render(log_lines("max_total_num_tokens")[0])]))
    assert found["kv_cache_tokens"] == 1200000
    assert found["kv_cache_reports"] == 2
    assert found["ranks"] == 2
