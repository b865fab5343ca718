# -*- coding: utf-8 -*-
"""The benchmark Job: the engine's own load generator in its image, offline on the engine's cache, one run per
planned concurrency, and only flags the pinned releases accept (tests/contracts)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shlex

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import bench_log, engine_base
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import benchmark, workload

PLAN = {"model": {"hf_id": "meta-llama/Llama-3.1-8B-Instruct", "revision": "main"},
        "performance": {"points": [
            {"concurrency": 1, "input_len": 1024, "output_len": 128, "ttft_ms": 33.2, "tpot_ms": 6.2,
             "output_tokens_per_s": 155.9},
            {"concurrency": 64, "input_len": 1024, "output_len": 128, "ttft_ms": 300.0, "tpot_ms": 12.0,
             "output_tokens_per_s": 4000.0}]}}


def settings(**extra):
    value = {"engine": "vllm", "name": "llm-benchmark", "namespace": "llm-serving", "instance": "llm",
             "image": "vllm/vllm-openai:v0.34.0", "base_url": "http://llm.llm-serving.svc.cluster.local:8000",
             "served_model_name": "meta-llama/Llama-3.1-8B-Instruct", "tokenizer": "meta-llama/Llama-3.1-8B-Instruct",
             "cache_pvc_name": "llm-model-cache", "cache_mount_path": "/models", "offline": True}
    value.update(extra)
    return value


def contract(*parts):
    folder = os.path.dirname(os.path.abspath(__file__))
    while os.path.dirname(folder) != folder:
        candidate = os.path.join(folder, "tests", "contracts", *parts)
        if os.path.exists(candidate):
            with open(candidate) as handle:
                return json.load(handle)
        folder = os.path.dirname(folder)
    pytest.skip("tests/contracts is not in this checkout")


def runs(job):
    """The load-generator command lines of the Job's script, as argv lists."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    lines = container["command"][2].splitlines()
    assert lines[0] == "set -e"
    return [shlex.split(line) for line in lines if line.startswith(("vllm ", "python3 -m sglang"))], lines


def flags(argv):
    return [arg for arg in argv if arg.startswith("--")]


def test_vllm_job_runs_vllm_bench_serve_per_planned_concurrency():
    job = benchmark.build_job(PLAN, settings())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["namespace"] == "llm-serving" and job["metadata"]["name"] == "llm-benchmark"
    assert job["metadata"]["labels"] == workload.standard_labels("benchmark", "llm")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    container = pod["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.34.0"
    commands, lines = runs(job)
    assert len(commands) == 2
    first = commands[0]
    assert first[:3] == ["vllm", "bench", "serve"]
    expected = ["--backend", "vllm", "--base-url", "http://llm.llm-serving.svc.cluster.local:8000",
                "--model", "meta-llama/Llama-3.1-8B-Instruct", "--tokenizer", "meta-llama/Llama-3.1-8B-Instruct",
                "--dataset-name", "random", "--random-input-len", "1024", "--random-output-len", "128", "--ignore-eos",
                "--max-concurrency", "1", "--num-prompts", "8"]
    assert first[3:3 + len(expected)] == expected
    assert first[first.index("--metric-percentiles") + 1] == "50,90,99"
    assert commands[1][commands[1].index("--max-concurrency") + 1] == "64"
    assert commands[1][commands[1].index("--num-prompts") + 1] == "256"
    # Each run follows its marker line, which the parser reads back.
    markers = [line for line in lines if bench_log.MARKER in line]
    assert markers[0] == "echo '%s concurrency=1 input_len=1024 output_len=128'" % bench_log.MARKER


def test_offline_on_the_engines_cache_read_only():
    job = benchmark.build_job(PLAN, settings())
    container = job["spec"]["template"]["spec"]["containers"][0]
    # The engine's own Hugging Face cache variables, offline.
    assert container["env"] == engine_base.hf_cache_env("/models", offline=True)
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container["env"]
    assert container["volumeMounts"] == [{"name": workload.CACHE_VOLUME, "mountPath": "/models", "readOnly": True}]
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": workload.CACHE_VOLUME, "persistentVolumeClaim": {"claimName": "llm-model-cache", "readOnly": True}}
    online = benchmark.build_job(PLAN, settings(offline=False))["spec"]["template"]["spec"]["containers"][0]
    assert "HF_HUB_OFFLINE" not in [entry["name"] for entry in online["env"]]


def test_a_revision_is_resolved_in_the_cache_before_the_runs():
    job = benchmark.build_job(PLAN, settings(tokenizer_revision="0e9e39f249a16976918f6564b8830bc894c89659"))
    commands, lines = runs(job)
    assert lines[1].startswith("TOKENIZER=$(python3 -c ")
    resolve = shlex.split(lines[1][len("TOKENIZER=$("):-1])
    assert "local_files_only=True" in resolve[2]
    assert resolve[3:] == ["meta-llama/Llama-3.1-8B-Instruct", "0e9e39f249a16976918f6564b8830bc894c89659"]
    # The shell expands the resolved folder (a quoted variable, not a literal).
    assert '--tokenizer "$TOKENIZER"' in lines[3]
    assert commands[0][commands[0].index("--tokenizer") + 1] == "$TOKENIZER"


def test_nim_is_measured_with_vllms_tool_on_its_openai_endpoint():
    job = benchmark.build_job(PLAN, settings(engine="nim", cache_mount_path="/model-store"))
    commands, _lines = runs(job)
    assert commands[0][:3] == ["vllm", "bench", "serve"]
    assert commands[0][commands[0].index("--backend") + 1] == "openai"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.34.0"
    assert container["volumeMounts"][0]["mountPath"] == "/model-store"


def test_sglang_job_runs_its_bench_serving_on_random_ids():
    job = benchmark.build_job(PLAN, settings(engine="sglang", image="lmsysorg/sglang:v0.5.23", concurrency=[64]))
    commands, _lines = runs(job)
    assert len(commands) == 1
    argv = commands[0]
    assert argv[:3] == ["python3", "-m", "sglang.bench_serving"]
    assert argv[argv.index("--backend") + 1] == "sglang"
    # random would download ShareGPT for its text; random-ids draws token ids from the tokenizer, offline.
    assert argv[argv.index("--dataset-name") + 1] == "random-ids"
    assert argv[argv.index("--random-range-ratio") + 1] == "1"
    assert argv[argv.index("--max-concurrency") + 1] == "64"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "lmsysorg/sglang:v0.5.23"


@pytest.mark.parametrize("engine", ["vllm", "nim"])
def test_every_vllm_bench_flag_is_in_the_pinned_contract(engine):
    known = set(contract("vllm", "vllm-0.34.0.json")["bench_serve_flags"])
    job = benchmark.build_job(PLAN, settings(engine=engine, extra_args=["--request-rate", "inf"],
                                             tokenizer_revision="main"))
    for argv in runs(job)[0]:
        missing = [flag for flag in flags(argv) if flag not in known]
        assert not missing, "vllm bench serve 0.34.0 has no %s" % missing


def test_every_sglang_bench_flag_is_in_the_pinned_contract():
    known = contract("sglang", "sglang-0.5.23-bench-serving.json")["flags"]
    choices = ["random-ids", "random"]
    job = benchmark.build_job(PLAN, settings(engine="sglang", image="lmsysorg/sglang:v0.5.23"))
    for argv in runs(job)[0]:
        missing = [flag for flag in flags(argv) if flag not in known]
        assert not missing, "sglang.bench_serving 0.5.23 has no %s" % missing
        assert argv[argv.index("--dataset-name") + 1] in choices


def test_the_contract_holds_the_real_runs_flags():
    """The vllm 0.26 run of the fixtures printed its arguments: each is a 0.34.0 flag too."""
    known = set(contract("vllm", "vllm-0.34.0.json")["bench_serve_flags"])
    for flag in ("--max-concurrency", "--random-input-len", "--ignore-eos", "--save-result", "--percentile-metrics",
                 "--metric-percentiles", "--ready-check-timeout-sec", "--num-prompts", "--tokenizer", "--base-url"):
        assert flag in known


@pytest.mark.parametrize("change, message", [
    ({"image": "vllm/vllm-openai:latest"}, "pinned release"),
    ({"image": "vllm/vllm-openai"}, "pinned release"),
    ({"cache_mount_path": ""}, "mount path"),
    ({"cache_pvc_name": ""}, "claim"),
    ({"engine": "trtllm"}, "no benchmark for engine"),
    ({"tokenizer": ""}, "tokenizer"),
    ({"concurrency": [3]}, "matches none"),
])
def test_settings_that_cannot_work(change, message):
    with pytest.raises(benchmark.BenchmarkError, match=message):
        benchmark.build_job(PLAN, settings(**change))


def test_a_plan_without_points():
    with pytest.raises(benchmark.BenchmarkError, match="no performance.points"):
        benchmark.build_job({"performance": None}, settings())
