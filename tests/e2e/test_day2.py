"""Day 2 on the simulated cluster: upgrades by re-running site.yml, a stuck rollout, rollback, scale.

The cluster (tests/cluster/profiles/default.yaml) has 4 A100 nodes of 8 GPUs and 2 H100 nodes of 8.
Four 8-GPU replicas take every A100 (no spare GPUs: the rollout replaces in place); three leave a
replica's worth free (the rollout surges). kwok reports an image tagged v0.0.0-missing as
ImagePullBackOff (tests/cluster/kwok/pod-image-missing.yaml), as a kubelet does for a tag that does
not exist: that is the stuck rollout.
"""

from __future__ import annotations

import json
import time

import pytest

from test_playbooks import assert_ok, kubectl_json, pods, run_playbook, teardown

pytestmark = pytest.mark.e2e

SCENARIO = "llama70b-tp8"
INSTANCE = "llama-3-1-70b"
WORKLOAD = "llama-3-1-70b-vllm"
SELECTOR = "app.kubernetes.io/instance=%s,app.kubernetes.io/name=vllm" % INSTANCE
# Autoscaling off: the replica count is what the test sets. The download Job keeps the good image,
# so only the engine's rollout meets the missing one.
# The cache is ReadWriteMany from the start, as scaling out or going multi-node later needs (a claim's
# access mode cannot change; a deploy that would need to is refused before anything changes).
BASE = {"inference_service_autoscaling": "none", "model_cache_download_image": "vllm/vllm-openai:v0.34.0",
        "inference_common_stuck_timeout": 15, "model_cache_access_mode": "ReadWriteMany"}
MISSING_TAG = "v0.0.0-missing"


@pytest.fixture
def namespace(sim_cluster, request):
    name = "e2e-day2-%s" % "-".join(request.node.name.split("_")[1:4])[:30].lower()
    yield name
    teardown(sim_cluster, SCENARIO, name)


def site(sim, namespace, scenario=SCENARIO, **extra):
    return run_playbook(sim, "site.yml", scenario, namespace, extra_vars=dict(BASE, **extra))


def settle(sim, namespace, selector, count, timeout=60):
    """The pods of ``selector`` once ``count`` are Running and none is Pending or terminating."""
    deadline = time.time() + timeout
    while True:
        items = pods(sim, namespace, selector)
        running = [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
        if len(running) == count == len(items) or time.time() > deadline:
            return items
        time.sleep(1)


def images(items):
    return sorted(set(p["spec"]["containers"][0]["image"] for p in items))


def args_of(items):
    return [" ".join(p["spec"]["containers"][0].get("args", []) + p["spec"]["containers"][0].get("command", [])) for p in items]


def test_upgrade_without_spare_gpus_replaces_in_place_a_bad_image_is_stuck_and_rollback_returns(sim_cluster, namespace):
    proc, _ = site(sim_cluster, namespace, plan_replicas=4)
    assert_ok(proc)
    deployment = kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)
    # Every A100 is taken: a surge pod would wait for GPUs the old pods hold.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert "0 spare GPUs" in proc.stdout
    first = settle(sim_cluster, namespace, SELECTOR, 4)
    assert len(first) == 4

    # An engine argument changes: the rollout ends with 4 new pods Ready, the old ones gone, nothing Pending.
    proc, recap = site(sim_cluster, namespace, plan_replicas=4, vllm_extra_args=["--enable-prefix-caching"])
    assert_ok(proc)
    assert recap["changed"] >= 1
    upgraded = settle(sim_cluster, namespace, SELECTOR, 4)
    assert len(upgraded) == 4 and all(p["status"]["phase"] == "Running" for p in upgraded)
    assert not set(p["metadata"]["name"] for p in first) & set(p["metadata"]["name"] for p in upgraded)
    assert all("--enable-prefix-caching" in a for a in args_of(upgraded))
    good_image = images(upgraded)

    # A tag that does not exist: the run fails within the stuck bound, naming the pod and the reason.
    started = time.time()
    proc, recap = site(sim_cluster, namespace, plan_replicas=4, vllm_extra_args=["--enable-prefix-caching"],
                       vllm_image_tag=MISSING_TAG)
    took = time.time() - started
    assert proc.returncode != 0 and recap["failed"] == 1
    assert "is stuck after" in proc.stdout and "ImagePullBackOff" in proc.stdout
    assert "vllm/vllm-openai:%s" % MISSING_TAG in proc.stdout and "playbooks/rollback.yml" in proc.stdout
    assert took < 120, "the stuck rollout took %.0f s to fail" % took
    # maxUnavailable 1: three old pods keep serving while the new one cannot pull.
    stuck = pods(sim_cluster, namespace, SELECTOR)
    assert len([p for p in stuck if p["spec"]["containers"][0]["image"].endswith(MISSING_TAG)]) == 1

    proc, recap = run_playbook(sim_cluster, "rollback.yml", SCENARIO, namespace, extra_vars=BASE)
    assert_ok(proc)
    assert "Back to: revision 2" in proc.stdout
    restored = settle(sim_cluster, namespace, SELECTOR, 4)
    assert images(restored) == good_image and len(restored) == 4
    assert all("--enable-prefix-caching" in a for a in args_of(restored))
    deployment = kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)
    assert deployment["status"]["readyReplicas"] == 4 and deployment["status"]["updatedReplicas"] == 4

    # Rolling back again goes one revision further back (the first deploy's arguments).
    proc, _ = run_playbook(sim_cluster, "rollback.yml", SCENARIO, namespace, extra_vars=BASE)
    assert_ok(proc)
    oldest = settle(sim_cluster, namespace, SELECTOR, 4)
    assert not any("--enable-prefix-caching" in a for a in args_of(oldest))
    proc, _ = run_playbook(sim_cluster, "rollback.yml", SCENARIO, namespace, extra_vars=BASE)
    assert proc.returncode != 0 and "nothing before it to return to" in proc.stdout


def test_upgrade_with_a_spare_replica_surges(sim_cluster, namespace):
    proc, _ = site(sim_cluster, namespace, plan_replicas=3)
    assert_ok(proc)
    assert "8 spare GPUs cover a surge replica" in proc.stdout
    deployment = kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    before = settle(sim_cluster, namespace, SELECTOR, 3)

    proc, _ = site(sim_cluster, namespace, plan_replicas=3, vllm_extra_args=["--enable-prefix-caching"])
    assert_ok(proc)
    after = settle(sim_cluster, namespace, SELECTOR, 3)
    assert len(after) == 3 and all("--enable-prefix-caching" in a for a in args_of(after))
    assert not set(p["metadata"]["name"] for p in before) & set(p["metadata"]["name"] for p in after)

    # A new model revision: its download Job runs first, then the engine rolls onto it.
    revision = "0e9e39f249a16976918f6564b8830bc894c89659"
    proc, _ = site(sim_cluster, namespace, plan_replicas=3, vllm_extra_args=["--enable-prefix-caching"],
                   model_cache_revision=revision)
    assert_ok(proc)
    jobs = kubectl_json(sim_cluster, "get", "jobs", "-n", namespace)["items"]
    assert any(revision in " ".join(j["spec"]["template"]["spec"]["containers"][0].get("args", [])) and j["status"].get("succeeded")
               for j in jobs), [j["metadata"]["name"] for j in jobs]
    revised = settle(sim_cluster, namespace, SELECTOR, 3)
    assert len(revised) == 3 and all("--revision=%s" % revision in a for a in args_of(revised))


def test_scale_checks_the_cluster_first_and_keeps_the_autoscaler_floor(sim_cluster, namespace):
    proc, _ = site(sim_cluster, namespace, plan_replicas=1)
    assert_ok(proc)
    proc, _ = run_playbook(sim_cluster, "scale.yml", SCENARIO, namespace, extra_vars=dict(BASE, gpuinfer_replicas=3))
    assert_ok(proc)
    assert len(settle(sim_cluster, namespace, SELECTOR, 3)) == 3
    assert kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)["spec"]["replicas"] == 3

    # Five 8-GPU replicas need 40 A100s; the cluster has 32. Refused before anything changes.
    before = kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)["metadata"]["resourceVersion"]
    proc, _ = run_playbook(sim_cluster, "scale.yml", SCENARIO, namespace, extra_vars=dict(BASE, gpuinfer_replicas=5))
    assert proc.returncode != 0 and "GPU_CAPACITY" in proc.stdout
    assert kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)["metadata"]["resourceVersion"] == before

    proc, _ = run_playbook(sim_cluster, "scale.yml", SCENARIO, namespace, extra_vars=dict(BASE, gpuinfer_replicas="two"))
    assert proc.returncode != 0 and "gpuinfer_replicas" in proc.stdout

    # With HPA the count becomes the autoscaler's floor.
    proc, _ = run_playbook(sim_cluster, "scale.yml", SCENARIO, namespace,
                           extra_vars=dict(BASE, gpuinfer_replicas=2, inference_service_autoscaling="hpa",
                                           inference_service_hpa_force=True, inference_service_adapter_namespace=namespace,
                                           inference_service_max_replicas=3))
    assert_ok(proc)
    hpa = kubectl_json(sim_cluster, "get", "hpa", "-n", namespace, INSTANCE)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)


def test_a_layout_change_replaces_the_deployment_with_a_leaderworkerset_and_rolls_back(sim_cluster, namespace):
    proc, _ = site(sim_cluster, namespace)
    assert_ok(proc)
    assert kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)

    # TP8 x PP2 over two nodes: a LeaderWorkerSet replaces the Deployment, whose GPUs are released.
    layout = {"plan_max_nodes": 2, "plan_pipeline_parallel_size": 2}
    proc, _ = site(sim_cluster, namespace, **layout)
    assert_ok(proc)
    assert sim_cluster.kubectl("get", "deployment", "-n", namespace, WORKLOAD, check=False).returncode != 0
    lws = kubectl_json(sim_cluster, "get", "leaderworkerset", "-n", namespace, WORKLOAD)
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2 and lws["status"]["readyReplicas"] == 1
    # Two of the four A100 nodes are left free: a whole surge group fits, so the group rolls with maxSurge 1.
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["maxSurge"] == 1
    group = settle(sim_cluster, namespace, "leaderworkerset.sigs.k8s.io/name=%s" % WORKLOAD, 2)
    assert len(group) == 2 and len(set(p["spec"]["nodeName"] for p in group)) == 2

    # An argument change of the LeaderWorkerSet rolls its group.
    proc, _ = site(sim_cluster, namespace, vllm_extra_args=["--enable-prefix-caching"], **layout)
    assert_ok(proc)
    regrouped = settle(sim_cluster, namespace, "leaderworkerset.sigs.k8s.io/name=%s" % WORKLOAD, 2)
    assert len(regrouped) == 2 and all("--enable-prefix-caching" in a for a in args_of(regrouped))
    assert not set(p["metadata"]["name"] for p in group) & set(p["metadata"]["name"] for p in regrouped) or all(
        p["metadata"]["uid"] not in set(q["metadata"]["uid"] for q in group) for p in regrouped)

    # Back twice: to the plain LeaderWorkerSet, then to the single-node Deployment (the LWS is removed).
    proc, _ = run_playbook(sim_cluster, "rollback.yml", SCENARIO, namespace, extra_vars=BASE)
    assert_ok(proc)
    proc, _ = run_playbook(sim_cluster, "rollback.yml", SCENARIO, namespace, extra_vars=BASE)
    assert_ok(proc)
    assert "Removed: LeaderWorkerSet %s" % WORKLOAD in proc.stdout
    assert sim_cluster.kubectl("get", "leaderworkerset", "-n", namespace, WORKLOAD, check=False).returncode != 0
    assert len(settle(sim_cluster, namespace, SELECTOR, 1)) == 1


def test_leaderworkerset_upgrade_without_spare_gpus_replaces_the_group_in_place(sim_cluster, request):
    namespace = "e2e-day2-lws-full"
    scenario = "llama405b-tp8-pp2"
    workload = "llama-3-1-405b-vllm"
    selector = "leaderworkerset.sigs.k8s.io/name=%s" % workload
    try:
        proc, _ = site(sim_cluster, namespace, scenario)
        assert_ok(proc)
        lws = kubectl_json(sim_cluster, "get", "leaderworkerset", "-n", namespace, workload)
        # Both H100 nodes are taken: no surge group.
        assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["maxSurge"] == 0
        before = settle(sim_cluster, namespace, selector, 2)
        proc, _ = site(sim_cluster, namespace, scenario, vllm_extra_args=["--enable-prefix-caching"])
        assert_ok(proc)
        after = settle(sim_cluster, namespace, selector, 2)
        assert len(after) == 2 and all("--enable-prefix-caching" in a for a in args_of(after))
        assert not set(p["metadata"]["uid"] for p in before) & set(p["metadata"]["uid"] for p in after)
        lws = kubectl_json(sim_cluster, "get", "leaderworkerset", "-n", namespace, workload)
        assert lws["status"]["readyReplicas"] == 1 and lws["status"]["updatedReplicas"] == 1
    finally:
        teardown(sim_cluster, scenario, namespace)


def test_an_engine_change_replaces_the_vllm_workload_with_sglang(sim_cluster, namespace):
    proc, _ = site(sim_cluster, namespace)
    assert_ok(proc)
    assert kubectl_json(sim_cluster, "get", "deployment", "-n", namespace, WORKLOAD)
    proc, _ = site(sim_cluster, namespace, gpuinfer_engine="sglang")
    assert_ok(proc)
    assert sim_cluster.kubectl("get", "deployment", "-n", namespace, WORKLOAD, check=False).returncode != 0
    sglang = settle(sim_cluster, namespace, "app.kubernetes.io/instance=%s,app.kubernetes.io/name=sglang" % INSTANCE, 1)
    assert len(sglang) == 1 and sglang[0]["spec"]["containers"][0]["image"].startswith("lmsysorg/sglang:")
    assert pods(sim_cluster, namespace, SELECTOR) == []
    service = kubectl_json(sim_cluster, "get", "service", "-n", namespace, INSTANCE)
    assert service["spec"]["selector"]["app.kubernetes.io/name"] == "sglang"


def env_names(sim, namespace):
    deployment = kubectl_json(sim, "get", "deployment", "-n", namespace, WORKLOAD)
    return [e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])]


def managers(sim, namespace):
    deployment = kubectl_json(sim, "get", "deployment", "-n", namespace, WORKLOAD, "--show-managed-fields")
    return deployment["metadata"]["managedFields"]


def test_a_setting_taken_out_leaves_the_cluster_also_on_a_workload_an_earlier_version_wrote(sim_cluster, namespace):
    marker = [{"name": "GPUINFER_E2E_MARKER", "value": "on"}]
    proc, _ = site(sim_cluster, namespace, plan_replicas=1, vllm_extra_env=marker)
    assert_ok(proc)
    assert "GPUINFER_E2E_MARKER" in env_names(sim_cluster, namespace)

    # Taken out of the settings: gone from the Deployment (a patch would have kept it), and the next run changes nothing.
    proc, recap = site(sim_cluster, namespace, plan_replicas=1)
    assert_ok(proc)
    assert recap["changed"] >= 1 and "GPUINFER_E2E_MARKER" not in env_names(sim_cluster, namespace)
    proc, recap = site(sim_cluster, namespace, plan_replicas=1)
    assert_ok(proc)
    assert recap["changed"] == 0, proc.stdout[-3000:]

    # A rollback returns to the revision that had it, and the next deploy takes it out again.
    proc, _ = run_playbook(sim_cluster, "rollback.yml", SCENARIO, namespace, extra_vars=dict(BASE, plan_replicas=1))
    assert_ok(proc)
    assert "GPUINFER_E2E_MARKER" in env_names(sim_cluster, namespace)
    proc, _ = site(sim_cluster, namespace, plan_replicas=1)
    assert_ok(proc)
    assert "GPUINFER_E2E_MARKER" not in env_names(sim_cluster, namespace)

    # What a deploy by 0.1 (kubernetes.core's create and patch) leaves: the fields owned by the kubernetes client's
    # Update entry, which a server-side apply never removes. The deploy hands them over first, then removes the marker.
    proc, _ = site(sim_cluster, namespace, plan_replicas=1, vllm_extra_env=marker)
    assert_ok(proc)
    legacy = [dict(entry, manager="OpenAPI-Generator", operation="Update") if entry["manager"] == "gpuinfer.serving" else entry
              for entry in managers(sim_cluster, namespace)]
    sim_cluster.kubectl("patch", "deployment", "-n", namespace, WORKLOAD, "--type=merge",
                        "-p", json.dumps({"metadata": {"managedFields": legacy}}))
    assert [e["manager"] for e in managers(sim_cluster, namespace) if not e.get("subresource")] == ["OpenAPI-Generator"]
    proc, _ = site(sim_cluster, namespace, plan_replicas=1)
    assert_ok(proc)
    assert "GPUINFER_E2E_MARKER" not in env_names(sim_cluster, namespace)
    assert [e["manager"] for e in managers(sim_cluster, namespace) if not e.get("subresource")] == ["gpuinfer.serving"]
    proc, recap = site(sim_cluster, namespace, plan_replicas=1)
    assert_ok(proc)
    assert recap["changed"] == 0, proc.stdout[-3000:]
