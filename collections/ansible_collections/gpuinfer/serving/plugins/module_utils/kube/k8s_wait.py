# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Wait for a Kubernetes object to reach a condition, telling an API server outage from "not ready yet".

Pure Python: no Ansible and no network imports. ``gpuinfer.serving.k8s_wait`` passes in a ``fetch``
callable (returns the object as a dict, None when it does not exist, raises what the client raises),
and the unit tests pass a fake one together with a fake clock and sleep.

An error meaning "the API server did not answer" (connection refused/reset, timeouts, HTTP 429/5xx)
starts or continues an outage; the next answer ends it. An outage longer than the limit fails the
wait with the server's URL and the object named; errors that retrying cannot fix (401, 403, a 404
for the resource type, TLS verification) fail at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import ssl
import time

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import rollout

CONDITIONS = ("ready", "complete", "exists", "absent")

# What the condition reads like in "while waiting for <object> <phrase>" and "<object> <timed out> after".
WAITING_PHRASE = {"ready": "to be ready", "complete": "to complete", "exists": "to exist", "absent": "to be deleted"}
TIMEOUT_PHRASE = {"ready": "not ready", "complete": "not complete", "exists": "does not exist", "absent": "still exists"}

DONE = "done"
PENDING = "pending"
FAILED = "failed"

# HTTP answers that mean "the API server (or what is in front of it) cannot serve right now".
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
OUTAGE_LIMIT_NAME = "gpuinfer_api_outage_timeout"
# During an outage the object is polled right when the limit is reached and again this much later, when the
# wait fails if there is still no answer (so a limit of 60 s fails at ~61 s, with the message saying 61 s).
OUTAGE_RECHECK = 1.0
# The first pause between two polls; each later one doubles, up to the caller's delay.
FIRST_PAUSE = 1.0
# Slack for timer jitter: the poll scheduled right at the limit must not already count as past it.
OUTAGE_SLACK = 0.5

LWS_GROUP = "leaderworkerset.x-k8s.io"


class WaitFailed(Exception):
    """The wait ended without the condition; ``result`` holds the module's return values."""

    def __init__(self, msg, reason, result=None):
        super(WaitFailed, self).__init__(msg)
        self.msg = msg
        self.reason = reason  # timeout | api_outage | api_error | job_failed | unsupported | stuck
        self.result = result or {}


class WaitSetupError(Exception):
    """A mistake in what to wait for that retrying cannot fix (raised by the caller's ``fetch``); fails at once."""


class ResourceNotServed(WaitSetupError):
    """The API group/version does not serve the kind (raised by the caller's resource lookup)."""


class Verdict(object):
    __slots__ = ("state", "summary", "reason")

    def __init__(self, state, summary, reason=None):
        self.state = state
        self.summary = summary
        self.reason = reason

    def __repr__(self):
        return "Verdict(%r, %r, %r)" % (self.state, self.summary, self.reason)


class Target(object):
    """The object waited for."""

    def __init__(self, api_version, kind, name, namespace=None):
        self.api_version = api_version
        self.kind = kind
        self.name = name
        self.namespace = namespace

    @property
    def group(self):
        return self.api_version.rpartition("/")[0]

    def describe(self):
        if self.namespace:
            return "%s %s/%s" % (self.kind, self.namespace, self.name)
        return "%s %s" % (self.kind, self.name)


# ---------------------------------------------------------------- helpers


def _int(value, default=0):
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _parts(obj):
    return obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}


def find_condition(obj, condition_type):
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def condition_true(obj, condition_type):
    condition = find_condition(obj, condition_type)
    return bool(condition) and str(condition.get("status")) == "True"


def _generation_note(metadata, status):
    generation = _int(metadata.get("generation"))
    observed = _int(status.get("observedGeneration"))
    if observed < generation:
        return False, "generation %d not observed yet (observed %d)" % (generation, observed)
    return True, None


def _join(*parts):
    return ", ".join(part for part in parts if part)


# ---------------------------------------------------------------- readiness predicates


def deployment_ready(obj):
    metadata, spec, status = _parts(obj)
    want = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    ready = _int(status.get("readyReplicas"))
    available = _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    observed, generation_note = _generation_note(metadata, status)
    done = observed and updated == want and ready == want and total == want and available >= want
    old = total - updated
    progress = find_condition(obj, "Progressing")
    stalled = None
    if progress and progress.get("reason") == "ProgressDeadlineExceeded":
        stalled = "progress deadline exceeded"
    summary = _join(
        "ready %d/%d" % (ready, want),
        "updated %d/%d" % (updated, want),
        "available %d/%d" % (available, want),
        "%d old replica(s) still running" % old if old > 0 else None,
        generation_note,
        stalled,
    )
    return Verdict(DONE if done else PENDING, summary)


def statefulset_ready(obj):
    metadata, spec, status = _parts(obj)
    want = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    updated = _int(status.get("updatedReplicas"))
    total = _int(status.get("replicas"))
    observed, generation_note = _generation_note(metadata, status)
    strategy = spec.get("updateStrategy") or {}
    on_delete = strategy.get("type") == "OnDelete"
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    updated_ok = on_delete or updated >= want - partition
    revision_ok = True
    if not on_delete and partition == 0 and status.get("updateRevision") and status.get("currentRevision"):
        revision_ok = status["updateRevision"] == status["currentRevision"]
    available_ok = "availableReplicas" not in status or _int(status.get("availableReplicas")) >= want
    done = observed and ready == want and total == want and updated_ok and revision_ok and available_ok
    summary = _join(
        "ready %d/%d" % (ready, want),
        "updated %d/%d" % (updated, want),
        "available %d/%d" % (_int(status.get("availableReplicas")), want) if "availableReplicas" in status else None,
        "rollout to revision %s in progress" % status.get("updateRevision") if not revision_ok else None,
        generation_note,
    )
    return Verdict(DONE if done else PENDING, summary)


def daemonset_ready(obj):
    metadata, spec, status = _parts(obj)
    desired = _int(status.get("desiredNumberScheduled"))
    ready = _int(status.get("numberReady"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    observed, generation_note = _generation_note(metadata, status)
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    done = observed and ready == desired and available >= desired and (on_delete or updated == desired)
    summary = _join(
        "ready %d/%d" % (ready, desired),
        "updated %d/%d" % (updated, desired),
        "available %d/%d" % (available, desired),
        generation_note,
    )
    return Verdict(DONE if done else PENDING, summary)


def leaderworkerset_ready(obj):
    """Every group Ready and updated; the Available condition is reported, the counts decide."""
    _metadata, spec, status = _parts(obj)
    want = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    updated = _int(status.get("updatedReplicas"))
    done = ready == want and updated == want
    available = find_condition(obj, "Available")
    available_note = None
    if available is not None:
        available_note = "Available=%s" % available.get("status")
        if str(available.get("status")) != "True" and available.get("reason"):
            available_note += " (%s)" % available.get("reason")
    summary = _join("groups ready %d/%d" % (ready, want), "updated %d/%d" % (updated, want), available_note)
    return Verdict(DONE if done else PENDING, summary)


def pod_ready(obj):
    status = obj.get("status") or {}
    ready = find_condition(obj, "Ready")
    done = bool(ready) and str(ready.get("status")) == "True"
    note = None
    if ready and not done:
        note = "Ready=%s" % ready.get("status")
        if ready.get("reason"):
            note += " (%s)" % ready.get("reason")
    summary = _join("phase %s" % (status.get("phase") or "unknown"), "ready" if done else note or "not ready")
    return Verdict(DONE if done else PENDING, summary)


def clusterpolicy_ready(obj):
    """NVIDIA GPU Operator ClusterPolicy: status.state == ready."""
    state = (obj.get("status") or {}).get("state") or "unknown"
    return Verdict(DONE if state == "ready" else PENDING, "state %s" % state)


def job_complete(obj):
    """DONE when enough pods succeeded; FAILED (with the condition's reason/message) when the Job failed."""
    _metadata, spec, status = _parts(obj)
    completions = _int(spec.get("completions"), 1) or 1
    succeeded = _int(status.get("succeeded"))
    summary = _join(
        "succeeded %d/%d" % (succeeded, completions),
        "active %d" % _int(status.get("active")),
        "failed %d" % _int(status.get("failed")),
    )
    if succeeded >= completions or condition_true(obj, "Complete") or condition_true(obj, "SuccessCriteriaMet"):
        return Verdict(DONE, summary)
    for condition_type in ("Failed", "FailureTarget"):
        condition = find_condition(obj, condition_type)
        if condition and str(condition.get("status")) == "True":
            reason = "%s: %s" % (condition.get("reason") or condition_type, condition.get("message") or "no message")
            return Verdict(FAILED, summary, reason)
    return Verdict(PENDING, summary)


def _deleting_note(obj):
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "being deleted since %s" % obj["metadata"]["deletionTimestamp"]
    return None


READY_PREDICATES = {
    ("apps", "Deployment"): deployment_ready,
    ("apps", "StatefulSet"): statefulset_ready,
    ("apps", "DaemonSet"): daemonset_ready,
    (LWS_GROUP, "LeaderWorkerSet"): leaderworkerset_ready,
    ("", "Pod"): pod_ready,
    ("nvidia.com", "ClusterPolicy"): clusterpolicy_ready,
}


def evaluate(obj, condition, target):
    """The Verdict for ``obj`` (None: it does not exist) against ``condition``."""
    if condition == "absent":
        if obj is None:
            return Verdict(DONE, "not found")
        return Verdict(PENDING, _deleting_note(obj) or "exists")
    if obj is None:
        return Verdict(PENDING, "not found")
    if condition == "exists":
        return Verdict(DONE, "exists")
    if condition == "complete":
        if target.kind != "Job":
            return Verdict(FAILED, "condition complete applies to Job only, not %s" % target.kind, "unsupported")
        return job_complete(obj)
    if condition == "ready":
        predicate = READY_PREDICATES.get((target.group, target.kind))
        if _deleting_note(obj):
            return Verdict(PENDING, _deleting_note(obj))
        if predicate is None:
            return Verdict(DONE, "exists")
        return predicate(obj)
    raise ValueError("unknown condition %r (expected one of %s)" % (condition, ", ".join(CONDITIONS)))


# ---------------------------------------------------------------- errors


def _http_status(exc):
    """The HTTP status of a kubernetes ApiException (duck-typed: no client import here), else None."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and not isinstance(status, bool) and hasattr(exc, "reason"):
        return status
    return None


def _body_document(exc):
    body = getattr(exc, "body", None)
    if not body:
        return {}
    try:
        document = json.loads(body if isinstance(body, str) else body.decode("utf-8"))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _chain(exc):
    """exc, then what it wraps (urllib3's MaxRetryError.reason, __cause__, __context__), each once."""
    seen = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        for attr in ("reason", "__cause__", "__context__"):
            inner = getattr(current, attr, None)
            if isinstance(inner, BaseException):
                pending.append(inner)
    return seen


_POOL_PREFIX = re.compile(r"^\w*Connection(?:Pool)?\([^)]*\):\s*")


def describe_error(exc):
    """A one-line description of a client error, innermost cause first where urllib3 wraps one."""
    status = _http_status(exc)
    if status is not None:
        if status == 0:
            return str(getattr(exc, "reason", "") or exc).replace("\n", ": ")
        message = _body_document(exc).get("message")
        return "%s %s%s" % (status, getattr(exc, "reason", "") or "", ": %s" % message if message else "")
    inner = exc
    if type(exc).__name__ == "MaxRetryError" and isinstance(getattr(exc, "reason", None), BaseException):
        inner = exc.reason  # what made the last attempt fail
    text = _POOL_PREFIX.sub("", str(inner).strip()) or type(inner).__name__
    if text.startswith("Max retries exceeded"):
        text = type(inner).__name__
    return text


def _tls_verification_failure(exc):
    for current in _chain(exc):
        if isinstance(current, getattr(ssl, "SSLCertVerificationError", ())):
            return True
        text = str(current)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return True
    return False


def _is_network_error(exc):
    if isinstance(exc, (OSError, EOFError)):  # ConnectionError, socket.timeout, TimeoutError, ssl.SSLError
        return True
    for cls in type(exc).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module.startswith("urllib3") or module == "http.client":
            return True
    return False


def classify_error(exc, target, server):
    """('not_found' | 'outage' | 'fatal', message) for an exception ``fetch`` raised."""
    status = _http_status(exc)
    detail = describe_error(exc)
    if isinstance(exc, ResourceNotServed):
        return "fatal", "the API server %s does not serve %s %s: %s" % (server, target.api_version, target.kind, exc)
    if isinstance(exc, WaitSetupError):
        return "fatal", str(exc)
    if _tls_verification_failure(exc):
        return "fatal", (
            "cannot verify the TLS certificate of the API server %s: %s (check ca_cert/validate_certs and the "
            "kubeconfig's certificate-authority-data)" % (server, detail)
        )
    if status is None:
        if _is_network_error(exc):
            return "outage", detail
        return "fatal", "unexpected error talking to the API server %s: %s: %s" % (server, type(exc).__name__, exc)
    if status == 0 or status in TRANSIENT_STATUS:
        return "outage", detail
    if status == 404:
        details = _body_document(exc).get("details") or {}
        if details.get("name") == target.name:
            return "not_found", detail
        return "fatal", (
            "the API server %s does not serve %s %s (404: %s); is its CRD installed?"
            % (server, target.api_version, target.kind, _body_document(exc).get("message") or detail)
        )
    if status == 401:
        return "fatal", (
            "the API server %s rejected the credentials (401 Unauthorized) while reading %s: check kubeconfig/context, "
            "an expired token or client certificate" % (server, target.describe())
        )
    if status == 403:
        return "fatal", (
            "forbidden by the API server %s (403) to read %s: %s; the account needs get on %s"
            % (server, target.describe(), _body_document(exc).get("message") or detail, target.kind)
        )
    return "fatal", "the API server %s answered %s while reading %s" % (server, detail, target.describe())


# ---------------------------------------------------------------- outages


def _seconds(value):
    return int(round(value))


class OutageTracker(object):
    """Counts API server outages: the first failed request starts one, the next answer ends it."""

    def __init__(self):
        self.count = 0
        self.longest = 0.0
        self.started = None
        self.last_error = None

    @property
    def active(self):
        return self.started is not None

    def failed(self, request_started, error):
        if self.started is None:
            self.started = request_started
            self.count += 1
        self.last_error = error

    def answered(self, now):
        if self.started is not None:
            self.longest = max(self.longest, now - self.started)
            self.started = None

    def duration(self, now):
        return now - self.started if self.started is not None else 0.0

    def longest_so_far(self, now):
        return max(self.longest, self.duration(now))


# ---------------------------------------------------------------- the wait


class Waiter(object):
    """Poll ``fetch`` until ``target`` meets ``condition``.

    ``fetch()`` returns the object (dict), or None when it does not exist; it may raise whatever the
    Kubernetes client raises (ApiException, urllib3 errors, OSError); a 404 for the object itself is
    classified here as "not found". ``clock`` is monotonic seconds; ``sleep`` waits.
    """

    def __init__(self, fetch, target, condition, timeout=600, delay=5, api_outage_timeout=60, server="(unknown)",
                 clock=time.monotonic, sleep=time.sleep, outage_limit_name=OUTAGE_LIMIT_NAME,
                 list_pods=None, stuck_timeout=0, backoff=False):
        if condition not in CONDITIONS:
            raise ValueError("unknown condition %r (expected one of %s)" % (condition, ", ".join(CONDITIONS)))
        self.fetch = fetch
        self.target = target
        self.condition = condition
        self.timeout = timeout
        self.delay = delay
        self.api_outage_timeout = api_outage_timeout
        self.server = server
        self.clock = clock
        self.sleep = sleep
        self.outage_limit_name = outage_limit_name
        self.outages = OutageTracker()
        self.polls = 0
        self.resource = None
        self.verdict = None
        self.started = None
        # ``list_pods()`` returns the workload's pods; their problems, lasting ``stuck_timeout`` s, end the wait early.
        self.list_pods = list_pods
        self.backoff = backoff
        self.detector = rollout.StuckDetector(stuck_timeout) if list_pods is not None else None

    def _result(self, now, ready, job_failed=False):
        result = {
            "resource": self.resource,
            "elapsed": round(now - self.started, 1),
            "polls": self.polls,
            "outages": self.outages.count,
            "longest_outage": round(self.outages.longest_so_far(now), 1),
            "ready": ready,
            "api_server": self.server,
            "waited": True,
        }
        if self.condition == "complete":
            result["job_failed"] = job_failed
        if self.detector is not None:
            result["problems"] = self.detector.current
        return result

    def _fail(self, now, msg, reason, job_failed=False):
        raise WaitFailed(msg, reason, self._result(now, False, job_failed))

    def _timeout_message(self, now):
        if self.outages.active:
            state = "the API server %s has not answered for %d s: %s" % (
                self.server, _seconds(self.outages.duration(now)), self.outages.last_error)
            if self.verdict is not None:
                state += "; last seen: %s" % self.verdict.summary
        else:
            state = self.verdict.summary if self.verdict is not None else "no answer yet"
            if self.detector is not None and self.detector.current:
                state += "; %s" % "; ".join(rollout.describe(p) for p in self.detector.current[:4])
        return "%s %s after %d s: %s" % (
            self.target.describe(), TIMEOUT_PHRASE[self.condition], _seconds(now - self.started), state)

    def _outage_message(self, now):
        return "The API server %s has not answered for %d s (limit %s=%s) while waiting for %s %s: %s" % (
            self.server,
            _seconds(self.outages.duration(now)),
            self.outage_limit_name,
            self.api_outage_timeout,
            self.target.describe(),
            WAITING_PHRASE[self.condition],
            self.outages.last_error,
        )

    def _check_stuck(self, obj, now):
        if self.detector is None or obj is None:
            return
        try:
            pods = self.list_pods()
        except Exception:  # pylint: disable=broad-except  # the object itself is polled; its pods are a diagnosis
            return
        stuck = self.detector.observe(obj, pods, now)
        if stuck:
            self._fail(now, self.detector.message(self.target.describe(), stuck, now - self.started), "stuck")

    def run(self):
        """The result dict once the condition holds; raises WaitFailed otherwise."""
        self.started = self.clock()
        deadline = self.started + self.timeout
        while True:
            request_started = self.clock()
            self.polls += 1
            answered = True
            try:
                obj = self.fetch()
            except Exception as exc:  # pylint: disable=broad-except  # classified below; unknown ones are fatal
                kind, message = classify_error(exc, self.target, self.server)
                if kind == "fatal":
                    self._fail(self.clock(), message, "api_error")
                if kind == "outage":
                    answered = False
                    self.outages.failed(request_started, message)
                obj = None
            now = self.clock()
            if answered:
                self.outages.answered(now)
                self.resource = obj
                self.verdict = evaluate(obj, self.condition, self.target)
                if self.verdict.state == DONE:
                    return self._result(now, True)
                if self.verdict.state == FAILED:
                    if self.verdict.reason == "unsupported":
                        self._fail(now, self.verdict.summary, "unsupported")
                    self._fail(
                        now,
                        "%s failed (%s): %s" % (self.target.describe(), self.verdict.summary, self.verdict.reason),
                        "job_failed",
                        job_failed=True,
                    )
                self._check_stuck(obj, now)
            elif self.outages.duration(now) > self.api_outage_timeout + OUTAGE_SLACK:
                self._fail(now, self._outage_message(now), "api_outage")
            if now >= deadline:
                self._fail(now, self._timeout_message(now), "timeout")
            # 1, 2, 4 ... seconds up to ``delay``: what finishes in seconds (a cached download, a re-run) is seen in
            # seconds, and a long wait still polls every ``delay``.
            pause = min(self.delay, deadline - now)
            if self.backoff:
                pause = min(pause, FIRST_PAUSE * 2 ** min(self.polls - 1, 16))
            if self.outages.active:
                # Poll once more right at the limit, then soon after it, so the failure comes on time.
                to_limit = self.outages.started + self.api_outage_timeout - now
                pause = min(pause, to_limit if to_limit > 0 else OUTAGE_RECHECK)
            if pause > 0:
                self.sleep(pause)


# ---------------------------------------------------------------- resource lookup


def group_version_path(api_version):
    """/api/v1 for the core group, /apis/<group>/<version> otherwise."""
    if "/" in api_version:
        return "/apis/" + api_version
    return "/api/" + api_version


def find_resource(resource_list, kind):
    """(plural, namespaced, Kind) of ``kind`` (a Kind, any case, or a plural/singular name) in an APIResourceList."""
    wanted = kind.lower()
    candidates = [r for r in (resource_list or {}).get("resources") or [] if "/" not in (r.get("name") or "")]
    for matches in (
        lambda r: r.get("kind") == kind,
        lambda r: (r.get("kind") or "").lower() == wanted,
        lambda r: wanted in ((r.get("name") or "").lower(), (r.get("singularName") or "").lower()),
    ):
        for resource in candidates:
            if matches(resource):
                return resource["name"], bool(resource.get("namespaced")), resource["kind"]
    raise ResourceNotServed(
        "no kind %s in %s (served: %s)" % (
            kind, (resource_list or {}).get("groupVersion", "?"), ", ".join(sorted(r.get("kind", "?") for r in candidates)) or "none")
    )
