# -*- coding: utf-8 -*-
"""Stuck-rollout diagnosis, the revision stamp and history, and the rollback choice (module_utils/deploy/rollout.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_wait as waiting
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import rollout


def pod(name, waiting_reason=None, message="", unschedulable=None, last=None, phase="Pending", restarts=0):
    status = {"phase": phase, "conditions": []}
    if unschedulable:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable})
    if waiting_reason:
        container = {"name": "vllm", "restartCount": restarts, "state": {"waiting": {"reason": waiting_reason, "message": message}}}
        if last:
            container["lastState"] = {"terminated": last}
        status["containerStatuses"] = [container]
    return {"metadata": {"name": name}, "status": status}


DEPLOYMENT = {"metadata": {"name": "llm-vllm", "generation": 2}, "spec": {"replicas": 1},
              "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1}}


def test_an_image_that_cannot_be_pulled_is_stuck_once_it_lasts_the_timeout():
    detector = rollout.StuckDetector(30)
    bad = [pod("llm-vllm-abc", "ImagePullBackOff", 'Back-off pulling image "vllm/vllm-openai:v9": not found')]
    assert detector.observe(DEPLOYMENT, bad, 0) == []
    assert detector.observe(DEPLOYMENT, bad, 29) == []
    stuck = detector.observe(DEPLOYMENT, bad, 31)
    assert [(p["pod"], p["kind"], p["reason"]) for p in stuck] == [("llm-vllm-abc", "image", "ImagePullBackOff")]
    message = detector.message("Deployment llm-serving/llm-vllm", stuck, 31)
    assert "ImagePullBackOff" in message and "vllm/vllm-openai:v9" in message
    assert "<engine>_image_tag" in message and "playbooks/rollback.yml" in message


def test_a_problem_that_clears_starts_again_from_zero():
    detector = rollout.StuckDetector(30)
    bad = [pod("p", "ErrImagePull")]
    detector.observe(DEPLOYMENT, bad, 0)
    detector.observe(DEPLOYMENT, [pod("p")], 20)  # pulled this time, then failed again
    assert detector.observe(DEPLOYMENT, bad, 40) == []
    assert detector.observe(DEPLOYMENT, bad, 70)


def test_crash_loop_reports_the_last_exit_and_unschedulable_the_scheduler_message():
    detector = rollout.StuckDetector(0.5)
    pods = [
        pod("a", "CrashLoopBackOff", "back-off 40s", last={"exitCode": 1, "reason": "Error", "message": "ValueError: bad arg\n"}, restarts=3),
        pod("b", unschedulable="0/8 nodes are available: 8 Insufficient nvidia.com/gpu."),
    ]
    detector.observe(DEPLOYMENT, pods, 0)
    stuck = detector.observe(DEPLOYMENT, pods, 1)
    kinds = dict((p["pod"], p) for p in stuck)
    assert kinds["a"]["kind"] == "crash" and "last exit code 1" in kinds["a"]["message"] and "ValueError" in kinds["a"]["message"]
    assert kinds["b"]["kind"] == "unschedulable" and "Insufficient nvidia.com/gpu" in kinds["b"]["message"]
    message = detector.message("Deployment x/y", stuck, 1)
    assert "kubectl logs --previous" in message and "free GPUs" in message


def test_progress_deadline_exceeded_fails_at_once_and_timeout_zero_only_reports():
    late = json.loads(json.dumps(DEPLOYMENT))
    late["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                     "message": 'ReplicaSet "llm-vllm-7c" has timed out progressing.'}]
    assert rollout.StuckDetector(600).observe(late, [], 0)[0]["kind"] == "deadline"
    detector = rollout.StuckDetector(0)
    assert detector.observe(DEPLOYMENT, [pod("p", "ImagePullBackOff")], 0) == []
    assert detector.observe(DEPLOYMENT, [pod("p", "ImagePullBackOff")], 10**6) == []
    assert detector.current and detector.current[0]["reason"] == "ImagePullBackOff"


def test_pods_that_are_starting_or_being_deleted_are_not_problems():
    starting = pod("p", "ContainerCreating")
    deleting = pod("q", "ImagePullBackOff")
    deleting["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    assert rollout.pod_problems(starting) == [] and rollout.pod_problems(deleting) == []


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_wait_fails_as_stuck_with_the_pods_reason_before_its_timeout():
    clock = Clock()
    waiter = waiting.Waiter(
        lambda: DEPLOYMENT, waiting.Target("apps/v1", "Deployment", "llm-vllm", "llm-serving"), "ready",
        timeout=3000, delay=5, clock=clock, sleep=clock.sleep,
        list_pods=lambda: [pod("llm-vllm-abc", "ImagePullBackOff", "not found")], stuck_timeout=20)
    with pytest.raises(waiting.WaitFailed) as failure:
        waiter.run()
    assert failure.value.reason == "stuck"
    assert 20 <= clock.now <= 30
    assert "Deployment llm-serving/llm-vllm is stuck" in failure.value.msg
    assert failure.value.result["problems"][0]["reason"] == "ImagePullBackOff"


def test_a_timeout_names_the_pod_problems_seen_last():
    clock = Clock()
    waiter = waiting.Waiter(
        lambda: DEPLOYMENT, waiting.Target("apps/v1", "Deployment", "llm-vllm", "llm-serving"), "ready",
        timeout=12, delay=5, clock=clock, sleep=clock.sleep,
        list_pods=lambda: [pod("p", unschedulable="0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")], stuck_timeout=0)
    with pytest.raises(waiting.WaitFailed) as failure:
        waiter.run()
    assert failure.value.reason == "timeout" and "Insufficient nvidia.com/gpu" in failure.value.msg


# ---------------------------------------------------------------- history and rollback


def objects(image, kind="Deployment", name="llm-vllm"):
    workload = {"apiVersion": "apps/v1" if kind == "Deployment" else "leaderworkerset.x-k8s.io/v1", "kind": kind,
                "metadata": {"name": name, "namespace": "llm-serving",
                             "labels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llm"}},
                "spec": {"replicas": 1}}
    container = {"name": "vllm", "image": image, "args": ["--tensor-parallel-size=8"],
                 "startupProbe": {"periodSeconds": 10, "failureThreshold": 200}}
    if kind == "Deployment":
        workload["spec"].update(selector={"matchLabels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llm"}},
                                progressDeadlineSeconds=2900, template={"spec": {"containers": [container]}})
    else:
        workload["spec"]["leaderWorkerTemplate"] = {"size": 2, "leaderTemplate": {"spec": {"containers": [container]}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"token": "x"}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "llm", "namespace": "llm-serving"}}
    return [workload, service, secret]


def deploy(history, image, **kwargs):
    stamped, revision = rollout.stamp(objects(image, **kwargs))
    data = rollout.record(history, stamped, "llm", "llm-serving", {}, "t-%s" % image, 5)["data"]
    return data, revision


def live(revision, kind="Deployment", name="llm-vllm"):
    return [{"api_version": "apps/v1", "kind": kind, "name": name, "namespace": "llm-serving", "revision": revision}]


def test_the_stamp_is_stable_and_the_history_never_keeps_secrets():
    stamped, revision = rollout.stamp(objects("vllm:v1"))
    assert stamped[0]["metadata"]["annotations"][rollout.REVISION_ANNOTATION] == revision
    assert rollout.stamp(objects("vllm:v1"))[1] == revision != rollout.stamp(objects("vllm:v2"))[1]
    data, _revision = deploy({}, "vllm:v1")
    kept = json.loads(data[rollout.HISTORY_KEY])["revisions"]
    assert [o["kind"] for o in kept[0]["objects"]] == ["Deployment", "Service"]
    assert "vllm:v1" in kept[0]["summary"]


def test_a_rerun_leaves_the_history_as_it_was():
    first, _revision = deploy({}, "vllm:v1")
    again = rollout.record(first, rollout.stamp(objects("vllm:v1"))[0], "llm", "llm-serving", {}, "later", 5)["data"]
    assert again == first


def test_rollback_returns_to_the_revision_before_the_one_running():
    data, good = deploy({}, "vllm:v1")
    data, bad = deploy(data, "vllm:v0.0.0-missing")
    plan = rollout.rollback_plan(data, live(bad))
    assert plan["target"]["digest"] == good and plan["current"]["digest"] == bad
    assert plan["apply"][0]["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:v1"
    assert plan["remove"] == [] and plan["kept"] == [1, 2]
    assert plan["pod_selector"] == {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llm"}
    assert plan["wait_timeout"] == 2900
    # What runs was never recorded (history lost its newest entry): the newest kept one.
    assert rollout.rollback_plan(data, live("unknown"))["target"]["digest"] == bad


def test_rollback_across_a_layout_change_removes_the_new_workload():
    data, single = deploy({}, "vllm:v1")
    data, multi = deploy(data, "vllm:v1", kind="LeaderWorkerSet", name="llm-vllm-lws")
    plan = rollout.rollback_plan(data, live(multi, "LeaderWorkerSet", "llm-vllm-lws"))
    assert plan["target"]["digest"] == single and plan["workload"]["kind"] == "Deployment"
    assert [(o["kind"], o["name"]) for o in plan["remove"]] == [("LeaderWorkerSet", "llm-vllm-lws")]
    back = rollout.rollback_plan(data, live(single), revision=2)
    assert back["workload"]["kind"] == "LeaderWorkerSet" and back["wait_timeout"] == 10 * 200 + rollout.ROLLOUT_SLACK_SECONDS


def test_nothing_to_roll_back_to_is_said_plainly():
    with pytest.raises(rollout.RolloutError, match="no revision has been recorded"):
        rollout.rollback_plan({}, [])
    data, only = deploy({}, "vllm:v1")
    with pytest.raises(rollout.RolloutError, match="oldest kept"):
        rollout.rollback_plan(data, live(only))
    with pytest.raises(rollout.RolloutError, match="revision 7 is not kept; kept: 1"):
        rollout.rollback_plan(data, live(only), revision=7)


def test_the_history_keeps_the_newest_revisions():
    data = {}
    for index in range(8):
        data, _revision = deploy(data, "vllm:v%d" % index)
    kept = json.loads(data[rollout.HISTORY_KEY])["revisions"]
    assert [r["revision"] for r in kept] == [4, 5, 6, 7, 8]
    # Applying an older revision again moves it to the end with its number.
    data, _revision = deploy(data, "vllm:v5")
    assert [r["revision"] for r in json.loads(data[rollout.HISTORY_KEY])["revisions"]] == [4, 5, 7, 8, 6]


def test_stale_workloads_are_those_the_deploy_no_longer_builds():
    wanted = objects("vllm:v1", kind="LeaderWorkerSet", name="llm-sglang")
    running = live("x") + live("y", "LeaderWorkerSet", "llm-sglang")
    assert rollout.stale_objects(running, wanted) == [
        {"api_version": "apps/v1", "kind": "Deployment", "name": "llm-vllm", "namespace": "llm-serving"}]


def test_a_cache_claim_whose_access_mode_would_change_is_refused_before_the_deploy():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import model_cache
    resolved = {"namespace": "llm-serving", "weights_bytes": 1, "existing_secrets": [], "existing_claim": "",
                "claim": "llm-model-cache", "access_mode": "ReadWriteMany"}
    problems = model_cache.existing_problems(resolved, {}, None, {"exists": True, "access_modes": ["ReadWriteOnce"]})
    assert len(problems) == 1 and "llm-model-cache exists as ReadWriteOnce" in problems[0]
    assert "model_cache_access_mode=ReadWriteMany" in problems[0]
    assert model_cache.existing_problems(resolved, {}, None, {"exists": True, "access_modes": ["ReadWriteMany"]}) == []
    assert model_cache.existing_problems(resolved, {}, None, {"exists": False, "access_modes": []}) == []


def test_surge_capacity_counts_whole_replicas_left_beside_the_planned_ones():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import plan_validation

    def nodes(free):
        return [{"name": "n%d" % i, "gpu": {"free": f, "product": "NVIDIA-A100-SXM4-80GB"}} for i, f in enumerate(free)]

    def surge(free, replicas, per_slot=8, slots=1):
        req = {"gpus_per_slot": per_slot, "slots_per_replica": slots, "replicas": replicas}
        placements, left = plan_validation.assign(req, nodes(free))
        assert all(p["placed"] for p in placements)
        return plan_validation.surge_capacity(req, nodes(free), left)

    assert surge([8, 8, 8, 8], 4) == 0          # every A100 taken: replace in place
    assert surge([8, 8, 8, 8], 3) == 1          # one replica's worth free: surge
    assert surge([8, 8, 8, 4], 3) == 0          # 4 free GPUs do not hold an 8-GPU replica
    assert surge([8, 8, 8, 8], 2, slots=2) == 0  # two 2-node groups take all four nodes: none left
    assert surge([8, 8, 8, 8], 1, slots=2) == 1  # two nodes left: a whole surge group fits


def test_the_wait_backs_off_from_one_second_up_to_its_delay():
    clock = Clock()
    pauses = []

    def sleep(seconds):
        pauses.append(seconds)
        clock.sleep(seconds)

    job = {"metadata": {"name": "download"}, "spec": {"completions": 1}, "status": {"active": 1}}
    waiter = waiting.Waiter(lambda: job, waiting.Target("batch/v1", "Job", "download", "llm-serving"), "complete",
                            timeout=60, delay=15, clock=clock, sleep=sleep, backoff=True)
    with pytest.raises(waiting.WaitFailed):
        waiter.run()
    assert pauses[:6] == [1, 2, 4, 8, 15, 15]


# What a 0.1 deploy left on a Deployment (kubernetes.core's create and patch, the Python client's user agent), as
# read from the simulated cluster's kube-apiserver, trimmed.
LEGACY_FIELDS = [
    {"manager": "OpenAPI-Generator", "operation": "Update", "apiVersion": "apps/v1", "time": "2026-12-08T01:58:00Z",
     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
         'k:{"name":"vllm"}': {"f:env": {'k:{"name":"FOO"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}}}},
    {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "subresource": "status",
     "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}},
]


def test_fields_an_earlier_version_wrote_are_handed_to_the_collections_apply_and_the_controllers_keep_theirs():
    handed = rollout.handed_over_fields(LEGACY_FIELDS)
    assert [(entry["manager"], entry["operation"], entry.get("subresource")) for entry in handed] == [
        ("kube-controller-manager", "Update", "status"), ("gpuinfer.serving", "Apply", None)]
    applied = handed[1]
    assert applied["apiVersion"] == "apps/v1" and applied["fieldsType"] == "FieldsV1"
    assert applied["fieldsV1"] == LEGACY_FIELDS[0]["fieldsV1"]
    # An object the collection already applies server-side has nothing to hand over; nor one read without the list.
    assert rollout.handed_over_fields(handed) is None
    assert rollout.handed_over_fields(None) is None


def test_a_legacy_entry_next_to_an_apply_entry_is_merged_into_it():
    apply_entry = {"manager": "gpuinfer.serving", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                   "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}}
    handed = rollout.handed_over_fields([apply_entry, LEGACY_FIELDS[0]])
    assert len(handed) == 1 and handed[0]["manager"] == "gpuinfer.serving"
    spec = handed[0]["fieldsV1"]["f:spec"]
    assert set(spec) == {"f:replicas", "f:paused", "f:template"}
    assert apply_entry["fieldsV1"] == {"f:spec": {"f:replicas": {}, "f:paused": {}}}, "the input is left as it was"


def test_the_handover_patches_only_the_workloads_the_deploy_still_builds():
    running = [dict(live("x")[0], handed_over_fields=rollout.handed_over_fields(LEGACY_FIELDS)),
               dict(live("y", "LeaderWorkerSet", "llm-sglang")[0], handed_over_fields=rollout.handed_over_fields(LEGACY_FIELDS)),
               dict(live("z", name="other-vllm")[0], handed_over_fields=None)]
    wanted = objects("vllm:v1") + objects("vllm:v1", name="other-vllm")
    patches = rollout.ownership_handover(running, wanted)
    assert patches == [{"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "llm-vllm", "namespace": "llm-serving",
                                     "managedFields": running[0]["handed_over_fields"]}}]
    assert rollout.ownership_handover(running, []) == []
