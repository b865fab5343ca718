"""The drift report of `make contracts-refresh` (tests/contracts/refresh.py --latest), on small synthetic contracts and
manifests: no network, no rendering."""

import pathlib
import sys
import urllib.error

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.contracts import refresh  # noqa: E402

HUB = {"package": "huggingface_hub", "version": "1.0.0", "env": ["HF_HOME", "HF_HUB_OFFLINE"]}


def vllm_contract(version, flags, choices=None, env=("VLLM_HOST_IP",), metrics=("vllm:num_requests_waiting",),
                  bench=("--base-url", "--max-concurrency"), cuda="13.0.3"):
    return {"engine": "vllm", "version": version, "flags": list(flags), "flag_aliases": {}, "flag_choices": choices or {},
            "env": list(env), "metrics": list(metrics), "metric_types": {"vllm:num_requests_waiting": "gauge"},
            "bench_serve_flags": list(bench), "image": {"CUDA_VERSION": cuda}}


def deployment(args, env=()):
    container = {"name": "vllm", "image": "vllm/vllm-openai:v1.0.0", "command": ["vllm", "serve"], "args": list(args),
                 "env": [{"name": name, "value": "1"} for name in env]}
    return {"kind": "Deployment", "metadata": {"name": "llm-vllm"},
            "spec": {"template": {"spec": {"containers": [container]}}}}


def bench_job(line):
    container = {"name": "bench", "image": "vllm/vllm-openai:v1.0.0", "command": ["/bin/sh", "-c", "set -e\n" + line]}
    return {"kind": "Job", "metadata": {"name": "llm-benchmark"}, "spec": {"template": {"spec": {"containers": [container]}}}}


SCALER = {"kind": "ScaledObject", "metadata": {"name": "llm"},
          "spec": {"triggers": [{"metadata": {"query": "sum(vllm:num_requests_waiting{})"}}]}}
OBJECTS = [deployment(["org/model", "--tensor-parallel-size=8", "--kv-cache-dtype=fp8_e5m2", "--max-model-len=$(LEN)"],
                      ["VLLM_HOST_IP", "HF_HOME"]),
           SCALER, bench_job("vllm bench serve --base-url http://llm:8000 --max-concurrency 4")]
RENDERED = [("demo", OBJECTS, [])]
CONTEXT = {"hub": HUB, "sglang": None, "dcgm": None}
PINNED = vllm_contract("1.0.0", ["--tensor-parallel-size", "--kv-cache-dtype", "--max-model-len", "--swap-space"],
                       {"--kv-cache-dtype": ["auto", "fp8", "fp8_e5m2"]})


def test_nothing_rendered_is_gone():
    newest = vllm_contract("1.1.0", PINNED["flags"] + ["--new-flag"], PINNED["flag_choices"],
                           metrics=("vllm:num_requests_waiting", "vllm:new_metric"))
    lines = refresh.report("vllm", PINNED, newest, RENDERED, CONTEXT, {"terms": [{}] * 3, "missing": []})
    assert lines[0] == "vllm 1.0.0 -> 1.1.0"
    assert lines[1] == ("  contract: flags 4 -> 5 (+1 -0), VLLM_* variables 1 -> 1 (+0 -0), metrics 1 -> 2 (+1 -0), "
                        "bench flags 2 -> 2 (+0 -0)")
    assert lines[2] == ("  rendered: 3 vllm serve flags, 1 VLLM_* variables, 1 vllm: series, 2 vllm bench serve flags: "
                        "all present in 1.1.0")
    assert "  changed for what is rendered: nothing" in lines
    assert lines[-1] == "  memory accounting: all 3 source lines module_utils/plan/sizing.py follows are in 1.1.0"


def test_a_removed_flag_variable_metric_and_bench_flag_are_named_with_where_they_are_rendered():
    newest = vllm_contract("2.0.0", ["--tensor-parallel-size", "--max-model-len"], env=(), metrics=(),
                           bench=("--base-url",))
    lines = refresh.report("vllm", PINNED, newest, RENDERED, CONTEXT, {"terms": [], "missing": ["block_size"]})
    text = "\n".join(lines)
    assert "  REMOVED in 2.0.0, and rendered by the collection:" in lines
    assert ("    vllm serve --kv-cache-dtype is not a flag of vLLM 2.0.0  [demo: Deployment llm-vllm container vllm]"
            in lines)
    assert "env VLLM_HOST_IP is not read by vLLM 2.0.0  [demo: Deployment llm-vllm container vllm]" in text
    assert "metric vllm:num_requests_waiting is not exported by vLLM 2.0.0  [demo: ScaledObject llm]" in text
    assert "vllm bench serve --max-concurrency is not a flag of vLLM 2.0.0  [demo: Job llm-benchmark container bench]" in text
    # A flag the collection does not render (--swap-space) is only counted.
    assert "--swap-space" not in text and "flags 4 -> 2 (+0 -2)" in text
    assert lines[-1].startswith("  memory accounting: source lines module_utils/plan/sizing.py follows that 2.0.0 no longer")
    assert lines[-1].endswith(": block_size")


def test_changed_choices_and_image_cuda_of_what_is_rendered():
    newest = vllm_contract("1.2.0", PINNED["flags"], {"--kv-cache-dtype": ["auto", "fp8"]}, cuda="13.2.0")
    lines = refresh.report("vllm", PINNED, newest, RENDERED, CONTEXT, None)
    assert "  changed for what is rendered:" in lines
    assert "    --kv-cache-dtype: choices -fp8_e5m2; the rendered fp8_e5m2 is no longer a choice" in lines
    added = vllm_contract("1.2.0", PINNED["flags"], {"--kv-cache-dtype": ["auto", "fp8", "fp8_e5m2", "nvfp4"]})
    assert ("    --kv-cache-dtype: choices +nvfp4 (rendered: fp8_e5m2, still a choice)"
            in refresh.report("vllm", PINNED, added, RENDERED, CONTEXT, None))
    assert any(line.startswith("    image CUDA 13.0.3 -> 13.2.0") for line in lines)
    assert lines[-1] == "  memory accounting: no memory-accounting-1.2.0.json (run tests/contracts/vllm/memory_accounting.py)"


def test_the_pinned_release_being_the_newest_and_what_already_fails():
    objects = [deployment(["--not-a-flag"])]
    lines = refresh.report("vllm", PINNED, PINNED, [("demo", objects, [])], CONTEXT, {"terms": [], "missing": []})
    assert lines[0] == "vllm 1.0.0 -> 1.0.0 (the pinned release is the newest)"
    assert "  already not in the pinned release (the render tests fail on these):" in lines
    assert "    vllm serve --not-a-flag is not a flag of vLLM 1.0.0  [demo: Deployment llm-vllm container vllm]" in lines


def test_huggingface_hub_and_gpu_operator():
    newest_hub = dict(HUB, version="1.1.0", env=["HF_HUB_OFFLINE"])
    lines = refresh.report("huggingface_hub", HUB, newest_hub, RENDERED, CONTEXT)
    assert "    env HF_HOME is not read by huggingface_hub 1.1.0  [demo: Deployment llm-vllm container vllm]" in lines
    pinned = {"chart": "gpu-operator", "version": "v1.0.0", "keys": ["driver", "driver.enabled", "toolkit"],
              "defaults": {"driver.enabled": True}}
    newest = {"chart": "gpu-operator", "version": "v1.1.0", "keys": ["driver", "driver.enabled"],
              "defaults": {"driver.enabled": False}}
    values = [("demo", [], [{"driver": {"enabled": True}, "toolkit": {}}])]
    lines = refresh.report("gpu_operator", pinned, newest, values, CONTEXT)
    assert lines[1] == "  contract: values keys 3 -> 2 (+0 -1)"
    assert "    values key toolkit is not in gpu-operator v1.1.0 values.yaml  [demo: values]" in lines
    assert "    driver.enabled: default True -> False" in lines


def test_newest_final_release():
    assert refresh.newest_final(["0.9.0", "0.10.0rc1", "0.10.0", "0.10.1.dev3", "0.9.10"]) == "0.10.0"
    assert refresh.newest_final(["v26.7.0", "v26.10.0", "v26.11.0-rc.1"]) == "v26.10.0"
    assert refresh.newest_final(["1.0.0rc1"]) is None


def test_offline_fails_clearly(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(refresh.urllib.request, "urlopen", refuse)
    with pytest.raises(refresh.Unreachable, match=r"cannot reach PyPI \(https://pypi.org/pypi/vllm/json\): .*name resolution"):
        refresh.newest_pypi("vllm")
    with pytest.raises(refresh.Unreachable, match="cannot reach NVIDIA's Helm repository .*; cannot reach GitHub"):
        refresh.newest_chart()
