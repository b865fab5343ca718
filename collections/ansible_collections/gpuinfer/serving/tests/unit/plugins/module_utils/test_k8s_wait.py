# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""k8s_wait's pure logic: readiness predicates, outage bookkeeping, timeouts, with a fake clock (no sleeping)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_wait as kw

SERVER = "https://127.0.0.1:29443"
DEPLOYMENT = kw.Target("apps/v1", "Deployment", "llama-vllm", "llm-serving")
LWS = kw.Target("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "llama-405b", "llm-serving")
JOB = kw.Target("batch/v1", "Job", "download-llama", "llm-serving")
POD = kw.Target("v1", "Pod", "llama-vllm-0", "llm-serving")


class FakeApiException(Exception):
    """The surface of kubernetes.client.rest.ApiException the classification reads."""

    def __init__(self, status, reason, body=None):
        super(FakeApiException, self).__init__("(%s) Reason: %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.body = json.dumps(body) if body is not None else None


def not_found(name):
    return FakeApiException(404, "Not Found", {"kind": "Status", "reason": "NotFound", "code": 404,
                                               "message": 'deployments.apps "%s" not found' % name,
                                               "details": {"name": name, "group": "apps", "kind": "deployments"}})


def refused():
    """What urllib3 raises when nothing listens on the port (the real classes when installed)."""
    try:
        from urllib3 import HTTPSConnectionPool
        from urllib3.connection import HTTPSConnection
        from urllib3.exceptions import MaxRetryError, NewConnectionError
    except ImportError:  # pragma: no cover
        return ConnectionRefusedError(111, "Connection refused")
    # Built as urllib3 builds them (constructing a pool or connection does not connect).
    inner = NewConnectionError(HTTPSConnection("127.0.0.1", 29443), "Failed to establish a new connection: [Errno 111] Connection refused")
    return MaxRetryError(HTTPSConnectionPool("127.0.0.1", 29443), "/apis/apps/v1/namespaces/llm-serving/deployments/llama-vllm", reason=inner)


class FakeClock(object):
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def elapsed(self):
        return self.now - 1000.0


class ScriptedAPI(object):
    """``fetch``: ``answer(t)`` gives, for the elapsed fake time t, an object, None, or an exception to raise."""

    def __init__(self, clock, answer, request_seconds=0.0):
        self.clock = clock
        self.answer = answer
        self.request_seconds = request_seconds
        self.calls = []

    def __call__(self):
        t = self.clock.elapsed
        self.calls.append(t)
        self.clock.now += self.request_seconds
        value = self.answer(t)
        if isinstance(value, BaseException):
            raise value
        return value


def run_wait(answer, target=DEPLOYMENT, condition="ready", request_seconds=0.0, **kwargs):
    clock = FakeClock()
    api = ScriptedAPI(clock, answer, request_seconds)
    options = dict(timeout=600, delay=5, api_outage_timeout=60, server=SERVER)
    options.update(kwargs)
    waiter = kw.Waiter(api, target, condition, clock=clock.time, sleep=clock.sleep, **options)
    return waiter, api, clock


def deployment(replicas=1, ready=0, updated=0, available=0, total=None, generation=1, observed=1, conditions=None):
    status = {"observedGeneration": observed, "replicas": updated if total is None else total}
    for key, value in (("readyReplicas", ready), ("updatedReplicas", updated), ("availableReplicas", available)):
        if value:
            status[key] = value
    if conditions:
        status["conditions"] = conditions
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "llama-vllm", "namespace": "llm-serving", "generation": generation},
            "spec": {"replicas": replicas}, "status": status}


def lws(replicas=2, ready=0, updated=0, available=None):
    status = {"replicas": replicas}
    if ready:
        status["readyReplicas"] = ready
    if updated:
        status["updatedReplicas"] = updated
    if available is not None:
        status["conditions"] = [{"type": "Available", "status": available, "reason": "AllGroupsReady" if available == "True" else "GroupsNotReady"}]
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "llama-405b"},
            "spec": {"replicas": replicas, "leaderWorkerTemplate": {"size": 2}}, "status": status}


def job(completions=1, succeeded=0, active=0, failed=0, conditions=None):
    status = {}
    for key, value in (("succeeded", succeeded), ("active", active), ("failed", failed)):
        if value:
            status[key] = value
    if conditions:
        status["conditions"] = conditions
    spec = {"backoffLimit": 2}
    if completions is not None:
        spec["completions"] = completions
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "download-llama"}, "spec": spec, "status": status}


def pod(ready, phase="Running"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "llama-vllm-0"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                       "reason": None if ready else "ContainersNotReady"}]}}


# ---------------------------------------------------------------- predicates


class TestReadyPredicates(object):
    def test_deployment_not_ready(self):
        verdict = kw.evaluate(deployment(ready=0, updated=1), "ready", DEPLOYMENT)
        assert verdict.state == kw.PENDING
        assert verdict.summary == "ready 0/1, updated 1/1, available 0/1"

    def test_deployment_ready(self):
        verdict = kw.evaluate(deployment(ready=1, updated=1, available=1), "ready", DEPLOYMENT)
        assert verdict.state == kw.DONE

    def test_deployment_rollout_with_old_replicas_is_not_ready(self):
        # New ReplicaSet ready, old pod still running: replicas (2) != spec.replicas (1).
        verdict = kw.evaluate(deployment(ready=1, updated=1, available=1, total=2), "ready", DEPLOYMENT)
        assert verdict.state == kw.PENDING
        assert "1 old replica(s) still running" in verdict.summary

    def test_deployment_generation_not_observed(self):
        verdict = kw.evaluate(deployment(ready=1, updated=1, available=1, generation=3, observed=2), "ready", DEPLOYMENT)
        assert verdict.state == kw.PENDING
        assert "generation 3 not observed yet (observed 2)" in verdict.summary

    def test_deployment_scaled_to_zero_is_ready(self):
        obj = deployment(replicas=0)
        obj["status"] = {"observedGeneration": 1}
        assert kw.evaluate(obj, "ready", DEPLOYMENT).state == kw.DONE

    def test_deployment_progress_deadline_reported(self):
        stalled = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
        verdict = kw.evaluate(deployment(updated=1, conditions=stalled), "ready", DEPLOYMENT)
        assert verdict.state == kw.PENDING and "progress deadline exceeded" in verdict.summary

    def test_deployment_being_deleted_is_not_ready(self):
        obj = deployment(ready=1, updated=1, available=1)
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        assert kw.evaluate(obj, "ready", DEPLOYMENT).state == kw.PENDING

    def test_leaderworkerset(self):
        assert kw.evaluate(lws(ready=1, updated=2, available="False"), "ready", LWS).state == kw.PENDING
        verdict = kw.evaluate(lws(ready=2, updated=2, available="True"), "ready", LWS)
        assert verdict.state == kw.DONE
        assert verdict.summary == "groups ready 2/2, updated 2/2, Available=True"
        # The counts decide: Available=True with a group missing is not enough.
        assert kw.evaluate(lws(ready=1, updated=2, available="True"), "ready", LWS).state == kw.PENDING
        # A controller that reports no Available condition still counts as ready by the counts.
        assert kw.evaluate(lws(ready=2, updated=2), "ready", LWS).state == kw.DONE

    def test_statefulset(self):
        target = kw.Target("apps/v1", "StatefulSet", "db", "ns")
        obj = {"metadata": {"generation": 2}, "spec": {"replicas": 2},
               "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2,
                          "availableReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-2"}}
        assert kw.evaluate(obj, "ready", target).state == kw.PENDING
        obj["status"]["currentRevision"] = "db-2"
        assert kw.evaluate(obj, "ready", target).state == kw.DONE

    def test_daemonset(self):
        target = kw.Target("apps/v1", "DaemonSet", "dcgm", "gpu-operator")
        obj = {"metadata": {"generation": 1}, "spec": {},
               "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberReady": 2,
                          "updatedNumberScheduled": 3, "numberAvailable": 2}}
        assert kw.evaluate(obj, "ready", target).state == kw.PENDING
        obj["status"].update(numberReady=3, numberAvailable=3)
        assert kw.evaluate(obj, "ready", target).state == kw.DONE

    def test_pod(self):
        verdict = kw.evaluate(pod(False), "ready", POD)
        assert verdict.state == kw.PENDING
        assert verdict.summary == "phase Running, Ready=False (ContainersNotReady)"
        assert kw.evaluate(pod(True), "ready", POD).state == kw.DONE

    def test_cluster_policy(self):
        target = kw.Target("nvidia.com/v1", "ClusterPolicy", "cluster-policy")
        assert kw.evaluate({"status": {"state": "notReady"}}, "ready", target).state == kw.PENDING
        assert kw.evaluate({"status": {"state": "ready"}}, "ready", target).state == kw.DONE

    def test_other_kinds_are_ready_when_they_exist(self):
        target = kw.Target("v1", "Service", "llama", "ns")
        assert kw.evaluate({"metadata": {"name": "llama"}}, "ready", target).state == kw.DONE
        assert kw.evaluate(None, "ready", target).state == kw.PENDING

    def test_exists_and_absent(self):
        assert kw.evaluate(None, "exists", DEPLOYMENT).state == kw.PENDING
        assert kw.evaluate(deployment(), "exists", DEPLOYMENT).state == kw.DONE
        assert kw.evaluate(None, "absent", DEPLOYMENT).state == kw.DONE
        obj = deployment()
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        verdict = kw.evaluate(obj, "absent", DEPLOYMENT)
        assert verdict.state == kw.PENDING and "being deleted" in verdict.summary


class TestJobPredicate(object):
    def test_running(self):
        verdict = kw.evaluate(job(active=1), "complete", JOB)
        assert verdict.state == kw.PENDING
        assert verdict.summary == "succeeded 0/1, active 1, failed 0"

    def test_succeeded(self):
        assert kw.evaluate(job(succeeded=1), "complete", JOB).state == kw.DONE
        assert kw.evaluate(job(completions=3, succeeded=2, active=1), "complete", JOB).state == kw.PENDING
        assert kw.evaluate(job(completions=3, succeeded=3), "complete", JOB).state == kw.DONE
        # No spec.completions (parallel work queue): one success completes it.
        assert kw.evaluate(job(completions=None, succeeded=1), "complete", JOB).state == kw.DONE

    def test_failed(self):
        obj = job(failed=3, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}])
        verdict = kw.evaluate(obj, "complete", JOB)
        assert verdict.state == kw.FAILED
        assert verdict.reason == "BackoffLimitExceeded: Job has reached the specified backoff limit"

    def test_failure_target(self):
        obj = job(failed=1, active=1, conditions=[{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
                                                   "message": "Job was active longer than specified deadline"}])
        assert kw.evaluate(obj, "complete", JOB).state == kw.FAILED

    def test_false_failed_condition_is_ignored(self):
        obj = job(active=1, conditions=[{"type": "Failed", "status": "False"}])
        assert kw.evaluate(obj, "complete", JOB).state == kw.PENDING


# ---------------------------------------------------------------- the wait loop


class TestWait(object):
    def test_ready_after_a_few_polls(self):
        waiter, api, clock = run_wait(lambda t: deployment(updated=1, ready=1 if t >= 12 else 0, available=1 if t >= 12 else 0))
        result = waiter.run()
        assert result["ready"] is True
        assert result["polls"] == 4 and api.calls == [0, 5, 10, 15]
        assert result["elapsed"] == 15 and result["outages"] == 0 and result["longest_outage"] == 0
        assert result["api_server"] == SERVER
        assert result["resource"]["status"]["readyReplicas"] == 1
        assert "job_failed" not in result
        assert clock.sleeps == [5, 5, 5]

    def test_not_there_yet_then_ready(self):
        waiter, _api, _clock = run_wait(lambda t: not_found("llama-vllm") if t < 10 else deployment(1, 1, 1, 1))
        result = waiter.run()
        assert result["ready"] is True and result["polls"] == 3 and result["outages"] == 0

    def test_short_outage_recovers(self):
        def answer(t):
            if 5 <= t < 35:
                return refused()
            return deployment(updated=1, ready=1 if t >= 40 else 0, available=1 if t >= 40 else 0)

        waiter, api, _clock = run_wait(answer)
        result = waiter.run()
        assert result["ready"] is True
        assert result["outages"] == 1
        assert result["longest_outage"] == 30  # first failed request at 5, first answer at 35
        assert api.calls == [0, 5, 10, 15, 20, 25, 30, 35, 40]

    def test_outages_are_counted_separately(self):
        def answer(t):
            if t in (5, 20, 25):
                return FakeApiException(503, "Service Unavailable")
            return deployment(updated=1, ready=1 if t >= 40 else 0, available=1 if t >= 40 else 0)

        result = run_wait(answer)[0].run()
        assert result["outages"] == 2 and result["longest_outage"] == 10

    def test_long_outage_fails_naming_server_and_object(self):
        def answer(t):
            return deployment(updated=1) if t < 10 else refused()

        waiter, api, _clock = run_wait(answer)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "api_outage"
        assert failure.value.msg == (
            "The API server https://127.0.0.1:29443 has not answered for 61 s (limit gpuinfer_api_outage_timeout=60) "
            "while waiting for Deployment llm-serving/llama-vllm to be ready: "
            "Failed to establish a new connection: [Errno 111] Connection refused"
        )
        # Polled every 5 s, right at the limit (t=70), then a second later.
        assert api.calls[-3:] == [65, 70, 71]
        result = failure.value.result
        assert result["ready"] is False and result["outages"] == 1 and result["longest_outage"] == 61
        assert result["resource"]["status"]["updatedReplicas"] == 1  # last object seen
        assert result["elapsed"] == 71

    def test_outage_limit_counts_slow_requests(self):
        # A server that accepts connections and never answers: each request times out after 10 s.
        waiter, api, _clock = run_wait(lambda t: socket.timeout("timed out"), request_seconds=10, delay=5)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "api_outage"
        assert "has not answered for 70 s" in failure.value.msg and failure.value.msg.endswith(": timed out")
        assert api.calls == [0, 15, 30, 45, 60]

    def test_outage_from_the_first_request(self):
        waiter, _api, _clock = run_wait(lambda t: refused(), api_outage_timeout=3, delay=5)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert "has not answered for 4 s (limit gpuinfer_api_outage_timeout=3)" in failure.value.msg
        assert failure.value.result["polls"] == 3  # t=0, t=3 (the limit), t=4

    def test_overall_timeout(self):
        waiter, api, _clock = run_wait(lambda t: deployment(updated=1))
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "timeout"
        assert failure.value.msg == "Deployment llm-serving/llama-vllm not ready after 600 s: ready 0/1, updated 1/1, available 0/1"
        assert api.calls[-1] == 600 and failure.value.result["polls"] == 121

    def test_timeout_during_a_short_outage_mentions_it(self):
        waiter, _api, _clock = run_wait(lambda t: deployment(updated=1) if t < 20 else refused(), timeout=30)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "timeout"
        assert failure.value.msg.startswith(
            "Deployment llm-serving/llama-vllm not ready after 30 s: the API server https://127.0.0.1:29443 has not answered for 10 s")
        assert failure.value.msg.endswith("; last seen: ready 0/1, updated 1/1, available 0/1")

    def test_forbidden_fails_at_once(self):
        forbidden = FakeApiException(403, "Forbidden", {"kind": "Status", "code": 403, "reason": "Forbidden",
                                                        "message": 'deployments.apps "llama-vllm" is forbidden: User "ci" cannot get resource'})
        waiter, _api, clock = run_wait(lambda t: forbidden)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "api_error"
        assert failure.value.result["polls"] == 1 and clock.sleeps == []
        assert failure.value.msg.startswith("forbidden by the API server https://127.0.0.1:29443 (403) to read Deployment llm-serving/llama-vllm")
        assert 'User "ci" cannot get resource' in failure.value.msg

    def test_unauthorized_fails_at_once(self):
        waiter, _api, _clock = run_wait(lambda t: FakeApiException(401, "Unauthorized"))
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert "rejected the credentials (401 Unauthorized)" in failure.value.msg and failure.value.result["polls"] == 1

    def test_api_group_not_served_fails_at_once(self):
        missing = FakeApiException(404, "Not Found", {"kind": "Status", "reason": "NotFound", "code": 404, "details": {},
                                                      "message": "the server could not find the requested resource"})
        waiter, _api, _clock = run_wait(lambda t: missing, target=LWS)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.msg == (
            "the API server https://127.0.0.1:29443 does not serve leaderworkerset.x-k8s.io/v1 LeaderWorkerSet "
            "(404: the server could not find the requested resource); is its CRD installed?"
        )

    def test_tls_verification_failure_fails_at_once(self):
        import ssl
        error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate")
        waiter, _api, _clock = run_wait(lambda t: error)
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.msg.startswith("cannot verify the TLS certificate of the API server https://127.0.0.1:29443")
        assert failure.value.result["polls"] == 1

    def test_setup_error_fails_at_once(self):
        waiter, _api, _clock = run_wait(lambda t: kw.WaitSetupError("Deployment llama-vllm is namespaced: set namespace"))
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.msg == "Deployment llama-vllm is namespaced: set namespace"

    def test_job_complete(self):
        waiter, _api, _clock = run_wait(lambda t: job(succeeded=1) if t >= 10 else job(active=1), target=JOB, condition="complete")
        result = waiter.run()
        assert result["ready"] is True and result["job_failed"] is False and result["polls"] == 3

    def test_job_failed_stops_waiting(self):
        failed = job(failed=3, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                            "message": "Job has reached the specified backoff limit"}])
        waiter, _api, _clock = run_wait(lambda t: failed if t >= 5 else job(active=1), target=JOB, condition="complete")
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "job_failed"
        assert failure.value.result["job_failed"] is True and failure.value.result["polls"] == 2
        assert failure.value.msg == (
            "Job llm-serving/download-llama failed (succeeded 0/1, active 0, failed 3): "
            "BackoffLimitExceeded: Job has reached the specified backoff limit"
        )

    def test_complete_needs_a_job(self):
        waiter, _api, _clock = run_wait(lambda t: deployment(), condition="complete")
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.reason == "unsupported"

    def test_absent(self):
        waiter, _api, _clock = run_wait(lambda t: deployment() if t < 5 else not_found("llama-vllm"), condition="absent")
        result = waiter.run()
        assert result["ready"] is True and result["resource"] is None and result["polls"] == 2

    def test_pod_ready(self):
        result = run_wait(lambda t: pod(t >= 5), target=POD)[0].run()
        assert result["ready"] is True and result["polls"] == 2

    def test_unknown_condition(self):
        with pytest.raises(ValueError):
            kw.Waiter(lambda: None, DEPLOYMENT, "healthy")


# ---------------------------------------------------------------- errors and discovery


class TestErrors(object):
    def test_classification(self):
        assert kw.classify_error(not_found("llama-vllm"), DEPLOYMENT, SERVER)[0] == "not_found"
        assert kw.classify_error(not_found("other"), DEPLOYMENT, SERVER)[0] == "fatal"
        for status in (429, 500, 502, 503, 504):
            assert kw.classify_error(FakeApiException(status, "x"), DEPLOYMENT, SERVER)[0] == "outage"
        for error in (refused(), ConnectionResetError(104, "Connection reset by peer"), socket.timeout("timed out"),
                      FakeApiException(0, "SSLError\nEOF occurred in violation of protocol")):
            assert kw.classify_error(error, DEPLOYMENT, SERVER)[0] == "outage", error
        assert kw.classify_error(FakeApiException(400, "Bad Request"), DEPLOYMENT, SERVER)[0] == "fatal"
        assert kw.classify_error(KeyError("bug"), DEPLOYMENT, SERVER)[0] == "fatal"

    def test_real_client_exceptions(self):
        rest = pytest.importorskip("kubernetes.client.rest")
        exceptions = pytest.importorskip("urllib3.exceptions")
        error = rest.ApiException(status=503, reason="Service Unavailable")
        assert kw.classify_error(error, DEPLOYMENT, SERVER) == ("outage", "503 Service Unavailable")
        pool = pytest.importorskip("urllib3").HTTPSConnectionPool("127.0.0.1", 29443)
        timeout = exceptions.ReadTimeoutError(pool, "/apis", "Read timed out. (read timeout=10)")
        assert kw.classify_error(timeout, DEPLOYMENT, SERVER) == ("outage", "Read timed out. (read timeout=10)")
        protocol = exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        assert kw.classify_error(protocol, DEPLOYMENT, SERVER)[0] == "outage"

    def test_find_resource(self):
        resources = {"groupVersion": "apps/v1", "resources": [
            {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment"},
            {"name": "deployments/status", "singularName": "", "namespaced": True, "kind": "Deployment"},
            {"name": "controllerrevisions", "singularName": "controllerrevision", "namespaced": True, "kind": "ControllerRevision"},
        ]}
        assert kw.find_resource(resources, "Deployment") == ("deployments", True, "Deployment")
        assert kw.find_resource(resources, "deployment") == ("deployments", True, "Deployment")
        assert kw.find_resource(resources, "deployments") == ("deployments", True, "Deployment")
        with pytest.raises(kw.ResourceNotServed) as missing:
            kw.find_resource(resources, "StatefulSet")
        assert str(missing.value) == "no kind StatefulSet in apps/v1 (served: ControllerRevision, Deployment)"
        assert kw.group_version_path("v1") == "/api/v1"
        assert kw.group_version_path("apps/v1") == "/apis/apps/v1"

    def test_resource_not_served_fails_at_once(self):
        waiter, _api, _clock = run_wait(lambda t: kw.ResourceNotServed("no kind Deploymnt in apps/v1"))
        with pytest.raises(kw.WaitFailed) as failure:
            waiter.run()
        assert failure.value.msg == "the API server https://127.0.0.1:29443 does not serve apps/v1 Deployment: no kind Deploymnt in apps/v1"
