# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""The model cache decided in one call: checks, claim size and access mode, Secret names, /dev/shm, Job name.

Pure computation (no Ansible, no network), so the model_cache role makes one call instead of a dozen tasks and
the unit tests exercise every rule directly. Secret *values* never come here: only whether one was given.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import math
import re

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import shm

GIB = 1073741824
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ACCESS_MODES = ("", "ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")
SINGLE_NODE_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
# The Secrets a user may name instead of giving values, and the key each must hold.
EXISTING_SECRETS = (
    ("model_cache_hf_token_existing_secret", "hf_token_existing_secret", "HF_TOKEN"),
    ("model_cache_ngc_existing_secret", "ngc_existing_secret", "NGC_API_KEY"),
    ("model_cache_pull_existing_secret", "pull_existing_secret", ".dockerconfigjson"),
)


def _plan_problems(settings, plan):
    weights = plan.get("weights_bytes")
    tensor_parallel = (plan.get("plan") or {}).get("tensor_parallel_size")
    problems = []
    if settings["engine"] not in settings["engines"]:
        problems.append("model_cache: model_cache_engine=%s (%s)" % (settings["engine"], "|".join(settings["engines"])))
    if inputs.whole_number(weights) is None:
        problems.append("model_cache: plan weights_bytes=%s (a positive integer; set gpuinfer_plan to the gpu_sizing result)"
                        % ("missing" if weights is None else weights))
    if tensor_parallel is None:
        problems.append("model_cache: plan.tensor_parallel_size=missing (set gpuinfer_plan to the gpu_sizing result)")
    if float(settings["headroom"]) < 0:
        problems.append("model_cache: model_cache_headroom=%s (>= 0)" % settings["headroom"])
    if settings["access_mode"] not in ACCESS_MODES:
        problems.append("model_cache: model_cache_access_mode='%s' (empty, ReadWriteOnce, ReadWriteMany or ReadWriteOncePod)"
                        % settings["access_mode"])
    if not str(settings["mount_path"]).startswith("/"):
        problems.append("model_cache: model_cache_mount_path=%s (absolute path)" % settings["mount_path"])
    if not DNS_LABEL.match(str(settings["instance"])):
        problems.append("model_cache: model_cache_instance=%s (a DNS label)" % settings["instance"])
    return problems


def _credential_problems(settings):
    pairs = (
        ("hf_token_given", "hf_token_existing_secret"),
        ("ngc_api_key_given", "ngc_existing_secret"),
        ("ngc_api_key_given", "pull_existing_secret"),
    )
    if not any(settings[given] and settings[existing] for given, existing in pairs):
        return []
    named = tuple(settings[name] or "empty" for name in ("hf_token_existing_secret", "ngc_existing_secret", "pull_existing_secret"))
    return ["Give model_cache_hf_token or model_cache_hf_token_existing_secret (%s), model_cache_ngc_api_key or "
            "model_cache_ngc_existing_secret (%s) / model_cache_pull_existing_secret (%s), not both." % named]


def _size_problem(size, requested, weights):
    if requested <= 0:
        return "model_cache_size=%s is not a Kubernetes quantity such as 500Gi." % size
    if requested < weights:
        return ("model_cache_size=%s (%d bytes) is smaller than the model weights, %d bytes (%.1f GiB)."
                % (size, requested, weights, weights / float(GIB)))
    return None


def _download_problem(settings, plan, layout, ngc_secret):
    if settings["state"] != "present" or not settings["download"]:
        return None
    if layout == "huggingface" and not (settings["model"] and settings["download_image"]):
        why = "ok"
        if not settings["model"]:
            why = ("the plan was made from %s, a config.json that names no Hugging Face repository; plan again with "
                   "plan_hub_id (gpu_sizing hub_id) and plan_revision, or set model_cache_model"
                   % (plan.get("model") or {}).get("id", "a model"))
        return ("The vLLM download Job needs model_cache_model (got '%s'): %s; and model_cache_download_image (got '%s'), "
                "or set model_cache_download=false." % (settings["model"], why, settings["download_image"]))
    if layout == "nim" and not (settings["nim_image"] and ngc_secret):
        return ("The NIM download Job needs model_cache_nim_image (got '%s') and an NGC API key (model_cache_ngc_api_key "
                "or model_cache_ngc_existing_secret), or set model_cache_download=false." % settings["nim_image"])
    return None


def job_name(instance, identity):
    """The download Job's name: a Job's pod template is immutable, so a new model, revision, image or claim gets a
    new Job. ``identity`` is hashed as Ansible's to_json wrote it, so names stay as earlier releases made them."""
    digest = hashlib.sha1(json.dumps(identity).encode("utf-8")).hexdigest()[:8]
    return "%s-model-download-%s" % (instance[:40].rstrip("-"), digest)


def resolve(settings, plan):
    """Everything the model_cache role decides, from its settings (role variables) and the gpu_sizing result.

    Returns a dict: ``problems`` (messages naming the variable; the role fails on them before creating anything),
    ``notes`` (shown, not fatal), and, when there are no problems, the published names and sizes.
    """
    plan = plan or {}
    sizing = plan.get("plan") or {}
    problems = _plan_problems(settings, plan) + _credential_problems(settings)
    if problems:
        return {"problems": problems, "notes": []}

    layout = settings["layout"]
    weights = int(plan["weights_bytes"])
    notes = []
    hf_secret = settings["hf_token_secret_name"] if settings["hf_token_given"] else settings["hf_token_existing_secret"]
    ngc_secret = settings["ngc_secret_name"] if settings["ngc_api_key_given"] else settings["ngc_existing_secret"]
    pull_secret = settings["pull_secret_name"] if settings["ngc_api_key_given"] else settings["pull_existing_secret"]
    if settings["render_mode"] and (settings["hf_token_given"] or settings["ngc_api_key_given"]):
        left_out = ([hf_secret + " (key HF_TOKEN)"] if settings["hf_token_given"] else []) + (
            [ngc_secret + " (key NGC_API_KEY)", pull_secret + " (kubernetes.io/dockerconfigjson)"]
            if settings["ngc_api_key_given"] else [])
        notes.append("Render mode never writes Secrets: create %s in namespace %s out of band; the rendered manifests "
                     "refer to them by name." % (", ".join(left_out), settings["namespace"]))

    size = str(settings["size"] or "")
    if size:
        try:
            requested = inputs.parse_quantity(size)
        except inputs.InputError:
            requested = -1
        problem = _size_problem(size, requested, weights)
        if problem:
            problems.append(problem)
        claim_size = size
    else:
        claim_size = "%dGi" % math.ceil(weights * (1 + float(settings["headroom"])) / GIB)

    nodes, replicas = int(sizing.get("nodes") or 1), int(sizing.get("replicas") or 1)
    shared = nodes > 1 or replicas > 1
    access_mode = settings["access_mode"] or ("ReadWriteMany" if shared else "ReadWriteOnce")
    if settings["access_mode"] in SINGLE_NODE_MODES and shared:
        notes.append("model_cache_access_mode=%s but the plan runs %d node(s) x %d replica(s): pods on different nodes "
                     "cannot all mount this claim." % (settings["access_mode"], nodes, replicas))
    claim = settings["existing_claim"] or settings["claim_name"]

    if settings["shm_size_override"]:
        shm_size = settings["shm_size_override"]
    else:
        node_memory = int(settings["node_memory_bytes"] or 0)
        shm_size = shm.shm_size_for_plan(plan, node_memory_bytes=node_memory if node_memory > 0 else None,
                                         max_node_fraction=float(settings["shm_max_node_fraction"]))

    problem = _download_problem(settings, plan, layout, ngc_secret)
    if problem:
        problems.append(problem)

    identity = {
        "engine": settings["engine"],
        "model": settings["model"],
        "revision": settings["revision"],
        "image": settings["download_image"] if layout == "huggingface" else settings["nim_image"],
        "profiles": settings["nim_profiles"],
        "claim": claim,
    }
    return {
        "problems": problems,
        "notes": notes,
        # What the deploy role checks once the cluster can be asked, so it needs no settings again.
        "namespace": settings["namespace"],
        "existing_claim": settings["existing_claim"],
        "existing_secrets": existing_secrets(settings),
        "weights_bytes": weights,
        "claim_size": claim_size,
        "access_mode": access_mode,
        "claim": claim,
        "hf_secret": hf_secret,
        "ngc_secret": ngc_secret,
        "pull_secret": pull_secret,
        "shm_size": shm_size,
        "job_name": job_name(settings["instance"], identity),
        # Whether the role builds a download Job (the deploy waits for it before it creates the engine).
        "download": bool(settings["download"]),
        # The download Job completes before the engine is created, so the engine can start with the Hub off.
        "prefilled": settings["state"] == "present" and layout == "huggingface" and bool(settings["download"]),
    }


def existing_secrets(settings):
    """The Secrets the user named instead of giving values: [{variable, name, key}]."""
    return [{"variable": variable, "name": settings[name], "key": key}
            for variable, name, key in EXISTING_SECRETS if settings.get(name)]


def existing_problems(resolved, found_secrets, claim, own_claim=None):
    """Problems with what the user named, from what the cluster holds (names and keys only, never values).

    ``resolved``: what resolve() returned; ``found_secrets``: {name: {exists, keys}}; ``claim``: None when no
    existing claim was named, else {exists, capacity}; ``own_claim``: {exists, access_modes} of the claim the
    collection creates, when read.
    """
    problems = []
    namespace = resolved["namespace"]
    weights_bytes = resolved["weights_bytes"]
    for wanted in resolved["existing_secrets"]:
        found = found_secrets.get(wanted["name"]) or {"exists": False, "keys": []}
        if not found.get("exists"):
            problems.append("Secret %s (%s) does not exist in namespace %s" % (wanted["name"], wanted["variable"], namespace))
        elif wanted["key"] not in (found.get("keys") or []):
            problems.append("Secret %s (%s) has no key %s (keys: %s)"
                            % (wanted["name"], wanted["variable"], wanted["key"], ", ".join(found.get("keys") or []) or "none"))
    name = resolved.get("existing_claim")
    if name and claim is not None:
        if not claim.get("exists"):
            problems.append("PersistentVolumeClaim %s (model_cache_existing_claim) does not exist in namespace %s."
                            % (name, namespace))
        else:
            capacity = str(claim.get("capacity") or "0")
            try:
                capacity_bytes = inputs.parse_quantity(capacity)
            except inputs.InputError:
                capacity_bytes = 0
            if capacity_bytes < int(weights_bytes):
                problems.append("PersistentVolumeClaim %s holds %s (%d bytes), less than the model weights, %d bytes."
                                % (name, capacity, capacity_bytes, int(weights_bytes)))
    own = own_claim or {}
    modes = own.get("access_modes") or []
    if not name and own.get("exists") and modes and resolved.get("access_mode") not in modes:
        # A claim's access mode is immutable: the apply would fail half-way, after the workload changed.
        problems.append(
            "PersistentVolumeClaim %s exists as %s, but this deploy needs %s (pods of more than one node or replica mount "
            "it when it is ReadWriteMany), and a claim's access mode cannot change. Keep the mode (model_cache_access_mode=%s, "
            "if the pods still fit one node), or delete the claim first (playbooks/teardown.yml -e gpuinfer_teardown_cache=true; "
            "the model is downloaded again). Creating the cache with model_cache_access_mode=ReadWriteMany from the start "
            "lets a deploy scale out later." % (resolved.get("claim"), "/".join(modes), resolved.get("access_mode"), modes[0]))
    return problems


def found_from_lookups(known_secrets, lookups):
    """{name: {exists, keys}}: what gpu_cluster_info read, plus the role's own k8s_info lookups (their results)."""
    found = dict(known_secrets or {})
    for result in lookups or []:
        if result.get("skipped") or "item" not in result:
            continue
        items = result.get("resources") or []
        found[result["item"]["name"]] = {"exists": bool(items), "keys": sorted((items[0].get("data") or {}).keys()) if items else []}
    return found


def claim_from(known_claims, lookup, name):
    """{exists, capacity} of the named claim from gpu_cluster_info's read or the role's lookup; None without a name."""
    if not name:
        return None
    known = (known_claims or {}).get(name)
    if known:
        return {"exists": bool(known.get("exists")), "capacity": known.get("capacity") or "0"}
    items = (lookup or {}).get("resources") or []
    if not items:
        return {"exists": False, "capacity": "0"}
    claim = items[0]
    capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage") or (
        ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage") or "0"
    return {"exists": True, "capacity": capacity}
