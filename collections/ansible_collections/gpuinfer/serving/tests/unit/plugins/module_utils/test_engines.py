from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shlex

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_nim, engine_vllm, registry
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines.registry import (
    EngineError, hf_cache_env, hf_download_args, image_driver_requirement)
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts, layout
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.engine_facts import vllm_plan_flags

vllm_engine_args = engine_vllm.engine_args


def _containers(engine, spec, cache_key):
    """The engine's containers for a flat test spec: its plan, its node count and its settings."""
    settings = dict(spec)
    settings["cache_mount_path"] = settings.pop(cache_key)
    sizing = spec["plan"]["plan"]
    nodes = int(spec.get("nodes") or 1)
    tp, pp = int(sizing.get("tensor_parallel_size") or nodes), int(sizing.get("pipeline_parallel_size") or 1)
    try:
        replica = layout.replica_layout(tp, pp, nodes)
    except layout.LayoutError:
        replica = dict(layout.replica_layout(nodes, 1, nodes), gpus_per_pod=None)
    return engine.containers(spec["plan"], replica, settings)


def vllm_containers(spec):
    return _containers(engine_vllm.ENGINE, spec, "download_dir")


def nim_containers(spec):
    return _containers(engine_nim.ENGINE, spec, "cache_path")


# FP8 planned for a BF16 checkpoint: vLLM quantizes online.
PLAN = {"model": {"hf_id": "org/model", "native_dtype": "bf16"}, "plan": {
    "tensor_parallel_size": 8, "pipeline_parallel_size": 2, "nodes": 2, "gpus_per_node": 8, "max_model_len": 8192,
    "gpu_memory_utilization": 0.9, "max_num_seqs": 32, "max_num_batched_tokens": 2048, "kv_cache_dtype": "fp8",
    "dtype": "fp8", "checkpoint_dtype": "bf16", "quantization": "fp8", "quantize_online": True}}
PROBE = {"period_seconds": 10, "failure_threshold": 500}


def vllm_spec(**changes):
    spec = {"image": "vllm/vllm-openai:v0.34.0", "model": "org/model", "served_model_name": "m", "plan": PLAN,
            "download_dir": "/models", "nodes": 2, "launch_mode": "mp", "hf_token_secret": "hf", "probe": PROBE}
    spec.update(changes)
    return spec


def test_engine_args_come_from_the_plan():
    args = vllm_engine_args(PLAN, "m", "/models", ["--enforce-eager"])
    assert args == ["--tensor-parallel-size=8", "--pipeline-parallel-size=2", "--max-model-len=8192",
                    "--gpu-memory-utilization=0.9", "--max-num-seqs=32", "--max-num-batched-tokens=2048",
                    "--quantization=fp8", "--kv-cache-dtype=fp8", "--served-model-name=m", "--download-dir=/models",
                    "--port=8000", "--enforce-eager"]


@pytest.mark.parametrize("sizing, expected", [
    # A pre-quantized checkpoint: vLLM reads the method from its config, so no --quantization.
    ({"dtype": "int4", "checkpoint_dtype": "int4", "quantization": "awq", "quantize_online": False}, []),
    ({"dtype": "int8", "checkpoint_dtype": "int8", "quantization": "compressed-tensors", "quantize_online": False}, []),
    ({"dtype": "fp8", "checkpoint_dtype": "fp8", "quantization": "fp8", "quantize_online": False}, []),
    ({"dtype": "fp16", "checkpoint_dtype": "bf16", "quantization": None, "quantize_online": False}, ["--dtype=float16"]),
    ({"dtype": "fp8", "checkpoint_dtype": "bf16", "quantization": "fp8", "quantize_online": True}, ["--quantization=fp8"]),
])
def test_quantization_flag_only_for_online_fp8(sizing, expected):
    flags = vllm_plan_flags({"plan": dict(PLAN["plan"], **sizing)})
    assert [f for f in flags if f.split("=")[0] in ("--quantization", "--dtype")] == expected


def test_the_flags_follow_the_plan_keys_only():
    """plan.quantize_online and plan.checkpoint_dtype decide; the model's native dtype is not consulted."""
    sizing = dict(PLAN["plan"], dtype="fp8")
    for key in ("quantize_online", "checkpoint_dtype"):
        sizing.pop(key)
    flags = vllm_plan_flags({"model": {"native_dtype": "bf16"}, "plan": sizing})
    assert not [f for f in flags if f.startswith(("--quantization", "--dtype"))]


def test_the_registry_and_the_planner_know_the_same_engines():
    assert registry.names() == sorted(engine_facts.NAMES)
    for name in engine_facts.NAMES:
        assert registry.get(name).title == engine_facts.TITLES[name]
    assert engine_vllm.VERSION == engine_facts.VLLM_VERSION


@pytest.mark.parametrize("bad", ["--enforce-eager", {"a": 1}, 3])
def test_extra_args_must_be_a_list(bad):
    with pytest.raises(EngineError, match="vllm_extra_args must be a list"):
        vllm_engine_args(PLAN, "m", "/models", bad)


def test_engine_and_download_job_share_one_cache_layout():
    container = vllm_containers(vllm_spec(nodes=1, offline=True, revision="abc123"))["leader"]
    env = dict((item["name"], item.get("value")) for item in container["env"])
    download = hf_download_args("org/model", "abc123", "/models/")
    assert download[download.index("--cache-dir") + 1] == env["HF_HUB_CACHE"] == "/models"
    assert "--download-dir=/models" in container["args"] and "--revision=abc123" in container["args"]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert dict((e["name"], e["value"]) for e in hf_cache_env("/models")) == dict(
        (k, v) for k, v in env.items() if k.startswith("HF_") and k not in ("HF_HUB_OFFLINE", "HF_TOKEN"))
    online = vllm_containers(vllm_spec(nodes=1))["leader"]
    assert "HF_HUB_OFFLINE" not in [item["name"] for item in online["env"]]


def test_download_needs_a_repository_id():
    with pytest.raises(EngineError, match="hub_id"):
        hf_download_args(None, "main", "/models")


def test_driver_requirement_of_the_pinned_vllm_image():
    assert image_driver_requirement("vllm/vllm-openai:v0.34.0") == {
        "image": "vllm/vllm-openai:v0.34.0", "cuda": "13.0", "min_driver_major": 580}
    assert image_driver_requirement("example.com/custom:1") is None


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


def test_no_ray_anywhere_in_a_multi_node_launch():
    result = vllm_containers(vllm_spec(launch_mode="ray"))
    for container in (result["leader"], result["worker"]):
        assert container["command"] == ["vllm", "serve"]
        assert not [arg for arg in container["args"] if "ray" in arg]


def test_single_node_has_no_worker_and_no_secret_when_unset():
    result = vllm_containers(vllm_spec(nodes=1, hf_token_secret=""))
    assert result["worker"] is None
    assert result["leader"]["args"][0] == "org/model"
    assert "HF_TOKEN" not in [item["name"] for item in result["leader"]["env"]]


def nim_spec(**changes):
    spec = {"image": "nvcr.io/nim/org/model:2", "plan": PLAN, "served_model_name": "m", "cache_path": "/model-store",
            "ngc_secret": "ngc", "nodes": 2, "probe": PROBE}
    spec.update(changes)
    return spec


def test_nim_multi_node_forms_a_ray_group():
    result = nim_containers(nim_spec(model_profile="vllm-bf16-tp8-pp2"))
    leader, worker = result["leader"], result["worker"]
    # As NVIDIA's NIM Operator renders them: args for the image's entrypoint, Ray port on both pods.
    assert "command" not in leader and "command" not in worker
    assert leader["args"] == ["nim-serve-ray", "--head", "--port", "6379"]
    assert worker["args"] == ["nim-serve-ray", "--head-address", "$(LWS_LEADER_ADDRESS):6379"]
    ray = {"name": "ray", "containerPort": 6379, "protocol": "TCP"}
    assert leader["ports"][1:] == worker["ports"] == [ray]
    env = {item["name"]: item for item in leader["env"]}
    assert env == {item["name"]: item for item in worker["env"]}
    assert env["NIM_MODEL_PROFILE"]["value"] == "vllm-bf16-tp8-pp2"
    # NIM 2.x documents no NIM_TENSOR_PARALLEL_SIZE: the size goes through the documented pass-through.
    assert "NIM_TENSOR_PARALLEL_SIZE" not in env and env["NIM_PIPELINE_PARALLEL_SIZE"]["value"] == "2"
    # Variables the NIM 2.x env-var reference does not list are gone.
    assert not set(env) & {"NIM_MULTI_NODE", "NIM_LEADER_ROLE", "NIM_NODE_RANK"}
    assert env["NIM_NUM_COMPUTE_NODES"]["value"] == "2" and env["NIM_JSONL_LOGGING"]["value"] == "0"
    assert shlex.split(env["NIM_PASSTHROUGH_ARGS"]["value"]) == [
        "--tensor-parallel-size=8", "--gpu-memory-utilization=0.9", "--max-num-seqs=32", "--max-num-batched-tokens=2048",
        "--kv-cache-dtype=fp8"]
    assert leader["startupProbe"]["httpGet"]["path"] == "/v1/health/ready"
    assert leader["livenessProbe"]["httpGet"]["path"] == "/v1/health/live"
    assert "startupProbe" not in worker


def test_nim_single_node_keeps_the_image_entrypoint():
    leader = nim_containers(nim_spec(nodes=1))["leader"]
    assert "command" not in leader and "args" not in leader


def test_nim_without_passthrough_refuses_extra_args():
    plain = nim_containers(nim_spec(nodes=1, passthrough=False))
    names = [item["name"] for item in plain["leader"]["env"]]
    assert "NIM_PASSTHROUGH_ARGS" not in names and "NIM_TENSOR_PARALLEL_SIZE" in names
    with pytest.raises(EngineError, match="NIM_PASSTHROUGH_ARGS"):
        nim_containers(nim_spec(passthrough=False, extra_args=["--enforce-eager"]))
    with pytest.raises(EngineError, match="nim_ngc_secret"):
        nim_containers(nim_spec(ngc_secret=""))


def test_sglang_renders_the_plans_mem_fraction_static_and_falls_back_to_gpu_memory_utilization():
    vllm_plan = {"model": PLAN["model"], "plan": dict(PLAN["plan"], kv_cache_dtype="auto")}
    assert "--mem-fraction-static=0.9" in engine_facts.sglang_plan_flags(vllm_plan)
    sglang_plan = {"model": PLAN["model"], "plan": dict(vllm_plan["plan"], engine="sglang", mem_fraction_static=0.828)}
    flags = engine_facts.sglang_plan_flags(sglang_plan)
    assert "--mem-fraction-static=0.828" in flags and "--mem-fraction-static=0.9" not in flags
