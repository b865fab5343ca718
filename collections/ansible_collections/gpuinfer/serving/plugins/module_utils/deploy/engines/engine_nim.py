# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""NVIDIA NIM for LLMs, described once: per-model images, NIM_* settings, containers, probes, metrics.

NIM variables and commands are checked against tests/contracts/nim (gathered from NVIDIA's
2.x documentation, one URL per entry).

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shlex

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_base as base
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts

IMAGE_TAG = "2.1.6"

MANAGED_FLAGS = ("--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--served-model-name")
RAY_PORT = 6379


def passthrough_args(plan, extra_args=None):
    """NIM_PASSTHROUGH_ARGS: the plan's flags NIM has no NIM_* variable for (engine_facts.nim_passthrough_flags), then
    the user's own."""
    base.check_extra_args(extra_args, MANAGED_FLAGS, "nim_extra_args")
    args = engine_facts.nim_passthrough_flags(plan)
    args.extend(str(arg) for arg in extra_args or [])
    return args


def containers(plan, layout, settings):
    """Leader (and worker) containers for NIM for LLMs.

    settings: image, image_pull_policy, served_model_name, model_profile, cache_mount_path, ngc_secret,
    ngc_secret_key, passthrough (bool), extra_args, env (extra), probe, port, ray_port.
    """
    sizing = plan.get("plan") or {}
    port = base.api_port(settings)
    if not settings.get("ngc_secret") or ("pull_secret" in settings and not settings.get("pull_secret")):
        raise base.EngineError(
            "NIM needs two Secrets by name: nim_ngc_secret=%r (holding the NGC API key under key %s) and nim_pull_secret=%r "
            "(docker-registry Secret for nvcr.io, user $oauthtoken). Create them (the model_cache role does) and set both names."
            % (settings.get("ngc_secret") or "", settings.get("ngc_secret_key") or "NGC_API_KEY", settings.get("pull_secret") or ""))
    if not settings.get("served_model_name"):
        raise base.EngineError("nim_served_model_name is empty: set it, or plan with a catalog id or hub_id")
    if not str(settings.get("cache_mount_path") or "").startswith("/"):
        raise base.EngineError("nim_cache_path=%r must be an absolute path" % settings.get("cache_mount_path"))
    env = [
        base.secret_env("NGC_API_KEY", settings["ngc_secret"], settings.get("ngc_secret_key") or "NGC_API_KEY"),
        {"name": "NIM_CACHE_PATH", "value": settings["cache_mount_path"]},
        {"name": "NIM_SERVER_PORT", "value": str(port)},
        {"name": "NIM_PIPELINE_PARALLEL_SIZE", "value": str(int(engine_facts.plan_value(sizing, "pipeline_parallel_size")))},
        {"name": "NIM_MAX_MODEL_LEN", "value": str(int(engine_facts.plan_value(sizing, "max_model_len")))},
        {"name": "NIM_SERVED_MODEL_NAME", "value": str(settings["served_model_name"])},
    ]
    if settings.get("model_profile"):
        env.append({"name": "NIM_MODEL_PROFILE", "value": str(settings["model_profile"])})
    passthrough = []
    if settings.get("passthrough", True):
        passthrough = passthrough_args(plan, settings.get("extra_args"))
        env.append({"name": "NIM_PASSTHROUGH_ARGS", "value": " ".join(shlex.quote(arg) for arg in passthrough)})
    elif settings.get("extra_args"):
        raise base.EngineError("nim_extra_args needs nim_passthrough_engine_args=true (NIM_PASSTHROUGH_ARGS, NIM 2.0 and later)")
    else:
        # NIM 1.x, which has no pass-through, documented NIM_TENSOR_PARALLEL_SIZE.
        env.append({"name": "NIM_TENSOR_PARALLEL_SIZE", "value": str(int(engine_facts.plan_value(sizing, "tensor_parallel_size")))})
    if layout["multi_node"]:
        env.extend([
            {"name": "NIM_NUM_COMPUTE_NODES", "value": str(layout["pods_per_replica"])},
            # NVIDIA documents that the JSON log formatter breaks Ray worker start-up.
            {"name": "NIM_JSONL_LOGGING", "value": "0"},
        ])
    leader = base.base_container("nim", settings, env)
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    base.add_probes(leader, ENGINE.probe_paths, settings["probe"])
    worker = None
    if layout["multi_node"]:
        # NIM 2.x forms a multi-node group over Ray: the leader is the Ray head and serves the API,
        # each worker joins it; the image's default nim-serve would start a lone single-node server.
        # As args, like NVIDIA's NIM Operator: the image's entrypoint runs them.
        ray_port = int(settings.get("ray_port") or RAY_PORT)
        ray = {"name": "ray", "containerPort": ray_port, "protocol": "TCP"}
        leader["args"] = ["nim-serve-ray", "--head", "--port", str(ray_port)]
        leader["ports"].append(ray)
        worker = base.base_container("nim-worker", settings, env)
        # Kubernetes expands $(LWS_LEADER_ADDRESS) from the env the LWS webhook injects.
        worker["args"] = ["nim-serve-ray", "--head-address", "$(LWS_LEADER_ADDRESS):%d" % ray_port]
        worker["ports"] = [dict(ray)]
    return {"leader": leader, "worker": worker, "engine_args": passthrough}


def pod(settings):
    """NIM pulls from nvcr.io with a registry Secret and runs as a fixed UID that must own the cache."""
    extra = {}
    if settings.get("pull_secret"):
        extra["imagePullSecrets"] = [{"name": str(settings["pull_secret"])}]
    if settings.get("run_as_user") not in (None, ""):
        extra["securityContext"] = {"runAsUser": int(settings["run_as_user"]), "runAsGroup": int(settings["fs_group"]),
                                    "fsGroup": int(settings["fs_group"])}
    return extra


ENGINE = base.Engine(
    name="nim",
    title=engine_facts.TITLES["nim"],
    # Per model: the role maps the plan's Hugging Face id to nvcr.io/nim/<org>/<model> (nim_model_images).
    image_repository="",
    image_tag=IMAGE_TAG,
    containers=containers,
    probe_paths={"startup": "/v1/health/ready", "ready": "/v1/health/ready", "live": "/v1/health/live"},
    # NIM 2.1.6 API reference; NIM 2.x runs vLLM inside, whose series carry the vllm: prefix.
    metrics_path="/v1/metrics",
    queue_metric="vllm:num_requests_waiting",
    cache_layout=base.CACHE_NIM,
    pod=pod,
    # The role's variables, checked before anything is created (module_utils/inputs.py specs).
    inputs={
        "nim_model_images": inputs.STR_MAP,
        "nim_image_repository": inputs.STR,
        "nim_image_tag": inputs.NON_EMPTY_STR,
        "nim_served_model_name": inputs.STR,
        "nim_model_profile": inputs.STR,
        "nim_cache_path": inputs.PATH,
        "nim_passthrough_engine_args": inputs.BOOL,
        "nim_extra_args": inputs.ARGS,
        "nim_extra_env": inputs.ENV,
        "nim_ngc_secret": inputs.SUBDOMAIN_OR_EMPTY,
        "nim_ngc_secret_key": inputs.SECRET_KEY,
        "nim_pull_secret": inputs.SUBDOMAIN_OR_EMPTY,
        "nim_run_as_user": inputs.ID,
        "nim_fs_group": inputs.ID,
        "nim_workload_name": inputs.WORKLOAD_NAME,
        "nim_scrape_annotations": inputs.BOOL,
        "nim_wait": inputs.BOOL,
    },
)
