# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""What every engine description is made of, and the pieces engines share.

An engine is one ``Engine`` instance in its own module (engine_vllm, engine_nim,
engine_sglang), registered in registry.ENGINES. It knows its image, how to turn a plan
and the role's settings into the leader (and worker) containers, its probes, ports,
metrics path and queue-depth series, and how its model cache is laid out. The flags a
plan implies are the planner's (plan/engine_facts.py); the shared pod rules and the
controller are added by deploy/workload.py build_engine_objects.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts

API_PORT = 8000

# Model cache layouts an engine can read: the Hugging Face Hub cache (filled by `hf download`)
# or NIM's own cache (filled by the image's download-to-cache).
CACHE_HUGGINGFACE = "huggingface"
CACHE_NIM = "nim"

# The CUDA each pinned engine image is built on (tests/contracts/ and the engine READMEs hold the
# evidence), and the oldest Linux driver branch each CUDA release runs on (NVIDIA CUDA Toolkit
# release notes, "CUDA Toolkit and Corresponding Driver Versions").
CUDA_MIN_DRIVER_MAJOR = {"12.4": 550, "12.6": 560, "12.8": 570, "12.9": 575, "13.0": 580}


EngineError = engine_facts.EngineError


class Engine(object):
    """One inference engine, described once.

    containers(plan, layout, settings) -> {"leader": container, "worker": container or None,
    "engine_args": [...]} builds the engine's own part of the pods; everything else is data.
    """

    def __init__(self, name, title, image_repository, image_tag, containers, probe_paths, metrics_path,
                 queue_metric, cache_layout, image_cuda=None, inputs=None, pod=None):
        self.name = name
        self.title = title
        self.image_repository = image_repository
        self.image_tag = image_tag
        self._containers = containers
        # {"startup": path, "ready": path, "live": path} on the API port.
        self.probe_paths = dict(probe_paths)
        self.metrics_path = metrics_path
        self.queue_metric = queue_metric
        self.cache_layout = cache_layout
        self.image_cuda = image_cuda
        # Extra input checks for the engine role's variables (module_utils.inputs format).
        self.inputs = dict(inputs or {})
        # pod(settings) -> extra pod spec fields (pull secrets, security context).
        self._pod = pod

    @property
    def image(self):
        return "%s:%s" % (self.image_repository, self.image_tag)

    def containers(self, plan, layout, settings):
        return self._containers(plan, layout, settings)

    def pod(self, settings):
        return self._pod(settings) if self._pod else {}

    def info(self):
        """What playbooks and the Service objects need to know about the engine, as plain data."""
        return {
            "name": self.name,
            "title": self.title,
            "image": self.image,
            "image_repository": self.image_repository,
            "image_tag": self.image_tag,
            "port": API_PORT,
            "probe_paths": dict(self.probe_paths),
            "metrics_path": self.metrics_path,
            "queue_metric": self.queue_metric,
            "cache_layout": self.cache_layout,
            "image_cuda": self.image_cuda,
        }


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

def check_extra_args(extra_args, managed, variable):
    if extra_args is None:
        return
    if isinstance(extra_args, (str, bytes)) or not isinstance(extra_args, (list, tuple)):
        raise EngineError("%s must be a list of flags such as ['--enable-prefix-caching'], got %r" % (variable, extra_args))
    for arg in extra_args:
        if engine_facts.flag_name(arg) in managed:
            raise EngineError("%s must not contain %s: the role sets it from the plan (change the plan or the role "
                              "variable instead)" % (variable, engine_facts.flag_name(arg)))


def secret_env(name, secret, key):
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def hf_cache_env(mount_path, offline=False):
    """Hugging Face cache env for a pod that mounts the model cache at mount_path.

    `hf download` writes models--<org>--<name>/ under HF_HUB_CACHE, and the engines read config.json
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


def hf_token_env(settings, engine):
    """HF_TOKEN from the named Secret; a missing name fails when the model needs a token."""
    if settings.get("hf_token_required") and not settings.get("hf_token_secret"):
        raise EngineError("%s_hf_token_secret is empty: name the Secret that holds the Hugging Face token under key %s (the "
                          "model_cache role sets it from model_cache_hf_token or model_cache_hf_token_existing_secret), or "
                          "set %s_hf_token_required=false for a public model"
                          % (engine, settings.get("hf_token_secret_key") or "HF_TOKEN", engine))
    if settings.get("hf_token_secret"):
        return [secret_env("HF_TOKEN", settings["hf_token_secret"], settings.get("hf_token_secret_key") or "HF_TOKEN")]
    return []


def http_probe(path, port, period, failures, timeout=5):
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": int(period),
            "failureThreshold": int(failures), "timeoutSeconds": int(timeout)}


def add_probes(container, paths, probe, port="http"):
    """Start-up probe sized by the model's load budget, then readiness and liveness."""
    container["startupProbe"] = http_probe(paths["startup"], port, probe["period_seconds"], probe["failure_threshold"])
    container["readinessProbe"] = http_probe(paths["ready"], port, probe.get("readiness_period_seconds", 10),
                                             probe.get("readiness_failure_threshold", 3))
    container["livenessProbe"] = http_probe(paths["live"], port, probe.get("liveness_period_seconds", 30),
                                            probe.get("liveness_failure_threshold", 3))


def base_container(name, settings, env):
    if not settings.get("image"):
        raise EngineError("the %s image is empty: set the engine role's image repository and tag" % name)
    return {"name": name, "image": settings["image"], "imagePullPolicy": settings.get("image_pull_policy") or "IfNotPresent",
            "env": list(env) + list(settings.get("env") or [])}


def api_port(settings):
    return int(settings.get("port") or API_PORT)
