# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""SGLang, described once: image, server arguments from the plan, containers, probes, metrics.

Flags, routes and metric names are checked against the pinned release's own source by
tests/contracts (sglang-<version>.json). Multi-node follows SGLang's documented LWS launch:
every pod runs the same server with --nnodes, its --node-rank and the leader's --dist-init-addr;
only the leader (rank 0) serves HTTP.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils import engine_base as base
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

VERSION = "0.5.23"
IMAGE_REPOSITORY = "lmsysorg/sglang"
IMAGE_TAG = "v" + VERSION

MANAGED_FLAGS = (
    "--model-path", "--model", "--tp-size", "--tensor-parallel-size", "--pp-size", "--pipeline-parallel-size",
    "--context-length", "--mem-fraction-static", "--max-running-requests", "--chunked-prefill-size",
    "--kv-cache-dtype", "--quantization", "--dtype", "--served-model-name", "--download-dir", "--revision",
    "--host", "--port", "--nnodes", "--node-rank", "--dist-init-addr", "--nccl-init-addr", "--enable-metrics",
)

DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# The planner's KV cache precisions in SGLang's --kv-cache-dtype choices (fp8 is e4m3 on Hopper and later).
KV_CACHE_DTYPES = {"auto": "auto", "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "bf16": "bf16"}
DEFAULT_DIST_PORT = 20000


def mem_fraction_static(sizing):
    """--mem-fraction-static: the fraction a gpu_sizing plan made with engine=sglang carries (SGLang's own default
    reserve for the GPU, TP, PP and chunked prefill size, or the gpu_memory_utilization the user set); a plan made
    for vLLM has none, and its gpu_memory_utilization is used as before."""
    if sizing.get("mem_fraction_static") is not None:
        return sizing["mem_fraction_static"]
    return base.plan_value(sizing, "gpu_memory_utilization")


def plan_flags(plan):
    """The SGLang server arguments a gpu_sizing plan implies, one "--flag=value" string each."""
    sizing = plan.get("plan") or {}
    kv_dtype = str(sizing.get("kv_cache_dtype") or "auto")
    if kv_dtype not in KV_CACHE_DTYPES:
        raise base.EngineError("SGLang has no KV cache precision for plan.kv_cache_dtype=%r; allowed: %s"
                               % (kv_dtype, ", ".join(sorted(KV_CACHE_DTYPES))))
    flags = [
        "--tp-size=%d" % int(base.plan_value(sizing, "tensor_parallel_size")),
        "--pp-size=%d" % int(base.plan_value(sizing, "pipeline_parallel_size")),
        "--context-length=%d" % int(base.plan_value(sizing, "max_model_len")),
        # SGLang's static pool (weights + KV cache) takes the GPU share the plan sized.
        "--mem-fraction-static=%s" % mem_fraction_static(sizing),
        "--max-running-requests=%d" % int(base.plan_value(sizing, "max_num_seqs")),
    ]
    if sizing.get("max_num_batched_tokens"):
        flags.append("--chunked-prefill-size=%d" % int(sizing["max_num_batched_tokens"]))
    dtype = base.cast_dtype(plan, DTYPE_NAMES)
    if dtype:
        flags.append("--dtype=%s" % dtype)
    if base.quantize_online(plan):
        flags.append("--quantization=fp8")
    flags.append("--kv-cache-dtype=%s" % KV_CACHE_DTYPES[kv_dtype])
    return flags


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
    args = ["--model-path=%s" % model] + plan_flags(plan) + [
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
    title="SGLang",
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
