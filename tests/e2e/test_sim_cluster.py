"""The simulated GPU cluster itself: versions, nodes, scheduling, LeaderWorkerSet."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
H100 = "NVIDIA-H100-80GB-HBM3"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
IMAGE = "registry.invalid/gpuinfer/sim-workload:0"  # never pulled: kwok runs nothing


def _make_nodes_module():
    spec = importlib.util.spec_from_file_location("sim_make_nodes", REPO_ROOT / "tests" / "cluster" / "make_nodes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def core(sim_cluster):
    from kubernetes import client

    return client.CoreV1Api(sim_cluster.api_client())


@pytest.fixture()
def namespace(sim_cluster, core):
    """A fresh namespace, deleted (and waited for) after the test."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    name = f"e2e-sim-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def has_default_sa():
        try:
            core.read_namespaced_service_account("default", name)
            return True
        except ApiException:
            return False

    wait_for(has_default_sa, 60, f"ServiceAccount default in {name}")
    yield name
    core.delete_namespace(name)

    def gone():
        try:
            core.read_namespace(name)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, 120, f"namespace {name} to be deleted", interval=1.0)


def gpu_pod(name: str, gpus: int, node_selector: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "gpuinfer-e2e"}},
        "spec": {
            "automountServiceAccountToken": False,
            "tolerations": [GPU_TOLERATION],
            "nodeSelector": node_selector or {},
            "containers": [
                {
                    "name": "engine",
                    "image": IMAGE,
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": str(gpus)},
                        "limits": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ],
        },
    }


def test_server_version_is_pinned_release(sim_cluster):
    from kubernetes import client

    info = client.VersionApi(sim_cluster.api_client()).get_code()
    assert info.git_version == sim_cluster.kubernetes_version
    assert (info.major, info.minor) == ("1", sim_cluster.kubernetes_version.split(".")[1])

    out = sim_cluster.kubectl("version", "-o", "json").stdout
    versions = json.loads(out)
    assert versions["clientVersion"]["gitVersion"] == sim_cluster.kubernetes_version
    assert versions["serverVersion"]["gitVersion"] == sim_cluster.kubernetes_version


def test_helm_is_on_the_sim_path(sim_cluster):
    import subprocess

    out = subprocess.run(
        ["helm", "version", "--short"], env=sim_cluster.env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("v3."), out


def test_expected_nodes_are_ready_with_gpus(sim_cluster, core):
    make_nodes = _make_nodes_module()
    expected = make_nodes.build_nodes(make_nodes.load_profile(sim_cluster.profile))
    live = {n.metadata.name: n for n in core.list_node(label_selector=f"{make_nodes.MANAGED_LABEL}=true").items}
    assert set(live) == {n["metadata"]["name"] for n in expected}

    for want in expected:
        node = live[want["metadata"]["name"]]
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        assert ready and ready[0].status == "True", f"{node.metadata.name} not Ready"
        want_gpus = want["status"]["allocatable"].get("nvidia.com/gpu")
        assert node.status.allocatable.get("nvidia.com/gpu") == want_gpus, node.metadata.name
        for key, value in want["metadata"]["labels"].items():
            assert node.metadata.labels.get(key) == value, (node.metadata.name, key)
        taints = {(t.key, t.value, t.effect) for t in node.spec.taints or []}
        if want_gpus:
            assert ("nvidia.com/gpu", "present", "NoSchedule") in taints
        else:
            assert not any(t[0] == "nvidia.com/gpu" for t in taints)

    if sim_cluster.profile == "default":
        by_product: dict[str, list] = {}
        for node in live.values():
            by_product.setdefault(node.metadata.labels.get("nvidia.com/gpu.product", "cpu"), []).append(node)
        assert len(by_product[H100]) == 2
        assert len(by_product["NVIDIA-A100-SXM4-80GB"]) == 4
        assert len(by_product["NVIDIA-L40S"]) == 2
        assert len(by_product["cpu"]) == 1
        for node in by_product[H100]:
            assert node.status.allocatable["nvidia.com/gpu"] == "8"
            assert int(node.status.allocatable["rdma/rdma_shared_device_a"]) > 0
            assert node.metadata.labels["feature.node.kubernetes.io/pci-15b3.present"] == "true"
            assert node.metadata.labels["nvidia.com/gpu.deploy.driver"] == "pre-installed"
        for node in by_product["NVIDIA-L40S"]:
            assert node.status.allocatable["nvidia.com/gpu"] == "4"
        assert "nvidia.com/gpu" not in (by_product["cpu"][0].status.allocatable or {})


def test_eight_gpu_pod_runs_on_h100(sim_cluster, core, namespace):
    core.create_namespaced_pod(namespace, gpu_pod("h100-8gpu", 8, {"nvidia.com/gpu.product": H100}))

    def running():
        pod = core.read_namespaced_pod("h100-8gpu", namespace)
        return pod if pod.status.phase == "Running" else None

    pod = wait_for(running, 90, "pod h100-8gpu Running")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == H100
    assert all(cs.ready for cs in pod.status.container_statuses)


def test_nine_gpu_pod_stays_pending(sim_cluster, core, namespace):
    core.create_namespaced_pod(namespace, gpu_pod("too-big", 9))

    def unschedulable():
        pod = core.read_namespaced_pod("too-big", namespace)
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                return pod
        return None

    pod = wait_for(unschedulable, 60, "pod too-big to be Unschedulable")
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name
    msg = next(c.message for c in pod.status.conditions if c.type == "PodScheduled")
    assert "nvidia.com/gpu" in msg, msg
    time.sleep(3)
    assert core.read_namespaced_pod("too-big", namespace).status.phase == "Pending"


def test_leaderworkerset_group_of_two_runs_on_two_nodes(sim_cluster, core, namespace):
    from kubernetes import client

    custom = client.CustomObjectsApi(sim_cluster.api_client())
    template = {
        "spec": {
            "automountServiceAccountToken": False,
            "tolerations": [GPU_TOLERATION],
            "containers": [
                {
                    "name": "engine",
                    "image": IMAGE,
                    "resources": {"limits": {"nvidia.com/gpu": "8"}, "requests": {"nvidia.com/gpu": "8"}},
                }
            ],
        }
    }
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "llm"},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": template}},
    }
    created = custom.create_namespaced_custom_object(
        "leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", lws
    )
    # Set only by the LWS mutating webhook (the CRD schema has no such default).
    assert created["spec"].get("networkConfig", {}).get("subdomainPolicy"), created["spec"]

    selector = "leaderworkerset.sigs.k8s.io/name=llm"

    def both_running():
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if len(pods) == 2 and all(p.status.phase == "Running" for p in pods):
            return pods
        return None

    pods = wait_for(both_running, 120, "leader and worker pods Running", interval=1.0)
    indexes = sorted(p.metadata.labels["leaderworkerset.sigs.k8s.io/worker-index"] for p in pods)
    assert indexes == ["0", "1"]
    nodes = {p.spec.node_name for p in pods}
    assert len(nodes) == 2, f"leader and worker share a node: {nodes}"
    for pod in pods:
        env = {e.name: e.value for e in pod.spec.containers[0].env or []}
        assert env.get("LWS_LEADER_ADDRESS", "").startswith("llm-0."), env
        assert env.get("LWS_GROUP_SIZE") == "2", env
        node = core.read_node(pod.spec.node_name)
        assert int(node.status.allocatable["nvidia.com/gpu"]) >= 8

    custom.delete_namespaced_custom_object("leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", "llm")
