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
LAUNCH_MODES = ("mp", "ray")

# Flags the role derives from the plan or from its own settings: extra args may not repeat
# them, or the pod would silently run with something other than what the plan sized.
VLLM_MANAGED_FLAGS = (
    "--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--gpu-memory-utilization",
    "--max-num-seqs", "--max-num-batched-tokens", "--kv-cache-dtype", "--quantization", "--served-model-name",
    "--download-dir", "--port", "--host", "--distributed-executor-backend", "--nnodes", "--node-rank",
    "--master-addr", "--master-port", "--headless",
)
NIM_MANAGED_FLAGS = ("--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--served-model-name")


class EngineError(ValueError):
    """Raised for engine settings that cannot produce a working container."""


def _flag_name(arg):
    return str(arg).split("=", 1)[0]


def _check_extra_args(extra_args, managed, variable):
    for arg in extra_args or []:
        if _flag_name(arg) in managed:
            raise EngineError("%s must not contain %s: the role sets it from the plan (change the plan or the role "
                              "variable instead)" % (variable, _flag_name(arg)))


def _plan_value(plan, key, required=True):
    value = plan.get(key)
    if required and (value is None or value == ""):
        raise EngineError("the plan has no plan.%s: re-run gpu_sizing or set it explicitly" % key)
    return value


def vllm_engine_args(plan, served_model_name, download_dir, extra_args=None, port=API_PORT):
    """vLLM serve flags, one "--flag=value" string each, from plan["plan"]."""
    sizing = plan.get("plan") or {}
    _check_extra_args(extra_args, VLLM_MANAGED_FLAGS, "vllm_extra_args")
    args = [
        "--tensor-parallel-size=%d" % int(_plan_value(sizing, "tensor_parallel_size")),
        "--pipeline-parallel-size=%d" % int(_plan_value(sizing, "pipeline_parallel_size")),
        "--max-model-len=%d" % int(_plan_value(sizing, "max_model_len")),
        "--gpu-memory-utilization=%s" % _plan_value(sizing, "gpu_memory_utilization"),
        "--max-num-seqs=%d" % int(_plan_value(sizing, "max_num_seqs")),
    ]
    if sizing.get("max_num_batched_tokens"):
        args.append("--max-num-batched-tokens=%d" % int(sizing["max_num_batched_tokens"]))
    args.append("--kv-cache-dtype=%s" % (sizing.get("kv_cache_dtype") or "auto"))
    if sizing.get("quantization"):
        args.append("--quantization=%s" % sizing["quantization"])
    if not served_model_name:
        raise EngineError("served_model_name is empty: set vllm_served_model_name")
    args.append("--served-model-name=%s" % served_model_name)
    args.append("--download-dir=%s" % download_dir)
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

    spec: image, model, served_model_name, plan, download_dir, extra_args, env (extra),
    nodes, launch_mode (mp|ray), hf_token_secret, hf_token_secret_key, probe (probes.startup_probe_budget
    result), master_port, ray_port, ray_join_timeout_seconds.
    """
    nodes = int(spec.get("nodes") or 1)
    mode = spec.get("launch_mode", "mp")
    if mode not in LAUNCH_MODES:
        raise EngineError("vllm_launch_mode must be one of %s, got %r" % (", ".join(LAUNCH_MODES), mode))
    port = int(spec.get("port") or API_PORT)
    model = spec.get("model")
    if not model:
        raise EngineError("vllm_model is empty: set it to a Hugging Face id or a path under the cache")
    engine_args = vllm_engine_args(spec["plan"], spec.get("served_model_name"), spec["download_dir"],
                                   spec.get("extra_args"), port)
    env = [
        {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HF_HOME", "value": "%s/huggingface" % spec["download_dir"].rstrip("/")},
    ]
    if spec.get("hf_token_secret"):
        env.append(_secret_env("HF_TOKEN", spec["hf_token_secret"], spec.get("hf_token_secret_key") or "HF_TOKEN"))
    env.extend(spec.get("env") or [])
    base = {"image": spec["image"], "imagePullPolicy": spec.get("image_pull_policy", "IfNotPresent"), "env": env}

    leader = dict({"name": "vllm"}, **base)
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    _probes(leader, "/health", "/health", "/health", "http", spec["probe"])
    worker = None

    if nodes == 1:
        leader["command"] = ["vllm", "serve"]
        leader["args"] = [model] + engine_args
    elif mode == "mp":
        # Kubernetes expands $(VAR) from the env the LWS webhook injects, so no shell is needed.
        rendezvous = ["--nnodes=$(LWS_GROUP_SIZE)", "--master-addr=$(LWS_LEADER_ADDRESS)",
                      "--master-port=%d" % int(spec.get("master_port") or 29501)]
        leader["command"] = ["vllm", "serve"]
        leader["args"] = [model] + engine_args + rendezvous + ["--node-rank=0"]
        worker = dict({"name": "vllm-worker"}, command=["vllm", "serve"], **base)
        worker["args"] = ([model] + engine_args + rendezvous + ["--node-rank=$(LWS_WORKER_INDEX)", "--headless"])
    else:
        ray_port = int(spec.get("ray_port") or 6379)
        timeout = int(spec.get("ray_join_timeout_seconds") or 900)
        serve = " ".join(shlex.quote(part) for part in
                         ["vllm", "serve", model] + engine_args + ["--distributed-executor-backend=ray"])
        # vLLM places its workers when it starts, so it must wait until every pod of the group
        # has joined the Ray cluster; starting early fails with too few GPUs.
        leader_script = (
            "set -e\n"
            "ray start --head --port=%(port)d\n"
            "deadline=$(( $(date +%%s) + %(timeout)d ))\n"
            "until [ \"$(python3 -c 'import ray; ray.init(address=\"auto\", logging_level=\"ERROR\"); "
            "print(sum(1 for n in ray.nodes() if n[\"Alive\"]))')\" -ge \"$LWS_GROUP_SIZE\" ]; do\n"
            "  if [ \"$(date +%%s)\" -ge \"$deadline\" ]; then echo \"Ray workers did not join within %(timeout)ds\" >&2; exit 1; fi\n"
            "  sleep 5\n"
            "done\n"
            "exec %(serve)s\n" % {"port": ray_port, "timeout": timeout, "serve": serve}
        )
        leader["command"] = ["/bin/bash", "-c"]
        leader["args"] = [leader_script]
        worker_script = (
            "until ray start --address=\"$LWS_LEADER_ADDRESS:%d\" --block; do\n"
            "  echo 'Ray head not reachable yet, retrying' >&2; sleep 5\n"
            "done\n" % ray_port
        )
        worker = dict({"name": "vllm-worker"}, command=["/bin/bash", "-c"], args=[worker_script], **base)
    return {"leader": leader, "worker": worker, "engine_args": engine_args}


def nim_passthrough_args(plan, extra_args=None):
    """Engine flags the plan implies that NIM has no NIM_* variable for, for NIM_PASSTHROUGH_ARGS."""
    sizing = plan.get("plan") or {}
    _check_extra_args(extra_args, NIM_MANAGED_FLAGS, "nim_extra_args")
    args = [
        "--gpu-memory-utilization=%s" % _plan_value(sizing, "gpu_memory_utilization"),
        "--max-num-seqs=%d" % int(_plan_value(sizing, "max_num_seqs")),
    ]
    if sizing.get("max_num_batched_tokens"):
        args.append("--max-num-batched-tokens=%d" % int(sizing["max_num_batched_tokens"]))
    if sizing.get("kv_cache_dtype") and sizing["kv_cache_dtype"] != "auto":
        args.append("--kv-cache-dtype=%s" % sizing["kv_cache_dtype"])
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
        {"name": "NIM_TENSOR_PARALLEL_SIZE", "value": str(int(_plan_value(sizing, "tensor_parallel_size")))},
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
    if nodes > 1:
        env.extend([
            {"name": "NIM_MULTI_NODE", "value": "1"},
            # NVIDIA documents that the JSON log formatter breaks Ray worker start-up.
            {"name": "NIM_JSONL_LOGGING", "value": "0"},
            {"name": "NIM_NUM_COMPUTE_NODES", "value": str(nodes)},
            # The label is set by the LWS controller on every pod; a fieldRef needs no shell.
            {"name": "NIM_NODE_RANK",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"}}},
        ])
    env.extend(spec.get("env") or [])
    base = {"image": spec["image"], "imagePullPolicy": spec.get("image_pull_policy", "IfNotPresent")}
    leader = dict({"name": "nim"}, **base)
    leader["env"] = (env + ([{"name": "NIM_LEADER_ROLE", "value": "1"}] if nodes > 1 else []))
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    _probes(leader, "/v1/health/ready", "/v1/health/ready", "/v1/health/live", "http", spec["probe"])
    worker = None
    if nodes > 1:
        worker = dict({"name": "nim-worker"}, env=env + [{"name": "NIM_LEADER_ROLE", "value": "0"}], **base)
    return {"leader": leader, "worker": worker, "engine_args": passthrough}
