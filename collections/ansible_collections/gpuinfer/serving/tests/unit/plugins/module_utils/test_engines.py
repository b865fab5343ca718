from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shlex

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.engines import (
    EngineError, nim_containers, vllm_containers, vllm_engine_args)

PLAN = {"model": {"hf_id": "org/model"}, "plan": {
    "tensor_parallel_size": 8, "pipeline_parallel_size": 2, "nodes": 2, "gpus_per_node": 8, "max_model_len": 8192,
    "gpu_memory_utilization": 0.9, "max_num_seqs": 32, "max_num_batched_tokens": 2048, "kv_cache_dtype": "fp8",
    "quantization": "fp8"}}
PROBE = {"period_seconds": 10, "failure_threshold": 500}


def vllm_spec(**changes):
    spec = {"image": "vllm/vllm-openai:v0.29.0", "model": "org/model", "served_model_name": "m", "plan": PLAN,
            "download_dir": "/models", "nodes": 2, "launch_mode": "mp", "hf_token_secret": "hf", "probe": PROBE}
    spec.update(changes)
    return spec


def test_engine_args_come_from_the_plan():
    args = vllm_engine_args(PLAN, "m", "/models", ["--enforce-eager"])
    assert args == ["--tensor-parallel-size=8", "--pipeline-parallel-size=2", "--max-model-len=8192",
                    "--gpu-memory-utilization=0.9", "--max-num-seqs=32", "--max-num-batched-tokens=2048",
                    "--kv-cache-dtype=fp8", "--quantization=fp8", "--served-model-name=m", "--download-dir=/models",
                    "--port=8000", "--enforce-eager"]


@pytest.mark.parametrize("flag", ["--tensor-parallel-size=4", "--max-model-len", "--headless"])
def test_extra_args_cannot_override_the_plan(flag):
    with pytest.raises(EngineError, match="must not contain"):
        vllm_engine_args(PLAN, "m", "/models", [flag])


def test_missing_plan_field_is_named():
    with pytest.raises(EngineError, match="plan.max_model_len"):
        vllm_engine_args({"plan": dict(PLAN["plan"], max_model_len=None)}, "m", "/models")


def test_mp_launch_uses_lws_variables_and_headless_workers():
    result = vllm_containers(vllm_spec())
    leader, worker = result["leader"], result["worker"]
    assert leader["command"] == worker["command"] == ["vllm", "serve"]
    assert "--node-rank=0" in leader["args"] and "--headless" not in leader["args"]
    assert "--node-rank=$(LWS_WORKER_INDEX)" in worker["args"] and "--headless" in worker["args"]
    for container in (leader, worker):
        assert "--nnodes=$(LWS_GROUP_SIZE)" in container["args"]
        assert "--master-addr=$(LWS_LEADER_ADDRESS)" in container["args"]
        env = {item["name"]: item for item in container["env"]}
        assert env["VLLM_HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf"
    assert leader["startupProbe"]["failureThreshold"] == 500 and "startupProbe" not in worker


def test_ray_launch_waits_for_the_group_then_serves_with_ray():
    result = vllm_containers(vllm_spec(launch_mode="ray"))
    script = result["leader"]["args"][0]
    assert script.index("ray start --head") < script.index("LWS_GROUP_SIZE") < script.index("exec vllm serve")
    serve = shlex.split(script.strip().splitlines()[-1])
    assert serve[:4] == ["exec", "vllm", "serve", "org/model"]
    assert "--distributed-executor-backend=ray" in serve
    assert "--address=\"$LWS_LEADER_ADDRESS:6379\" --block" in result["worker"]["args"][0]


def test_single_node_has_no_worker_and_no_secret_when_unset():
    result = vllm_containers(vllm_spec(nodes=1, hf_token_secret=""))
    assert result["worker"] is None
    assert result["leader"]["args"][0] == "org/model"
    assert "HF_TOKEN" not in [item["name"] for item in result["leader"]["env"]]


def test_unknown_launch_mode_fails():
    with pytest.raises(EngineError, match="vllm_launch_mode"):
        vllm_containers(vllm_spec(launch_mode="slurm"))


def nim_spec(**changes):
    spec = {"image": "nvcr.io/nim/org/model:2", "plan": PLAN, "served_model_name": "m", "cache_path": "/model-store",
            "ngc_secret": "ngc", "nodes": 2, "probe": PROBE}
    spec.update(changes)
    return spec


def test_nim_multi_node_env():
    result = nim_containers(nim_spec(model_profile="vllm-bf16-tp8-pp2"))
    leader = {item["name"]: item for item in result["leader"]["env"]}
    worker = {item["name"]: item for item in result["worker"]["env"]}
    assert leader["NIM_LEADER_ROLE"]["value"] == "1" and worker["NIM_LEADER_ROLE"]["value"] == "0"
    assert leader["NIM_MODEL_PROFILE"]["value"] == "vllm-bf16-tp8-pp2"
    assert leader["NIM_NUM_COMPUTE_NODES"]["value"] == "2"
    assert "worker-index" in worker["NIM_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert shlex.split(leader["NIM_PASSTHROUGH_ARGS"]["value"]) == [
        "--gpu-memory-utilization=0.9", "--max-num-seqs=32", "--max-num-batched-tokens=2048", "--kv-cache-dtype=fp8"]
    assert result["leader"]["startupProbe"]["httpGet"]["path"] == "/v1/health/ready"
    assert result["leader"]["livenessProbe"]["httpGet"]["path"] == "/v1/health/live"


def test_nim_without_passthrough_refuses_extra_args():
    plain = nim_containers(nim_spec(nodes=1, passthrough=False))
    assert "NIM_PASSTHROUGH_ARGS" not in [item["name"] for item in plain["leader"]["env"]]
    with pytest.raises(EngineError, match="NIM_PASSTHROUGH_ARGS"):
        nim_containers(nim_spec(passthrough=False, extra_args=["--enforce-eager"]))
    with pytest.raises(EngineError, match="nim_ngc_secret"):
        nim_containers(nim_spec(ngc_secret=""))
