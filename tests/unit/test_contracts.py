"""The upstream contracts themselves: one for each pinned version, and checks that can fail."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.contracts import check as contracts  # noqa: E402


@pytest.mark.parametrize("name", ["vllm", "gpu_operator", "nim"])
def test_every_pinned_version_has_its_contract(name):
    contract = contracts.load(name)
    pinned = contracts.pinned_versions()[name]
    assert pinned.startswith(str(contract["version"]).lstrip("v")) or str(contract["version"]) == pinned


def test_the_engine_code_pins_the_same_vllm_release_as_the_role():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
    from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts
    assert engine_facts.VLLM_VERSION == contracts.pinned_versions()["vllm"]
    assert contracts.load("vllm")["image"]["CUDA_VERSION"].startswith(
        engines.image_driver_requirement("vllm/vllm-openai:v%s" % engine_facts.VLLM_VERSION)["cuda"])


def _deployment(container):
    return {"kind": "Deployment", "metadata": {"name": "llm-vllm"},
            "spec": {"template": {"spec": {"containers": [container]}}}}


def test_a_flag_or_variable_the_pinned_vllm_lacks_is_named():
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.34.0", "command": ["vllm", "serve"],
                 "args": ["org/model", "--tensor-parallel-size=8", "--swap-space=4", "--max-model-len=$(LEN)"],
                 "env": [{"name": "VLLM_HOST_IP", "value": "x"}, {"name": "VLLM_NOT_A_SETTING", "value": "1"},
                         {"name": "HF_HUB_CACHE", "value": "/models"}, {"name": "HF_NOT_READ", "value": "1"}]}
    assert contracts.vllm_violations([_deployment(container)]) == [
        "Deployment llm-vllm container vllm: vllm serve --swap-space is not a flag of vLLM 0.34.0",
        "Deployment llm-vllm container vllm: env VLLM_NOT_A_SETTING is not read by vLLM 0.34.0",
        "Deployment llm-vllm container vllm: env HF_NOT_READ is not read by huggingface_hub 2.4.0",
    ]


def test_undocumented_nim_settings_and_unknown_metrics_are_named():
    container = {"name": "nim", "image": "nvcr.io/nim/meta/llama-3.1-70b-instruct:2.1.6",
                 "args": ["nim-serve-ray", "--head", "--port", "6379", "--bogus"],
                 "env": [{"name": "NIM_LEADER_ROLE", "value": "1"}, {"name": "NIM_CACHE_PATH", "value": "/m"}]}
    assert contracts.nim_violations([_deployment(container)]) == [
        "Deployment llm-vllm container nim: env NIM_LEADER_ROLE is not in NVIDIA's NIM 2.1 env reference",
        "Deployment llm-vllm container nim: nim-serve-ray --bogus is not a documented flag",
    ]
    monitor = {"kind": "ScaledObject", "metadata": {"name": "llm"},
               "spec": {"triggers": [{"metadata": {"query": "sum(vllm:num_requests_waiting{}) + vllm:num_waiting"}}]}}
    assert contracts.metric_violations([monitor]) == [
        "ScaledObject llm: metric vllm:num_waiting is not exported by vLLM 0.34.0"]


def test_the_sglang_engine_pins_the_same_release_as_the_role():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_sglang
    assert engine_sglang.VERSION == contracts.pinned_versions()["sglang"]
    routes = contracts.load("sglang")["routes"]
    # The probes and the metrics path of the engine description are served by the pinned release.
    assert set(engine_sglang.ENGINE.probe_paths.values()) | {engine_sglang.ENGINE.metrics_path} <= set(routes)
    assert engine_sglang.ENGINE.queue_metric in contracts.load("sglang")["metrics"]


def test_an_sglang_flag_route_or_metric_the_pinned_release_lacks_is_named():
    container = {"name": "sglang", "image": "lmsysorg/sglang:v0.5.23", "command": ["python3", "-m", "sglang.launch_server"],
                 "args": ["--model-path=org/model", "--tp-size=8", "--max-model-len=4096", "--nnodes=$(LWS_GROUP_SIZE)"],
                 "env": [{"name": "SGLANG_NOT_A_SETTING", "value": "1"}],
                 "readinessProbe": {"httpGet": {"path": "/v1/health/ready", "port": "http"}}}
    assert contracts.sglang_violations([_deployment(container)]) == [
        "Deployment llm-vllm container sglang: --max-model-len is not a flag of SGLang 0.5.23",
        "Deployment llm-vllm container sglang: env SGLANG_NOT_A_SETTING is not read by SGLang 0.5.23",
        "Deployment llm-vllm container sglang: readinessProbe path /v1/health/ready is not served by SGLang 0.5.23",
    ]
    monitor = {"kind": "ScaledObject", "metadata": {"name": "llm"},
               "spec": {"triggers": [{"metadata": {"query": "sum(sglang:num_queue_reqs{}) + sglang:num_waiting_reqs"}}]}}
    assert contracts.metric_violations([monitor]) == [
        "ScaledObject llm: metric sglang:num_waiting_reqs is not exported by SGLang 0.5.23"]
