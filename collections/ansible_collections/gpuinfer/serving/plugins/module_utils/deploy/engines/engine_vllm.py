# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""vLLM, described once: image, containers, probes, metrics, cache; the flags a plan implies are the planner's
(plan/engine_facts.py vllm_plan_flags).

Flags, VLLM_* variables and metric names are checked against the pinned release's own
source by tests/contracts (vllm-<version>.json).

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_base as base
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts

# The vLLM release the role pins (vllm_image_tag); the planner models this release's memory accounting.
VERSION = engine_facts.VLLM_VERSION
IMAGE_REPOSITORY = "vllm/vllm-openai"
IMAGE_TAG = "v" + VERSION

# Flags the role derives from the plan or from its own settings: extra args may not repeat
# them, or the pod would silently run with something other than what the plan sized.
MANAGED_FLAGS = (
    "--tensor-parallel-size", "--pipeline-parallel-size", "--max-model-len", "--gpu-memory-utilization",
    "--max-num-seqs", "--max-num-batched-tokens", "--kv-cache-dtype", "--quantization", "--dtype",
    "--served-model-name", "--download-dir", "--revision", "--port", "--host", "--distributed-executor-backend",
    "--nnodes", "--node-rank", "--master-addr", "--master-port", "--headless",
)

DEFAULT_MASTER_PORT = 29501


def engine_args(plan, served_model_name, download_dir, extra_args=None, port=base.API_PORT, revision=None):
    """vLLM serve flags for the pod: the plan's flags plus the serving and cache settings."""
    base.check_extra_args(extra_args, MANAGED_FLAGS, "vllm_extra_args")
    args = engine_facts.vllm_plan_flags(plan)
    if not served_model_name:
        raise base.EngineError("served_model_name is empty: set vllm_served_model_name")
    args.append("--served-model-name=%s" % served_model_name)
    args.append("--download-dir=%s" % (str(download_dir).rstrip("/") or "/"))
    if revision:
        args.append("--revision=%s" % revision)
    args.append("--port=%d" % int(port))
    args.extend(str(arg) for arg in extra_args or [])
    return args


def containers(plan, layout, settings):
    """Leader (and worker) containers for vLLM.

    settings: image, image_pull_policy, model, revision, served_model_name, cache_mount_path, offline,
    extra_args, env (extra), hf_token_secret, hf_token_secret_key, probe, master_port, port.
    Multi-node runs vLLM's own multiprocessing launcher (--nnodes/--node-rank, headless workers):
    the vllm/vllm-openai image has no Ray, so a Ray launch could not start.
    """
    port = base.api_port(settings)
    model = settings.get("model")
    if not model:
        raise base.EngineError("vllm_model is empty: a plan made from a config.json path needs plan_hub_id, the Hugging Face "
                               "repository to deploy (and plan_revision); or set vllm_model to a Hugging Face id")
    mount = settings["cache_mount_path"]
    args = engine_args(plan, settings.get("served_model_name"), mount, settings.get("extra_args"), port,
                       settings.get("revision"))
    env = [{"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    env.extend(base.hf_cache_env(mount, offline=bool(settings.get("offline"))))
    env.extend(base.hf_token_env(settings, "vllm"))
    leader = base.base_container("vllm", settings, env)
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    base.add_probes(leader, ENGINE.probe_paths, settings["probe"])
    leader["command"] = ["vllm", "serve"]
    worker = None
    if not layout["multi_node"]:
        leader["args"] = [model] + args
    else:
        # Kubernetes expands $(VAR) from the env the LWS webhook injects, so no shell is needed.
        rendezvous = ["--nnodes=$(LWS_GROUP_SIZE)", "--master-addr=$(LWS_LEADER_ADDRESS)",
                      "--master-port=%d" % int(settings.get("master_port") or DEFAULT_MASTER_PORT)]
        leader["args"] = [model] + args + rendezvous + ["--node-rank=0"]
        worker = base.base_container("vllm-worker", settings, env)
        worker["command"] = ["vllm", "serve"]
        worker["args"] = [model] + args + rendezvous + ["--node-rank=$(LWS_WORKER_INDEX)", "--headless"]
    return {"leader": leader, "worker": worker, "engine_args": args}


ENGINE = base.Engine(
    name="vllm",
    title=engine_facts.TITLES["vllm"],
    image_repository=IMAGE_REPOSITORY,
    image_tag=IMAGE_TAG,
    containers=containers,
    probe_paths={"startup": "/health", "ready": "/health", "live": "/health"},
    metrics_path="/metrics",
    queue_metric="vllm:num_requests_waiting",
    cache_layout=base.CACHE_HUGGINGFACE,
    # The sdist's docker/Dockerfile at the tag (tests/contracts/vllm).
    image_cuda="13.0",
    # The role's variables, checked before anything is created (module_utils/inputs.py specs).
    inputs={
        "vllm_model": inputs.STR,
        "vllm_revision": inputs.STR,
        "vllm_served_model_name": inputs.STR,
        "vllm_image_repository": inputs.NON_EMPTY_STR,
        "vllm_image_tag": inputs.NON_EMPTY_STR,
        "vllm_extra_args": inputs.ARGS,
        "vllm_extra_env": inputs.ENV,
        "vllm_master_port": inputs.PORT,
        "vllm_hf_hub_offline": inputs.BOOL,
        "vllm_hf_token_secret": inputs.SUBDOMAIN_OR_EMPTY,
        "vllm_hf_token_secret_key": inputs.SECRET_KEY,
        "vllm_hf_token_required": inputs.BOOL,
        "vllm_workload_name": inputs.WORKLOAD_NAME,
        "vllm_scrape_annotations": inputs.BOOL,
        "vllm_wait": inputs.BOOL,
    },
)
