# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Engine containers for vLLM and NVIDIA NIM, derived from a gpu_sizing plan.

Each function returns {"leader": container, "worker": container or None}; the
shared pod rules are added by workload.build_workload.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shlex

API_PORT = 8000

# Flags the role derives from the plan or from its own settings: extra args may not repeat
# them, or the pod would silently run with something other than what the plan sized.
VLLM_MANAGED_FLAGS = (
    "--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--gpu-memory-utilization",
    "--max-num-seqs", "--max-num-batched-tokens", "--kv-cache-dtype", "--quantization", "--dtype",
    "--served-model-name", "--download-dir", "--revision", "--port", "--host", "--distributed-executor-backend",
    "--nnodes", "--node-rank", "--master-addr", "--master-port", "--headless",
)
NIM_MANAGED_FLAGS = ("--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--served-model-name")

# vLLM's --dtype names for the float precisions the planner plans in.
VLLM_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# Checkpoint formats that carry their own quantization_config: vLLM reads the method from it.
QUANTIZED_DTYPES = ("fp8", "int8", "int4")


# The vLLM release the roles pin (vllm_image_tag); the planner models this release's memory accounting.
VLLM_VERSION = "0.29.0"

# The CUDA each pinned engine image is built on (tests/contracts/ holds the evidence), and the oldest
# Linux driver branch each CUDA release runs on (NVIDIA CUDA Toolkit release notes, "CUDA Toolkit and
# Corresponding Driver Versions"). A driver older than that fails at the first CUDA call.
IMAGE_CUDA = {
    "vllm/vllm-openai:v0.29.0": "13.0",
}
CUDA_MIN_DRIVER_MAJOR = {"12.4": 550, "12.6": 560, "12.8": 570, "12.9": 575, "13.0": 580}


def image_driver_requirement(image):
    """{image, cuda, min_driver_major} for an image whose CUDA is known, else None."""
    cuda = IMAGE_CUDA.get(str(image or ""))
    if cuda is None:
        return None
    return {"image": str(image), "cuda": cuda, "min_driver_major": CUDA_MIN_DRIVER_MAJOR[cuda]}


class EngineError(ValueError):
    """Raised for engine settings that cannot produce a working container."""


def _flag_name(arg):
    return str(arg).split("=", 1)[0]


def _check_extra_args(extra_args, managed, variable):
    if extra_args is None:
        return
    if isinstance(extra_args, (str, bytes)) or not isinstance(extra_args, (list, tuple)):
        raise EngineError("%s must be a list of flags such as ['--enable-prefix-caching'], got %r" % (variable, extra_args))
    for arg in extra_args:
        if _flag_name(arg) in managed:
            raise EngineError("%s must not contain %s: the role sets it from the plan (change the plan or the role "
                              "variable instead)" % (variable, _flag_name(arg)))


def _plan_value(plan, key, required=True):
    value = plan.get(key)
    if required and (value is None or value == ""):
        raise EngineError("the plan has no plan.%s: re-run gpu_sizing or set it explicitly" % key)
    return value


def quantize_online(plan):
    """True when vLLM must quantize a float checkpoint itself (FP8 is the only method that can)."""
    sizing = plan.get("plan") or {}
    if "quantize_online" in sizing:
        return bool(sizing["quantize_online"])
    # Plans written before the key existed: FP8 planned for a checkpoint that is not FP8.
    checkpoint = sizing.get("checkpoint_dtype") or (plan.get("model") or {}).get("native_dtype")
    return sizing.get("dtype") == "fp8" and checkpoint != "fp8"


def vllm_plan_flags(plan):
    """The vLLM flags a gpu_sizing plan implies, one "--flag=value" string each.

    The single source of the plan's engine flags: the plan report (gpu_sizing's vllm_args)
    and the pod's arguments (vllm_engine_args) both come from here.
    """
    sizing = plan.get("plan") or {}
    flags = [
        "--tensor-parallel-size=%d" % int(_plan_value(sizing, "tensor_parallel_size")),
        "--pipeline-parallel-size=%d" % int(_plan_value(sizing, "pipeline_parallel_size")),
        "--max-model-len=%d" % int(_plan_value(sizing, "max_model_len")),
        "--gpu-memory-utilization=%s" % _plan_value(sizing, "gpu_memory_utilization"),
        "--max-num-seqs=%d" % int(_plan_value(sizing, "max_num_seqs")),
    ]
    if sizing.get("max_num_batched_tokens"):
        flags.append("--max-num-batched-tokens=%d" % int(sizing["max_num_batched_tokens"]))
    dtype = sizing.get("dtype")
    checkpoint = sizing.get("checkpoint_dtype") or (plan.get("model") or {}).get("native_dtype")
    if dtype in VLLM_DTYPE_NAMES and checkpoint and dtype != checkpoint:
        flags.append("--dtype=%s" % VLLM_DTYPE_NAMES[dtype])
    # A pre-quantized checkpoint needs no flag: vLLM reads the method from its quantization_config.
    if quantize_online(plan):
        flags.append("--quantization=fp8")
    flags.append("--kv-cache-dtype=%s" % (sizing.get("kv_cache_dtype") or "auto"))
    return flags


# --------------------------------------------------------------------------------------------
# The model cache: one layout that the download Job and the engine agree on
# --------------------------------------------------------------------------------------------

def hf_cache_env(mount_path, offline=False):
    """Hugging Face cache env for a pod that mounts the model cache at mount_path.

    `hf download` writes models--<org>--<name>/ under HF_HUB_CACHE, and vLLM reads config.json
    and the tokenizer from HF_HUB_CACHE (not from --download-dir), so both point there.
    HF_HOME keeps the token and xet caches off the container's read-only layers.
    Offline, nothing asks the Hub at start-up: the download Job has filled the cache already.
    """
    root = str(mount_path).rstrip("/") or "/"
    env = [
        {"name": "HF_HOME", "value": "%s/.hf-home" % root.rstrip("/")},
        {"name": "HF_HUB_CACHE", "value": root},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if offline:
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    return env


def hf_download_args(model, revision, mount_path):
    """`hf download` arguments that fill the layout hf_cache_env describes."""
    if not model:
        raise EngineError("the model cache needs a Hugging Face repository id (plan.model.hf_id): plan with a catalog id, "
                          "or give hub_id with a config.json path")
    return [str(model), "--revision", str(revision or "main"), "--cache-dir", str(mount_path).rstrip("/") or "/"]


def vllm_engine_args(plan, served_model_name, download_dir, extra_args=None, port=API_PORT, revision=None):
    """vLLM serve flags for the pod: the plan's flags plus the serving and cache settings."""
    _check_extra_args(extra_args, VLLM_MANAGED_FLAGS, "vllm_extra_args")
    args = vllm_plan_flags(plan)
    if not served_model_name:
        raise EngineError("served_model_name is empty: set vllm_served_model_name")
    args.append("--served-model-name=%s" % served_model_name)
    args.append("--download-dir=%s" % (str(download_dir).rstrip("/") or "/"))
    if revision:
        args.append("--revision=%s" % revision)
    args.append("--port=%d" % int(port))
    args.extend(str(arg) for arg in extra_args or [])
    return args


def _secret_env(name, secret, key):
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _http_probe(path, port, period, failures, timeout=5):
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": int(period),
            "failureThreshold": int(failures), "timeoutSeconds": int(timeout)}


def _probes(container, startup_path, ready_path, live_path, port, probe):
    container["startupProbe"] = _http_probe(startup_path, port, probe["period_seconds"], probe["failure_threshold"])
    container["readinessProbe"] = _http_probe(ready_path, port, probe.get("readiness_period_seconds", 10),
                                              probe.get("readiness_failure_threshold", 3))
    container["livenessProbe"] = _http_probe(live_path, port, probe.get("liveness_period_seconds", 30),
                                             probe.get("liveness_failure_threshold", 3))


def vllm_containers(spec):
    """Leader (and worker) containers for vLLM.

    spec: image, model, revision, served_model_name, plan, download_dir, offline, extra_args, env (extra),
    nodes, hf_token_secret, hf_token_secret_key, probe (probes.startup_probe_budget result), master_port.
    Multi-node runs vLLM's own multiprocessing launcher (--nnodes/--node-rank, headless workers):
    the vllm/vllm-openai image has no Ray, so a Ray launch could not start.
    """
    nodes = int(spec.get("nodes") or 1)
    port = int(spec.get("port") or API_PORT)
    model = spec.get("model")
    if not model:
        raise EngineError("vllm_model is empty: set it to a Hugging Face id, or plan with a catalog id or hub_id")
    engine_args = vllm_engine_args(spec["plan"], spec.get("served_model_name"), spec["download_dir"],
                                   spec.get("extra_args"), port, spec.get("revision"))
    env = [{"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    env.extend(hf_cache_env(spec["download_dir"], offline=bool(spec.get("offline"))))
    if spec.get("hf_token_secret"):
        env.append(_secret_env("HF_TOKEN", spec["hf_token_secret"], spec.get("hf_token_secret_key") or "HF_TOKEN"))
    env.extend(spec.get("env") or [])
    base = {"image": spec["image"], "imagePullPolicy": spec.get("image_pull_policy", "IfNotPresent"), "env": env}

    leader = dict({"name": "vllm"}, **base)
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    _probes(leader, "/health", "/health", "/health", "http", spec["probe"])
    leader["command"] = ["vllm", "serve"]
    worker = None
    if nodes == 1:
        leader["args"] = [model] + engine_args
    else:
        # Kubernetes expands $(VAR) from the env the LWS webhook injects, so no shell is needed.
        rendezvous = ["--nnodes=$(LWS_GROUP_SIZE)", "--master-addr=$(LWS_LEADER_ADDRESS)",
                      "--master-port=%d" % int(spec.get("master_port") or 29501)]
        leader["args"] = [model] + engine_args + rendezvous + ["--node-rank=0"]
        worker = dict({"name": "vllm-worker"}, command=["vllm", "serve"], **base)
        worker["args"] = [model] + engine_args + rendezvous + ["--node-rank=$(LWS_WORKER_INDEX)", "--headless"]
    return {"leader": leader, "worker": worker, "engine_args": engine_args}


# Plan flags NIM 2.x takes from documented NIM_* variables (NIM_PIPELINE_PARALLEL_SIZE, NIM_MAX_MODEL_LEN,
# NIM_SERVED_MODEL_NAME), or from the profile it selects (precision). The tensor parallel size has no
# NIM_* variable in the 2.x env reference (tests/contracts/nim), so it goes through NIM_PASSTHROUGH_ARGS.
NIM_NOT_PASSED_THROUGH = ("--pipeline-parallel-size", "--max-model-len", "--served-model-name", "--dtype", "--quantization")
NIM_RAY_PORT = 6379


def nim_passthrough_args(plan, extra_args=None):
    """Engine flags the plan implies that NIM has no NIM_* variable for, for NIM_PASSTHROUGH_ARGS."""
    _check_extra_args(extra_args, NIM_MANAGED_FLAGS, "nim_extra_args")
    args = [flag for flag in vllm_plan_flags(plan)
            if _flag_name(flag) not in NIM_NOT_PASSED_THROUGH and flag != "--kv-cache-dtype=auto"]
    args.extend(str(arg) for arg in extra_args or [])
    return args


def nim_containers(spec):
    """Leader (and worker) containers for NIM for LLMs.

    spec: image, plan, served_model_name, model_profile, cache_path, ngc_secret, ngc_secret_key,
    nodes, passthrough (bool), extra_args, env (extra), probe, port.
    """
    plan = spec["plan"]
    sizing = plan.get("plan") or {}
    nodes = int(spec.get("nodes") or 1)
    port = int(spec.get("port") or API_PORT)
    if not spec.get("ngc_secret"):
        raise EngineError("nim_ngc_secret is empty: name the Secret holding NGC_API_KEY")
    env = [
        _secret_env("NGC_API_KEY", spec["ngc_secret"], spec.get("ngc_secret_key") or "NGC_API_KEY"),
        {"name": "NIM_CACHE_PATH", "value": spec["cache_path"]},
        {"name": "NIM_SERVER_PORT", "value": str(port)},
        {"name": "NIM_PIPELINE_PARALLEL_SIZE", "value": str(int(_plan_value(sizing, "pipeline_parallel_size")))},
        {"name": "NIM_MAX_MODEL_LEN", "value": str(int(_plan_value(sizing, "max_model_len")))},
        {"name": "NIM_SERVED_MODEL_NAME", "value": str(spec["served_model_name"])},
    ]
    if spec.get("model_profile"):
        env.append({"name": "NIM_MODEL_PROFILE", "value": str(spec["model_profile"])})
    passthrough = []
    if spec.get("passthrough", True):
        passthrough = nim_passthrough_args(plan, spec.get("extra_args"))
        env.append({"name": "NIM_PASSTHROUGH_ARGS", "value": " ".join(shlex.quote(arg) for arg in passthrough)})
    elif spec.get("extra_args"):
        raise EngineError("nim_extra_args needs nim_passthrough_engine_args=true (NIM_PASSTHROUGH_ARGS, NIM 2.0 and later)")
    else:
        # NIM 1.x, which has no pass-through, documented NIM_TENSOR_PARALLEL_SIZE.
        env.append({"name": "NIM_TENSOR_PARALLEL_SIZE", "value": str(int(_plan_value(sizing, "tensor_parallel_size")))})
    if nodes > 1:
        env.extend([
            {"name": "NIM_NUM_COMPUTE_NODES", "value": str(nodes)},
            # NVIDIA documents that the JSON log formatter breaks Ray worker start-up.
            {"name": "NIM_JSONL_LOGGING", "value": "0"},
        ])
    env.extend(spec.get("env") or [])
    base = {"image": spec["image"], "imagePullPolicy": spec.get("image_pull_policy", "IfNotPresent"), "env": env}
    leader = dict({"name": "nim"}, **base)
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    _probes(leader, "/v1/health/ready", "/v1/health/ready", "/v1/health/live", "http", spec["probe"])
    worker = None
    if nodes > 1:
        # NIM 2.x forms a multi-node group over Ray: the leader is the Ray head and serves the API,
        # each worker joins it; the image's default nim-serve would start a lone single-node server.
        # As args, like NVIDIA's NIM Operator: the image's entrypoint runs them.
        ray_port = int(spec.get("ray_port") or NIM_RAY_PORT)
        ray = {"name": "ray", "containerPort": ray_port, "protocol": "TCP"}
        leader["args"] = ["nim-serve-ray", "--head", "--port", str(ray_port)]
        leader["ports"].append(ray)
        worker = dict({"name": "nim-worker"}, **base)
        # Kubernetes expands $(LWS_LEADER_ADDRESS) from the env the LWS webhook injects.
        worker["args"] = ["nim-serve-ray", "--head-address", "$(LWS_LEADER_ADDRESS):%d" % ray_port]
        worker["ports"] = [dict(ray)]
    return {"leader": leader, "worker": worker, "engine_args": passthrough}
