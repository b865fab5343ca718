# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Day 2: why a rollout makes no progress, and the history a rollback re-applies.

Pure Python: no Ansible and no network imports. ``k8s_wait`` hands the pods of the workload it waits
for to ``StuckDetector.observe`` on every poll; the deploy records every revision that became Ready
with ``record_revision`` and ``playbooks/rollback.yml`` picks the one to return to with
``rollback_target``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

# Container waiting reasons that do not clear by themselves: the kubelet keeps backing off.
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CreatePodSandboxError")
CRASH_REASONS = ("CrashLoopBackOff",)

ADVICE = {
    "image": "the image cannot be pulled: check the engine's image repository and tag (<engine>_image_repository, "
             "<engine>_image_tag) and the pull Secret (model_cache_pull_existing_secret)",
    "config": "the container cannot be created: a Secret, ConfigMap or volume it refers to is missing or wrong "
              "(kubectl describe pod shows which)",
    "crash": "the engine exits at start-up: read its log with kubectl logs --previous; a wrong engine argument, too "
             "little GPU memory or a model the image does not support are the usual causes",
    "unschedulable": "no node can take the pod: free GPUs held by other pods, add or uncordon nodes, or tolerate the "
                     "nodes' taints (inference_common_extra_tolerations)",
    "failed": "the pod failed (evicted or rejected by the node): kubectl describe pod shows why",
    "deadline": "the controller gave up on the rollout (progressDeadlineSeconds)",
}

ROLLBACK_HINT = "Return to the last revision that was Ready: ansible-playbook playbooks/rollback.yml (same inventory and -e)."

# Kinds a revision record keeps (what the deploy applies for the engine and its Service); Secrets never.
RECORDED_KINDS = (
    "Deployment", "LeaderWorkerSet", "PodDisruptionBudget", "Service", "HorizontalPodAutoscaler", "ScaledObject",
    "ServiceMonitor", "PodMonitor", "PrometheusRule", "HTTPRoute",
)
WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")
HISTORY_KEY = "revisions.json"
# A ConfigMap holds at most 1 MiB; a revision of the engine and its Service is some tens of KiB.
HISTORY_LIMIT_BYTES = 900 * 1024


class RolloutError(Exception):
    pass


def _container_problems(pod_name, statuses, init):
    problems = []
    for status in statuses or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        kind = None
        if reason in IMAGE_REASONS:
            kind = "image"
        elif reason in CONFIG_REASONS:
            kind = "config"
        elif reason in CRASH_REASONS:
            kind = "crash"
        if kind is None:
            continue
        message = waiting.get("message") or ""
        last = ((status.get("lastState") or {}).get("terminated")) or {}
        if kind == "crash" and last:
            message = "%s; last exit code %s (%s)%s after %s restart(s)" % (
                message or "back-off restarting", last.get("exitCode"), last.get("reason") or "Error",
                ": %s" % last["message"].strip()[-300:] if last.get("message") else "", status.get("restartCount", 0))
        problems.append({
            "pod": pod_name,
            "container": ("init:" if init else "") + (status.get("name") or "?"),
            "kind": kind,
            "reason": reason,
            "message": message,
        })
    return problems


def pod_problems(pod):
    """What keeps one pod from ever becoming Ready on its own: a list of {pod, container, kind, reason, message}."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    name = metadata.get("name") or "?"
    if metadata.get("deletionTimestamp"):
        return []
    problems = []
    if status.get("phase") == "Failed":
        problems.append({"pod": name, "container": None, "kind": "failed", "reason": status.get("reason") or "Failed",
                         "message": status.get("message") or ""})
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and str(condition.get("status")) == "False" \
                and condition.get("reason") == "Unschedulable":
            problems.append({"pod": name, "container": None, "kind": "unschedulable", "reason": "Unschedulable",
                             "message": condition.get("message") or ""})
    problems.extend(_container_problems(name, status.get("initContainerStatuses"), True))
    problems.extend(_container_problems(name, status.get("containerStatuses"), False))
    return problems


def workload_problem(workload):
    """A problem the controller itself reports (a Deployment past its progress deadline), else None."""
    for condition in (workload or {}).get("status", {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return {"pod": None, "container": None, "kind": "deadline", "reason": "ProgressDeadlineExceeded",
                    "message": condition.get("message") or ""}
    return None


def _key(problem):
    return (problem["pod"], problem["container"], problem["kind"])


def describe(problem):
    where = problem["pod"] and "pod %s%s" % (problem["pod"], ", container %s" % problem["container"] if problem["container"] else "")
    text = "%s: %s" % (where, problem["reason"]) if where else problem["reason"]
    if problem.get("message"):
        text += " (%s)" % problem["message"].strip()
    return text


class StuckDetector(object):
    """Remembers since when each problem has been seen; a problem seen for ``stuck_timeout`` seconds is a stuck rollout.

    A controller's own verdict (ProgressDeadlineExceeded) counts at once: it has waited already.
    """

    def __init__(self, stuck_timeout):
        self.stuck_timeout = stuck_timeout
        self.first_seen = {}
        self.current = []

    def observe(self, workload, pods, now):
        """The problems that have lasted long enough (empty: keep waiting)."""
        problems = []
        for pod in pods or []:
            problems.extend(pod_problems(pod))
        seen = set()
        for problem in problems:
            key = _key(problem)
            seen.add(key)
            self.first_seen.setdefault(key, now)
            problem["seconds"] = round(now - self.first_seen[key], 1)
        for key in list(self.first_seen):
            if key not in seen:
                del self.first_seen[key]  # cleared: a back-off that recovered starts again from zero
        controller = workload_problem(workload)
        self.current = ([controller] if controller else []) + problems
        if controller:
            return [controller] + problems
        if self.stuck_timeout <= 0:
            return []
        return [p for p in problems if p["seconds"] >= self.stuck_timeout]

    def message(self, target, stuck, elapsed):
        kinds = []
        for problem in stuck:
            if problem["kind"] not in kinds:
                kinds.append(problem["kind"])
        lines = ["%s is stuck after %d s: %s." % (target, int(round(elapsed)), "; ".join(describe(p) for p in stuck[:4]))]
        if len(stuck) > 4:
            lines.append("(%d more problems like these)" % (len(stuck) - 4))
        lines.append("What to do: %s." % "; ".join(ADVICE[kind] for kind in kinds))
        lines.append(ROLLBACK_HINT)
        return " ".join(lines)


# ---------------------------------------------------------------- revision history
#
# Every deploy records what it applied for the engine and its Service in a ConfigMap of the instance,
# and stamps the workload with the digest of its own objects (REVISION_ANNOTATION). A rollback reads
# the digest of what runs now and re-applies the revision recorded before it, as `kubectl rollout undo`
# does for a Deployment, for a LeaderWorkerSet too, and across a change of layout or engine.

REVISION_ANNOTATION = "gpuinfer.serving/deploy-revision"
# How long a replica may take beyond its start-up budget before its rollout counts as failed: the
# Deployment's progressDeadlineSeconds, the deploy's wait and a rollback's wait all use budget + this.
ROLLOUT_SLACK_SECONDS = 600
HISTORY_COMPONENT = "revisions"


def _strip(obj):
    """The object as built (what apply sends), without what the API server adds."""
    clean = json.loads(json.dumps(obj))
    metadata = clean.get("metadata") or {}
    for field in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"):
        metadata.pop(field, None)
    clean.pop("status", None)
    return clean


def recordable(objects):
    """The objects of a deploy a rollback re-applies: the engine's and its Service's, never a Secret or a dashboard."""
    return [_strip(obj) for obj in objects or [] if obj.get("kind") in RECORDED_KINDS]


def digest(objects):
    """A short, stable name for a set of objects (the workload's annotation and the history's key), stamped or not."""
    unstamped = recordable(objects)
    for obj in unstamped:
        annotations = (obj.get("metadata") or {}).get("annotations")
        if annotations and REVISION_ANNOTATION in annotations:
            del annotations[REVISION_ANNOTATION]
            if not annotations:
                del obj["metadata"]["annotations"]
    text = json.dumps(unstamped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def stamp(objects):
    """``objects`` with the workload (Deployment or LeaderWorkerSet) annotated with the digest of them all."""
    revision = digest(objects)
    stamped = json.loads(json.dumps(objects))
    for obj in stamped:
        if obj.get("kind") in WORKLOAD_KINDS:
            obj.setdefault("metadata", {}).setdefault("annotations", {})[REVISION_ANNOTATION] = revision
    return stamped, revision


def load_history(configmap_data):
    """The history kept in the ConfigMap's data (its ``revisions.json``); an empty one when there is none."""
    text = (configmap_data or {}).get(HISTORY_KEY)
    if not text:
        return {"revisions": []}
    try:
        history = json.loads(text)
    except ValueError:
        raise RolloutError("the revision history is not valid JSON (%s): delete the ConfigMap to start a new one" % HISTORY_KEY)
    if not isinstance(history, dict) or not isinstance(history.get("revisions"), list):
        raise RolloutError("the revision history has no revisions list: delete the ConfigMap to start a new one")
    return history


def summarize(objects):
    """What a person tells revisions apart by: controller, image, engine arguments, replicas."""
    for obj in objects or []:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = obj.get("spec") or {}
        if obj["kind"] == "Deployment":
            pod = (spec.get("template") or {}).get("spec") or {}
        else:
            pod = (((spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate") or {}).get("spec")
                   or ((spec.get("leaderWorkerTemplate") or {}).get("workerTemplate") or {}).get("spec") or {})
        container = (pod.get("containers") or [{}])[0]
        command = " ".join(str(part) for part in (container.get("command") or []) + (container.get("args") or []))
        name = (obj.get("metadata") or {}).get("name")
        return "%s %s, %s replica(s), %s: %s" % (obj["kind"], name, spec.get("replicas", 1), container.get("image"), command[:400])
    return "(no workload)"


def record_revision(history, objects, when, keep):
    """The history with ``objects`` as its newest revision (at most ``keep`` kept).

    Applying what is already the newest revision changes nothing (an idempotent re-run writes the same
    ConfigMap); a revision applied again moves to the end with its old number.
    """
    keep = inputs.whole_number(keep, name="keep", error=RolloutError)
    history = json.loads(json.dumps(history or {"revisions": []}))
    revisions = history.setdefault("revisions", [])
    objects = recordable(objects)
    this = digest(objects)
    if revisions and revisions[-1].get("digest") == this:
        return history
    earlier = [r for r in revisions if r.get("digest") == this]
    number = earlier[0]["revision"] if earlier else max([r.get("revision", 0) for r in revisions] + [0]) + 1
    revisions[:] = [r for r in revisions if r.get("digest") != this]
    revisions.append({"revision": number, "digest": this, "recorded": when, "summary": summarize(objects), "objects": objects})
    del revisions[:-keep]
    while len(revisions) > 1 and len(json.dumps(history)) > HISTORY_LIMIT_BYTES:
        del revisions[0]
    return history


def rollback_target(history, live_revisions, revision=None):
    """The revision to return to, and the one running now.

    ``live_revisions``: the REVISION_ANNOTATION of the workloads running now. Without ``revision``, the
    revision recorded before the live one (the newest one when the live one is not recorded).
    """
    revisions = (history or {}).get("revisions") or []
    if not revisions:
        raise RolloutError("no revision has been recorded: every deploy by site.yml records one")
    live = [r for r in revisions if r.get("digest") in (live_revisions or [])]
    current = live[-1] if live else None
    if revision not in (None, "", 0, "0"):
        for entry in revisions:
            if entry.get("revision") == int(revision):
                return entry, current
        raise RolloutError("revision %s is not kept; kept: %s" % (
            revision, ", ".join(str(r.get("revision")) for r in revisions)))
    if current is None:
        return revisions[-1], None
    index = revisions.index(current)
    if index == 0:
        raise RolloutError("revision %s runs now and is the oldest kept: there is nothing before it to return to (kept: %s)" % (
            current.get("revision"), ", ".join(str(r.get("revision")) for r in revisions)))
    return revisions[index - 1], current


def stale_objects(live, wanted):
    """Live objects of this instance that ``wanted`` no longer has, as {api_version, kind, name, namespace}."""
    keep = set((o.get("kind"), (o.get("metadata") or {}).get("name")) for o in wanted or [])
    stale = []
    for obj in live or []:
        identity = (obj.get("kind"), obj.get("name") or (obj.get("metadata") or {}).get("name"))
        if identity not in keep:
            stale.append({"api_version": obj.get("api_version") or obj.get("apiVersion"), "kind": identity[0],
                          "name": identity[1], "namespace": obj.get("namespace") or (obj.get("metadata") or {}).get("namespace")})
    return stale


# ---------------------------------------------------------------- field ownership
#
# Every object is applied server-side under one field manager (roles/manifests, playbooks/rollback.yml), so a field
# the collection stops building is removed from the live object. A workload an earlier version of the collection
# created or patched has its fields owned by the kubernetes client's Update entry, which an apply never takes away:
# those entries are handed over to the collection's Apply entry first (what kubectl's client-side to server-side
# apply upgrade does), and the apply then owns, and removes, what it no longer builds.

FIELD_MANAGER = "gpuinfer.serving"
# The managers of earlier writes by the collection: the kubernetes Python client's user agent (kubernetes.core's
# create and patch), and the one the API server names for fields that existed before an object's first apply.
LEGACY_MANAGERS = ("OpenAPI-Generator", "before-first-apply")


def _merge_fields(into, other):
    for key, value in (other or {}).items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_fields(into[key], value)
        else:
            into[key] = value
    return into


def handed_over_fields(managed_fields):
    """``managed_fields`` (an object's metadata.managedFields) with the legacy managers' Update entries of the object
    itself merged into the collection's Apply entry; None when there is nothing to hand over."""
    legacy, kept = [], []
    for entry in json.loads(json.dumps(managed_fields or [])):
        if (isinstance(entry, dict) and entry.get("operation") == "Update" and not entry.get("subresource")
                and entry.get("manager") in LEGACY_MANAGERS and entry.get("fieldsType", "FieldsV1") == "FieldsV1"):
            legacy.append(entry)
        else:
            kept.append(entry)
    if not legacy:
        return None
    applied = next((entry for entry in kept if isinstance(entry, dict) and entry.get("manager") == FIELD_MANAGER
                    and entry.get("operation") == "Apply" and not entry.get("subresource")), None)
    if applied is None:
        applied = {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": legacy[0].get("apiVersion"),
                   "time": legacy[-1].get("time"), "fieldsType": "FieldsV1", "fieldsV1": {}}
        kept.append(applied)
    for entry in legacy:
        applied["fieldsV1"] = _merge_fields(applied.get("fieldsV1") or {}, entry.get("fieldsV1"))
    return kept


def ownership_handover(live, wanted):
    """Merge patches for the workloads of ``wanted`` whose live counterpart has fields to hand over (gpu_cluster_info's
    ``handed_over_fields``): apiVersion, kind and metadata with name, namespace and the new managedFields."""
    wanted_keys = set((obj.get("kind"), (obj.get("metadata") or {}).get("name")) for obj in wanted or [])
    patches = []
    for obj in live or []:
        if obj.get("handed_over_fields") and (obj.get("kind"), obj.get("name")) in wanted_keys:
            patches.append({"apiVersion": obj.get("api_version"), "kind": obj.get("kind"),
                            "metadata": {"name": obj.get("name"), "namespace": obj.get("namespace"),
                                         "managedFields": obj["handed_over_fields"]}})
    return patches


def history_name(instance):
    return "%s-revisions" % instance


def history_configmap(instance, namespace, labels, history):
    """The ConfigMap that keeps the history (labelled like the instance's objects, so teardown removes it)."""
    metadata_labels = dict(labels or {})
    metadata_labels["app.kubernetes.io/component"] = HISTORY_COMPONENT
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": history_name(instance), "namespace": namespace, "labels": metadata_labels},
        "data": {HISTORY_KEY: json.dumps(history, sort_keys=True, separators=(",", ":"))},
    }


def record(configmap_data, objects, instance, namespace, labels, when, keep):
    """The history ConfigMap after a deploy applied ``objects`` (stamped)."""
    history = record_revision(load_history(configmap_data), objects, when, keep)
    return history_configmap(instance, namespace, labels, history)


def _pod_selector(workload):
    spec = workload.get("spec") or {}
    if workload["kind"] == "Deployment":
        return dict((spec.get("selector") or {}).get("matchLabels") or {})
    labels = ((workload.get("metadata") or {}).get("labels")) or {}
    return dict((key, labels[key]) for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance") if key in labels)


def _wait_timeout(workload):
    """The Deployment's progress deadline; for a LeaderWorkerSet its leader's start-up probe budget plus the same slack."""
    spec = workload.get("spec") or {}
    if spec.get("progressDeadlineSeconds"):
        return int(spec["progressDeadlineSeconds"])
    template = ((spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate")
                or (spec.get("leaderWorkerTemplate") or {}).get("workerTemplate") or {})
    for container in ((template.get("spec") or {}).get("containers")) or []:
        probe = container.get("startupProbe")
        if probe:
            return (int(probe.get("initialDelaySeconds", 0)) + int(probe.get("periodSeconds", 10))
                    * int(probe.get("failureThreshold", 3)) + ROLLOUT_SLACK_SECONDS)
    return 3600


def rollback_plan(configmap_data, live_workloads, revision=None):
    """What a rollback does: {target, current, apply (objects), remove (live workloads the target lacks)}."""
    history = load_history(configmap_data)
    target, current = rollback_target(history, [w.get("revision") for w in live_workloads or []], revision)
    # A replace (PUT) names the version it replaces; custom resources (LeaderWorkerSet) insist.
    versions = dict(((w.get("kind"), w.get("name")), w.get("resource_version")) for w in live_workloads or [])
    for obj in target["objects"]:
        version = versions.get((obj.get("kind"), obj["metadata"].get("name")))
        if obj.get("kind") in WORKLOAD_KINDS and version:
            obj["metadata"]["resourceVersion"] = version
    workload = ([o for o in target["objects"] if o.get("kind") in WORKLOAD_KINDS] or [None])[0]
    if workload is None:
        raise RolloutError("revision %s holds no Deployment or LeaderWorkerSet" % target.get("revision"))
    return {
        "workload": {"api_version": workload.get("apiVersion"), "kind": workload["kind"],
                     "name": workload["metadata"]["name"], "namespace": workload["metadata"].get("namespace")},
        "pod_selector": _pod_selector(workload),
        "wait_timeout": _wait_timeout(workload),
        "target": dict((k, v) for k, v in target.items() if k != "objects"),
        "current": dict((k, v) for k, v in current.items() if k != "objects") if current else None,
        "apply": target["objects"],
        "remove": stale_objects(live_workloads, target["objects"]),
        "kept": [r.get("revision") for r in history["revisions"]],
    }
