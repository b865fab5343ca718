from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.workload import (
    WorkloadError, build_workload, gpu_scheduling, nccl_env, rollout_plan, shm_volume)
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.layout import replica_layout

CONTAINER = {"name": "engine", "image": "example/engine:1", "env": [{"name": "A", "value": "1"}]}
BASE = {
    "name": "llm-vllm", "namespace": "ns", "instance": "llm", "engine": "vllm", "replicas": 1,
    "gpu_labels": ["NVIDIA-H100-80GB-HBM3"], "leader_container": CONTAINER,
    "shm_size": "16Gi", "cache": {"pvc_name": "cache", "mount_path": "/models"},
    "nccl": {"socket_ifname": "eth0", "ib_hca": "mlx5", "debug": "INFO"},
}


def spec(nodes=1, **changes):
    """A description of 8 GPUs per pod on ``nodes`` nodes (one pod per node)."""
    result = copy.deepcopy(BASE)
    result["layout"] = replica_layout(8 * nodes, 1, nodes)
    result.update(changes)
    return result


def test_single_node_is_a_deployment_with_all_gpus_on_one_pod():
    deployment, pdb = build_workload(spec())
    assert deployment["kind"] == "Deployment"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert [item["name"] for item in container["env"]] == ["A", "NCCL_SOCKET_IFNAME", "NCCL_DEBUG"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "cache"}} in pod["volumes"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_input_container_is_not_mutated():
    original = copy.deepcopy(CONTAINER)
    build_workload(spec(rdma={"enabled": True, "resource": "rdma/x"}))
    assert CONTAINER == original


def test_multi_node_is_a_leader_worker_set_group():
    worker = dict(CONTAINER, name="worker")
    lws, _pdb = build_workload(spec(nodes=2, worker_container=worker, lws={"exclusive_topology": "nvidia.com/gpu.clique"}))
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert lws["spec"]["startupPolicy"] == "LeaderCreated"
    assert lws["metadata"]["annotations"] == {"leaderworkerset.sigs.k8s.io/exclusive-topology": "nvidia.com/gpu.clique"}
    assert template["workerTemplate"]["spec"]["containers"][0]["name"] == "worker"
    for side in ("leaderTemplate", "workerTemplate"):
        assert template[side]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_multi_node_without_worker_container_fails():
    with pytest.raises(WorkloadError, match="worker_container"):
        build_workload(spec(nodes=2))


def test_rdma_adds_resource_capability_and_ib_hca():
    deployment, _pdb = build_workload(spec(rdma={"enabled": True, "resource": "rdma/rdma_shared_device_a", "count": 1}))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["rdma/rdma_shared_device_a"] == "1"
    assert container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    assert {"name": "NCCL_IB_HCA", "value": "mlx5"} in container["env"]


def test_nccl_ib_hca_only_with_rdma():
    assert nccl_env("eth0", "mlx5", "", rdma_enabled=False) == [{"name": "NCCL_SOCKET_IFNAME", "value": "eth0"}]


def test_scheduling_pins_the_product_and_tolerates_the_taint():
    pod = gpu_scheduling(["NVIDIA-A100-SXM4-80GB"], extra_tolerations=[{"key": "pool", "operator": "Exists"}])
    expression = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert expression["matchExpressions"] == [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}]
    assert pod["tolerations"][0] == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert len(pod["tolerations"]) == 2
    assert "affinity" not in gpu_scheduling([])


@pytest.mark.parametrize("choice,replicas,spare,expected,lws_surge", [
    ("auto", 1, 0, {"type": "Recreate"}, 0),
    ("auto", 3, 4, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, 0),
    ("auto", 1, 8, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, 1),
    ("Recreate", 1, 64, {"type": "Recreate"}, 0),
    ("RollingUpdate", 1, 0, {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, 0),
])
def test_rollout_surges_only_with_a_spare_replica_of_gpus(choice, replicas, spare, expected, lws_surge):
    plan = rollout_plan(choice, replicas, 8, spare)
    assert plan["deployment"] == expected
    assert plan["lws"] == {"maxUnavailable": 1, "maxSurge": lws_surge}
    assert plan["reason"]


@pytest.mark.parametrize("changes,message", [
    (dict(rollout={"strategy": "BlueGreen"}), "rollout strategy must be one of"),
    (dict(layout=None), "workload description is missing 'layout'"),
    (dict(replicas=-1), "replicas must be a whole number >= 0, got -1"),
    (dict(replicas="two"), "replicas must be a whole number >= 0, got 'two'"),
    (dict(pdb={"max_unavailable": 1.5}), "pdb.max_unavailable must be a whole number >= 0, got 1.5"),
    (dict(termination_grace_period_seconds=True), "termination_grace_period_seconds must be a whole number >= 0, got True"),
    (dict(shm_size=""), "shm_size must be set"),
    (dict(cache={"pvc_name": "x"}), "cache.mount_path"),
    (dict(leader_container={"name": "x"}), "name and an image"),
    (dict(nodes=2, worker_container=CONTAINER, lws={"restart_policy": "Always"}), "lws.restart_policy"),
    (dict(rdma={"enabled": True, "resource": ""}), "rdma.resource"),
])
def test_bad_descriptions_fail_with_the_field(changes, message):
    with pytest.raises(WorkloadError, match=message):
        build_workload(spec(**changes))


def test_empty_pvc_name_uses_an_ephemeral_cache():
    (deployment,) = build_workload(spec(cache={"pvc_name": "", "mount_path": "/models"}, pdb={"enabled": False}))
    assert {"name": "model-cache", "emptyDir": {}} in deployment["spec"]["template"]["spec"]["volumes"]
    assert len(build_workload(spec(pdb={"enabled": False}))) == 1
    assert shm_volume("1Gi")["emptyDir"]["medium"] == "Memory"
