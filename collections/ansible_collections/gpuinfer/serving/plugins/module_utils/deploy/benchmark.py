# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""The benchmark Job: the engine's own load generator, run in the cluster against the deployed Service.

One batch/v1 Job in the deployment's namespace, in the engine's image, runs one load per planned concurrency
(plan.performance.points: concurrency, input_len, output_len) from one shell script, each run preceded by a marker
line (bench_log.MARKER) and printing its result block to stdout, which bench_log.parse reads back from the pod log.

* vLLM: ``vllm bench serve --backend vllm`` in the vllm role's image.
* NIM: the same tool with ``--backend openai`` (NIM's OpenAI completions endpoint), in the vLLM image: NIM images
  ship no load generator.
* SGLang: ``python3 -m sglang.bench_serving --backend sglang`` in the SGLang image, on ``--dataset-name random-ids``
  (random token ids from the tokenizer; ``random`` would download ShareGPT for its text) with
  ``--random-range-ratio 1`` (exactly the planned lengths; its default 0 draws them uniformly below).

Offline like the engine: the model cache claim is mounted read-only where the engine mounts it and the Hugging
Face cache variables are the engine's own (engine_base.hf_cache_env with HF_HUB_OFFLINE=1), so the tokenizer given
as the model's Hub id resolves from the cache the download Job filled, as the engine's model does. Every flag
rendered is in the pinned release's contract (tests/contracts: vllm-0.34.0.json ``bench_serve_flags``,
sglang-0.5.23-bench-serving.json ``flags``).

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shlex

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_base as base
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import workload
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines.bench_log import MARKER

TOOLS = {
    # engine -> (tool, --backend)
    "vllm": ("vllm", "vllm"),
    "nim": ("vllm", "openai"),
    "sglang": ("sglang", "sglang"),
}
CONTAINER = "benchmark"
COMPONENT = "benchmark"


class BenchmarkError(ValueError):
    """Settings that cannot make a working benchmark Job."""


def points_of(plan, concurrency=None):
    """The loads to run: plan.performance.points (concurrency, input_len, output_len), optionally only some."""
    points = list(((plan or {}).get("performance") or {}).get("points") or [])
    if not points:
        raise BenchmarkError("the plan has no performance.points to benchmark: plan with a catalog GPU (not only "
                             "gpu_memory_gib) and a layout that fits")
    if concurrency:
        wanted = set(int(c) for c in concurrency)
        points = [p for p in points if int(p["concurrency"]) in wanted]
        if not points:
            raise BenchmarkError("benchmark_concurrency=%s matches none of the planned concurrencies" % sorted(wanted))
    return [{"concurrency": int(p["concurrency"]), "input_len": int(p["input_len"]), "output_len": int(p["output_len"])}
            for p in points]


def num_prompts(concurrency, prompts_per_client, min_prompts):
    return max(int(min_prompts), int(concurrency) * int(prompts_per_client))


def command(engine, point, settings):
    """The argv of one run (one point) of the engine's load generator."""
    if engine not in TOOLS:
        raise BenchmarkError("no benchmark for engine %r; known: %s" % (engine, ", ".join(sorted(TOOLS))))
    tool, backend = TOOLS[engine]
    for key in ("base_url", "served_model_name", "tokenizer"):
        if not settings.get(key):
            raise BenchmarkError("the benchmark needs %s" % key)
    prompts = num_prompts(point["concurrency"], settings.get("prompts_per_client", 4), settings.get("min_prompts", 8))
    common = ["--backend", backend, "--base-url", settings["base_url"], "--model", settings["served_model_name"],
              "--tokenizer", settings["tokenizer"]]
    if tool == "vllm":
        argv = ["vllm", "bench", "serve"] + common + [
            "--dataset-name", "random",
            "--random-input-len", str(point["input_len"]), "--random-output-len", str(point["output_len"]),
            "--ignore-eos",
            "--max-concurrency", str(point["concurrency"]), "--num-prompts", str(prompts),
            # The default prints only P99: the comparison reads p50 and p90.
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
            "--seed", str(int(settings.get("seed", 0))),
        ]
    else:
        argv = ["python3", "-m", "sglang.bench_serving"] + common + [
            "--dataset-name", "random-ids",
            "--random-input-len", str(point["input_len"]), "--random-output-len", str(point["output_len"]),
            "--random-range-ratio", "1",
            "--max-concurrency", str(point["concurrency"]), "--num-prompts", str(prompts),
            "--seed", str(int(settings.get("seed", 0))),
        ]
    argv.extend(str(arg) for arg in settings.get("extra_args") or [])
    return argv


# The tokenizer folder the script resolves at run time (see script()), as the shell expands it.
TOKENIZER_VAR = '"$TOKENIZER"'
# huggingface_hub (in every engine image) finds the revision's snapshot in HF_HUB_CACHE, offline, as the engine
# finds its model: the load generators take no tokenizer revision, and a pinned commit has no refs/main to follow.
_RESOLVE = ("import sys; from huggingface_hub import snapshot_download; "
            "print(snapshot_download(sys.argv[1], revision=sys.argv[2], local_files_only=True))")


def script(engine, points, settings):
    """One shell script: a marker line, then one run, per point; stops at the first failed run.

    With settings.tokenizer_revision, the tokenizer (a Hub id) is first resolved to its snapshot folder in the
    mounted cache (huggingface_hub.snapshot_download, local files only) and every run reads it from there.
    """
    lines = ["set -e"]
    if settings.get("tokenizer_revision"):
        resolve = [_RESOLVE, str(settings["tokenizer"]), str(settings["tokenizer_revision"])]
        lines.append("TOKENIZER=$(python3 -c %s)" % " ".join(shlex.quote(arg) for arg in resolve))
        settings = dict(settings, tokenizer=TOKENIZER_VAR)
    for point in points:
        marker = "%s concurrency=%d input_len=%d output_len=%d" % (MARKER, point["concurrency"], point["input_len"],
                                                                   point["output_len"])
        lines.append("echo %s" % shlex.quote(marker))
        lines.append(" ".join(arg if arg == TOKENIZER_VAR else shlex.quote(arg) for arg in command(engine, point, settings)))
    return "\n".join(lines) + "\n"


def build_job(plan, settings):
    """The benchmark Job.

    settings: engine (vllm | nim | sglang), name, namespace, instance, image, image_pull_policy, base_url,
    served_model_name, tokenizer, tokenizer_revision, cache_pvc_name, cache_mount_path, offline, concurrency (subset of the planned
    ones, optional), prompts_per_client, min_prompts, seed, extra_args, env, backoff_limit,
    active_deadline_seconds, ttl_seconds_after_finished, resources.
    """
    engine = settings.get("engine") or "vllm"
    for key in ("name", "namespace", "image"):
        if not settings.get(key):
            raise BenchmarkError("the benchmark Job needs %s" % key)
    image = str(settings["image"])
    if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        raise BenchmarkError("the benchmark image %r must name a pinned release (repository:tag, not latest)" % image)
    mount = settings.get("cache_mount_path")
    if not mount:
        raise BenchmarkError("the model cache mount path is empty: the Job mounts the cache where the engine does")
    points = points_of(plan, settings.get("concurrency"))
    env = base.hf_cache_env(mount, offline=bool(settings.get("offline", True)))
    env.extend(settings.get("env") or [])
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": settings.get("image_pull_policy") or "IfNotPresent",
        "command": ["/bin/sh", "-c", script(engine, points, settings)],
        "env": env,
        # The cache is the engine's: read it, never write it (HF_HOME's token and xet caches are not used offline).
        "volumeMounts": [{"name": workload.CACHE_VOLUME, "mountPath": str(mount), "readOnly": True}],
    }
    if settings.get("resources"):
        container["resources"] = settings["resources"]
    labels = workload.standard_labels(COMPONENT, settings.get("instance") or settings["name"])
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": settings["name"], "namespace": settings["namespace"], "labels": labels},
        "spec": {
            "backoffLimit": int(settings.get("backoff_limit", 0)),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [_cache_volume(settings.get("cache_pvc_name"))],
                },
            },
        },
    }
    if settings.get("active_deadline_seconds"):
        job["spec"]["activeDeadlineSeconds"] = int(settings["active_deadline_seconds"])
    if settings.get("ttl_seconds_after_finished") is not None:
        job["spec"]["ttlSecondsAfterFinished"] = int(settings["ttl_seconds_after_finished"])
    if settings.get("image_pull_secrets"):
        job["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": n} for n in settings["image_pull_secrets"]]
    return job


def _cache_volume(pvc_name):
    if not pvc_name:
        raise BenchmarkError("the model cache claim name is empty: the benchmark reads the tokenizer from it")
    volume = workload.cache_volume(pvc_name)
    volume["persistentVolumeClaim"]["readOnly"] = True
    return volume
