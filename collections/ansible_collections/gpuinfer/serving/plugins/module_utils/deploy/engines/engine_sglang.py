# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""SGLang, described once: image, containers, probes, metrics; the server arguments a plan implies are the planner's
(plan/engine_facts.py sglang_plan_flags).

Flags, routes and metric names are checked against the pinned release's own source by
tests/contracts (sglang-<version>.json). Multi-node follows SGLang's documented LWS launch:
every pod runs the same server with --nnodes, its --node-rank and the leader's --dist-init-addr;
only the leader (rank 0) serves HTTP.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_base as base
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts

VERSION = engine_facts.SGLANG_VERSION
IMAGE_REPOSITORY = "lmsysorg/sglang"
IMAGE_TAG = "v" + VERSION

MANAGED_FLAGS = (
    "--model-path", "--model", "--tp-size", "--tensor-parallel-size", "--pp-size", "--pipeline-parallel-size",
    "--context-length", "--mem-fraction-static", "--max-running-requests", "--chunked-prefill-size",
    "--kv-cache-dtype", "--quantization", "--dtype", "--served-model-name", "--download-dir", "--revision",
    "--host", "--port", "--nnodes", "--node-rank", "--dist-init-addr", "--nccl-init-addr", "--enable-metrics",
)

DEFAULT_DIST_PORT = 20000


def containers(plan, layout, settings):
    """Leader (and worker) containers for SGLang.

    settings: image, image_pull_policy, model, revision, served_model_name, cache_mount_path, offline,
    extra_args, env (extra), hf_token_secret, hf_token_secret_key, probe, dist_port, port.
    """
    base.check_extra_args(settings.get("extra_args"), MANAGED_FLAGS, "sglang_extra_args")
    port = base.api_port(settings)
    model = settings.get("model")
    if not model:
        raise base.EngineError("sglang_model is empty: a plan made from a config.json path needs plan_hub_id, the Hugging Face "
                               "repository to deploy (and plan_revision); or set sglang_model to a Hugging Face id")
    if not settings.get("served_model_name"):
        raise base.EngineError("served_model_name is empty: set sglang_served_model_name")
    mount = str(settings["cache_mount_path"]).rstrip("/") or "/"
    args = ["--model-path=%s" % model] + engine_facts.sglang_plan_flags(plan) + [
        "--served-model-name=%s" % settings["served_model_name"],
        "--download-dir=%s" % mount,
        "--host=0.0.0.0",
        "--port=%d" % port,
        "--enable-metrics",
    ]
    if settings.get("revision"):
        args.append("--revision=%s" % settings["revision"])
    args.extend(str(arg) for arg in settings.get("extra_args") or [])
    env = base.hf_cache_env(mount, offline=bool(settings.get("offline")))
    env.extend(base.hf_token_env(settings, "sglang"))
    leader = base.base_container("sglang", settings, env)
    leader["command"] = ["python3", "-m", "sglang.launch_server"]
    leader["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    base.add_probes(leader, ENGINE.probe_paths, settings["probe"])
    worker = None
    if not layout["multi_node"]:
        leader["args"] = args
    else:
        dist_port = int(settings.get("dist_port") or DEFAULT_DIST_PORT)
        # Kubernetes expands $(VAR) from the env the LWS webhook injects, so no shell is needed.
        group = ["--nnodes=$(LWS_GROUP_SIZE)", "--dist-init-addr=$(LWS_LEADER_ADDRESS):%d" % dist_port]
        leader["args"] = args + group + ["--node-rank=0"]
        leader["ports"].append({"name": "dist-init", "containerPort": dist_port, "protocol": "TCP"})
        worker = base.base_container("sglang-worker", settings, env)
        worker["command"] = list(leader["command"])
        # Workers run the scheduler only; the HTTP server (and so the probes) is the leader's.
        worker["args"] = args + group + ["--node-rank=$(LWS_WORKER_INDEX)"]
    return {"leader": leader, "worker": worker, "engine_args": args}


ENGINE = base.Engine(
    name="sglang",
    title=engine_facts.TITLES["sglang"],
    image_repository=IMAGE_REPOSITORY,
    image_tag=IMAGE_TAG,
    containers=containers,
    # /health answers 503 while the server starts and 200 once it serves; /ready once the tokenizer
    # manager takes requests (sglang/srt/entrypoints/http_server.py at the tag).
    probe_paths={"startup": "/health", "ready": "/ready", "live": "/health"},
    metrics_path="/metrics",
    queue_metric="sglang:num_queue_reqs",
    cache_layout=base.CACHE_HUGGINGFACE,
    # SGLang's install guide: images ship CUDA 13 since v0.5.20 (v0.5.19-cu129 was the last CUDA 12 tag).
    image_cuda="13.0",
    # The role's variables, checked before anything is created (module_utils/inputs.py specs).
    inputs={
        "sglang_model": inputs.STR,
        "sglang_revision": inputs.STR,
        "sglang_served_model_name": inputs.STR,
        "sglang_image_repository": inputs.NON_EMPTY_STR,
        "sglang_image_tag": inputs.NON_EMPTY_STR,
        "sglang_extra_args": inputs.ARGS,
        "sglang_extra_env": inputs.ENV,
        "sglang_dist_port": inputs.PORT,
        "sglang_hf_hub_offline": inputs.BOOL,
        "sglang_hf_token_secret": inputs.SUBDOMAIN_OR_EMPTY,
        "sglang_hf_token_secret_key": inputs.SECRET_KEY,
        "sglang_hf_token_required": inputs.BOOL,
        "sglang_workload_name": inputs.WORKLOAD_NAME,
        "sglang_scrape_annotations": inputs.BOOL,
        "sglang_wait": inputs.BOOL,
    },
)
