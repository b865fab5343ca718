# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""plan_validation on inventories built from recorded API responses and on gpu_host facts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import cluster_inventory as inv
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import plan_validation as pv
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir

GIB = 2 ** 30
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


FIXTURES = fixture_dir("k8s_api", "discovery-aggregated-full.json")


def load(name):
    if FIXTURES is None:
        pytest.skip("tests/fixtures/k8s_api is only in the repository checkout")
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


def recorded_cluster(policies="clusterpolicies-ready.json", discovery="discovery-aggregated-full.json"):
    """What gpu_cluster_info returns for the recorded responses."""
    nodes = [item for page in (1, 2, 3) for item in load("nodes-limit4-page%d.json" % page)["items"]]
    entries = inv.build_nodes(nodes, load("pods-all.json")["items"])
    components = inv.detect_components(inv.parse_discovery(load(discovery)), load(policies)["items"] if policies else [])
    return {"nodes": entries, "summary": inv.summarize(entries), "components": components}


# gpu_memory_gib as gpu_sizing writes it: what CUDA reports, a little under the marketing size.
H100_GIB, A100_GIB, L40S_GIB = 79.11, 79.15, 44.39


def plan(tp=8, pp=1, nodes=1, replicas=1, gpu="H100-80GB", labels=("NVIDIA-H100-80GB-HBM3",), memory=H100_GIB, gpus_per_node=None,
         **extra):
    inner = {
        "tensor_parallel_size": tp, "pipeline_parallel_size": pp, "nodes": nodes,
        "gpus_per_node": gpus_per_node or tp * pp // nodes, "gpus_per_replica": tp * pp, "replicas": replicas,
        "gpu": gpu, "gpu_labels": list(labels), "gpu_memory_gib": memory, "dtype": "bfloat16", "max_num_seqs": 64,
    }
    inner.update(extra)
    return {"model": {"id": "llama-3.1-70b", "num_layers": 80, "hidden_size": 8192}, "plan": inner, "fits": True}


def gpu_node(name, product="NVIDIA-H100-80GB-HBM3", free=8, allocatable=8, memory=81559, rdma=False, rdma_nic=False,
             taints=(), ready=True, schedulable=True, zone="a", shared=False):
    return {
        "name": name, "ready": ready, "schedulable": schedulable, "taints": list(taints), "zone": zone, "problems": [],
        "gpu": {"allocatable": allocatable, "capacity": allocatable, "requested": allocatable - free, "free": free,
                "product": product, "base_product": inv.base_product(product), "memory_mib": memory, "shared": shared, "mig": False},
        "rdma": rdma, "rdma_nic": rdma_nic, "rdma_resources": {"rdma/ib": 1} if rdma else {},
    }


def components(lws=True, operator_state="ready"):
    return {
        "gpu_operator": {"installed": operator_state is not None, "state": operator_state, "ready": operator_state == "ready",
                         "cluster_policy": "cluster-policy" if operator_state else None, "message": None},
        "leaderworkerset": {"installed": lws},
    }


def codes(result, severity=None):
    return sorted(set(f["code"] for f in result["findings"] if severity is None or f["severity"] == severity))


def finding(result, code):
    matches = [f for f in result["findings"] if f["code"] == code]
    assert matches, "no %s in %s" % (code, codes(result))
    return matches[0]


# --------------------------------------------------------------------------------------------- recorded cluster


def test_tp8_h100_does_not_fit_when_the_only_free_h100_node_is_cordoned():
    result = pv.check_plan(plan(tp=8), cluster=recorded_cluster(), tolerations=[GPU_TOLERATION])
    assert not result["ok"]
    capacity = finding(result, "GPU_CAPACITY")
    assert capacity["severity"] == "error"
    assert "1 node with 8 free NVIDIA-H100-80GB-HBM3 GPUs" in capacity["message"]
    assert "6 free GPUs in total, at most 6 on one node" in capacity["message"]
    assert "at most 6 GPUs" in capacity["hint"]
    cordoned = finding(result, "NODE_CORDONED")
    assert cordoned["severity"] == "error" and cordoned["nodes"] == ["dgx-h100-1"]
    # The cordon taint is the cordon itself, not a second finding.
    assert "TAINT_NOT_TOLERATED" not in codes(result)
    assert result["candidate_nodes"] == [{"replica": 1, "placed": False, "product": None, "nodes": [], "gpus_per_node": 8}]


def test_tp4_h100_fits_on_the_partly_used_node():
    result = pv.check_plan(plan(tp=4), cluster=recorded_cluster(), tolerations=[GPU_TOLERATION], shm_size_bytes=8 * GIB)
    assert result["ok"], result["findings"]
    assert result["candidate_nodes"] == [
        {"replica": 1, "placed": True, "product": "NVIDIA-H100-80GB-HBM3", "nodes": ["dgx-h100-0"], "gpus_per_node": 4}
    ]
    # Still worth knowing: one H100 node is out of the pool.
    assert codes(result, "warning") == ["NODE_CORDONED"]


def test_untolerated_gpu_taint_blocks_every_h100_node():
    result = pv.check_plan(plan(tp=4), cluster=recorded_cluster(), tolerations=[])
    assert codes(result, "error") == ["GPU_CAPACITY", "NODE_CORDONED", "TAINT_NOT_TOLERATED"]
    taint = finding(result, "TAINT_NOT_TOLERATED")
    assert "nvidia.com/gpu=present:NoSchedule" in taint["message"]
    assert taint["nodes"] == ["dgx-h100-0", "dgx-h100-1"]
    assert "{key: nvidia.com/gpu, operator: Equal, value: present, effect: NoSchedule}" in taint["hint"]


def test_a100_two_replicas_greedy_placement_and_reasons():
    # hgx-a100-0 has 4 free, hgx-a100-2 only 1, hgx-a100-1 is NotReady, a100-mig-mixed-0 (4 free) has memory pressure.
    result = pv.check_plan(plan(tp=4, replicas=2, gpu="A100-80GB", labels=["NVIDIA-A100-SXM4-80GB"]),
                           cluster=recorded_cluster(), tolerations=[GPU_TOLERATION])
    capacity = finding(result, "GPU_CAPACITY")
    assert capacity["message"].startswith("Only 1 of 2 replicas fit (replica 2 is the first that cannot)")
    assert "Lower replicas to 1" in capacity["hint"]
    assert result["candidate_nodes"][0]["nodes"] == ["hgx-a100-0"]
    assert not result["candidate_nodes"][1]["placed"]
    not_ready = finding(result, "NODE_NOT_READY")
    assert not_ready["nodes"] == ["hgx-a100-1"] and not_ready["severity"] == "error"
    # The node controller's unreachable taints restate NotReady: only the memory-pressure taint is reported.
    taints = [f for f in result["findings"] if f["code"] == "TAINT_NOT_TOLERATED"]
    assert [t["nodes"] for t in taints] == [["a100-mig-mixed-0"]]
    assert "node.kubernetes.io/memory-pressure:NoSchedule" in taints[0]["message"]


def test_tolerating_everything_makes_room_for_the_second_a100_replica():
    result = pv.check_plan(plan(tp=4, replicas=2, gpu="A100-80GB", labels=["NVIDIA-A100-SXM4-80GB"]),
                           cluster=recorded_cluster(), tolerations=[{"operator": "Exists"}], shm_size_bytes=8 * GIB)
    assert "GPU_CAPACITY" not in codes(result)
    assert sorted(n for p in result["candidate_nodes"] for n in p["nodes"]) == ["a100-mig-mixed-0", "hgx-a100-0"]
    assert codes(result, "error") == []


def test_time_sliced_gpus_never_host_tensor_parallel_ranks():
    cluster = recorded_cluster()
    one = pv.check_plan(plan(tp=4, gpu="L40S", labels=["NVIDIA-L40S"], memory=L40S_GIB), cluster=cluster, shm_size_bytes=8 * GIB)
    assert one["ok"] and one["candidate_nodes"][0]["nodes"] == ["l40s-0"]
    assert finding(one, "GPU_SHARED")["severity"] == "warning"
    two = pv.check_plan(plan(tp=4, replicas=2, gpu="L40S", labels=["NVIDIA-L40S"], memory=L40S_GIB), cluster=cluster)
    assert finding(two, "GPU_SHARED")["severity"] == "error" and finding(two, "GPU_SHARED")["nodes"] == ["l40s-ts-0"]
    assert "GPU_CAPACITY" in codes(two, "error")
    # A single-GPU replica does not care about sharing.
    single = pv.check_plan(plan(tp=1, gpu="L40S", labels=["NVIDIA-L40S"], memory=L40S_GIB), cluster=cluster, shm_size_bytes=GIB)
    assert "GPU_SHARED" not in codes(single)


def test_memory_only_matching_accepts_gfd_mib_below_the_marketing_size():
    result = pv.check_plan(plan(tp=4, labels=(), gpu=None, memory=80), cluster=recorded_cluster(),
                           tolerations=[GPU_TOLERATION], shm_size_bytes=8 * GIB)
    assert result["candidate_nodes"][0]["placed"]
    assert result["candidate_nodes"][0]["product"] in ("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB")


def test_unknown_product_lists_what_the_cluster_has():
    result = pv.check_plan(plan(tp=8, gpu="H200", labels=["NVIDIA-H200"], memory=141), cluster=recorded_cluster())
    assert codes(result, "error") == ["GPU_PRODUCT_NOT_FOUND"]
    message = finding(result, "GPU_PRODUCT_NOT_FOUND")["message"]
    assert "NVIDIA-H200" in message and "NVIDIA-H100-80GB-HBM3 (2)" in message and "NVIDIA-L40S (1)" in message


def test_gpu_operator_states():
    plan4 = plan(tp=4)
    not_ready = recorded_cluster(policies="clusterpolicies-notready.json")
    strict = pv.check_plan(plan4, cluster=not_ready, tolerations=[GPU_TOLERATION], require_gpu_operator=True)
    operator = finding(strict, "GPU_OPERATOR_NOT_READY")
    assert operator["severity"] == "error" and "notReady" in operator["message"]
    assert "state-device-plugin" in operator["message"] and "fabric manager" in operator["hint"]
    relaxed = pv.check_plan(plan4, cluster=not_ready, tolerations=[GPU_TOLERATION])
    assert finding(relaxed, "GPU_OPERATOR_NOT_READY")["severity"] == "warning"

    bare = recorded_cluster(policies=None, discovery="discovery-aggregated-bare.json")
    missing = pv.check_plan(plan4, cluster=bare, tolerations=[GPU_TOLERATION], require_gpu_operator=True)
    assert finding(missing, "GPU_OPERATOR_MISSING")["severity"] == "error"
    assert "GPU_OPERATOR_MISSING" not in codes(pv.check_plan(plan4, cluster=bare, tolerations=[GPU_TOLERATION]))


def test_multi_node_needs_leaderworkerset():
    bare = recorded_cluster(policies=None, discovery="discovery-aggregated-bare.json")
    result = pv.check_plan(plan(tp=4, pp=2, nodes=2, gpus_per_node=4, gpu="A100-80GB", labels=["NVIDIA-A100-SXM4-80GB"]),
                           cluster=bare, tolerations=[{"operator": "Exists"}])
    assert finding(result, "LWS_MISSING")["severity"] == "error"
    assert result["requirements"]["mode"] == "multi_node" and result["requirements"]["slots_per_replica"] == 2
    assert sorted(result["candidate_nodes"][0]["nodes"]) == ["a100-mig-mixed-0", "hgx-a100-0"]


# --------------------------------------------------------------------------------------------- synthetic clusters


def test_greedy_uses_the_roomiest_nodes_first_for_multi_node_replicas():
    # One node can host 3 pods of 8 GPUs, three others one each: 3 two-node replicas fit (A+B, A+C, A+D).
    # Taking the smallest nodes first would place only 2.
    nodes = [gpu_node("big", free=24, allocatable=24, rdma=True)] + [gpu_node("n%d" % i, rdma=True) for i in range(3)]
    result = pv.check_plan(plan(tp=8, pp=2, nodes=2, replicas=3), cluster={"nodes": nodes, "components": components()},
                           shm_size_bytes=8 * GIB)
    assert result["ok"], result["findings"]
    assert [p["nodes"] for p in result["candidate_nodes"]] == [["big", "n0"], ["big", "n1"], ["big", "n2"]]


def test_totals_are_not_enough_one_replica_may_not_mix_products():
    # 16 free GPUs of accepted products, but one H100 node and one A100 node cannot form one 2-node replica.
    nodes = [gpu_node("h100-a", rdma=True), gpu_node("a100-a", product="NVIDIA-A100-SXM4-80GB", memory=81920, rdma=True)]
    accepted = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"]
    result = pv.check_plan(plan(tp=8, pp=2, nodes=2, labels=accepted), cluster={"nodes": nodes, "components": components()})
    assert "GPU_CAPACITY" in codes(result, "error")
    assert "16 free GPUs in total" in finding(result, "GPU_CAPACITY")["message"]
    mixed = finding(result, "MIXED_GPU_PRODUCTS")
    assert mixed["severity"] == "warning" and "nvidia.com/gpu.product" in mixed["hint"]


def test_multi_node_without_rdma_names_the_nccl_settings_and_ports():
    nodes = [gpu_node("a"), gpu_node("b", rdma_nic=True)]
    result = pv.check_plan(plan(tp=8, pp=2, nodes=2), cluster={"nodes": nodes, "components": components()}, shm_size_bytes=8 * GIB)
    assert result["ok"]
    missing = finding(result, "RDMA_MISSING")
    assert missing["nodes"] == ["a"]
    text = missing["message"] + missing["hint"]
    for needle in ("NCCL_SOCKET_IFNAME", "NCCL_IB_HCA", "29501", "6379", "NetworkPolicy", "32768-60999"):
        assert needle in text, needle
    not_exposed = finding(result, "RDMA_NOT_ALLOCATABLE")
    assert not_exposed["nodes"] == ["b"] and "NET/Socket" in not_exposed["message"] and "IPC_LOCK" in not_exposed["hint"]


def test_multi_node_with_rdma_everywhere_is_quiet():
    nodes = [gpu_node("a", rdma=True), gpu_node("b", rdma=True)]
    result = pv.check_plan(plan(tp=8, pp=2, nodes=2), cluster={"nodes": nodes, "components": components()}, shm_size_bytes=8 * GIB)
    assert result["findings"] == []


def test_tp_larger_than_a_node_is_flagged():
    nodes = [gpu_node("a", free=4, allocatable=4, rdma=True), gpu_node("b", free=4, allocatable=4, rdma=True)]
    result = pv.check_plan(plan(tp=8, nodes=2, gpus_per_node=4), cluster={"nodes": nodes, "components": components()},
                           shm_size_bytes=8 * GIB)
    assert codes(result) == ["TP_ACROSS_NODES"]


def test_deployment_mode_resolution():
    assert pv.requirements(plan(tp=4, pp=2, nodes=2, gpus_per_node=4))["mode"] == "multi_node"
    assert pv.requirements(plan(tp=8))["mode"] == "single_node"
    # PP=2 inside one 8-GPU node: the roles deploy one pod (a Deployment), so auto agrees.
    within = pv.requirements(plan(tp=4, pp=2, nodes=1, gpus_per_node=8))
    assert (within["mode"], within["slots_per_replica"], within["gpus_per_slot"]) == ("single_node", 1, 8)
    # gpu_sizing's gpus_per_node is the node size; a multi-node pod takes its share of the replica.
    spread = pv.requirements(plan(tp=4, pp=4, nodes=2, gpus_per_node=8))
    assert (spread["mode"], spread["slots_per_replica"], spread["gpus_per_slot"]) == ("multi_node", 2, 8)
    sample = pv.requirements(plan(tp=4, nodes=1, gpus_per_node=8))
    assert sample["gpus_per_slot"] == 4
    # pipeline stages inside one pod when asked to: one 8-GPU slot, no LeaderWorkerSet needed
    forced = pv.requirements(plan(tp=4, pp=2, nodes=2, gpus_per_node=4), deployment_mode="single_node")
    assert (forced["slots_per_replica"], forced["gpus_per_slot"]) == (1, 8)
    result = pv.check_plan(plan(tp=4, pp=2, nodes=2, gpus_per_node=4), deployment_mode="single_node",
                           cluster={"nodes": [gpu_node("a")], "components": components(lws=False)}, shm_size_bytes=8 * GIB)
    assert result["ok"] and "LWS_MISSING" not in codes(result)


def test_replicas_argument_overrides_the_plan():
    nodes = [gpu_node("a"), gpu_node("b")]
    result = pv.check_plan(plan(tp=8, replicas=1), replicas=3, cluster={"nodes": nodes, "components": components()})
    assert finding(result, "GPU_CAPACITY")["message"].startswith("Only 2 of 3 replicas fit")


# --------------------------------------------------------------------------------------------- tolerations


@pytest.mark.parametrize(
    "toleration, taint, expected",
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
         {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "true"}, {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, {"key": "nvidia.com/gpu", "effect": "NoSchedule"}, False),
        ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
        ({"operator": "Exists", "effect": "NoSchedule"}, {"key": "anything", "effect": "NoExecute"}, False),
        ({"key": "dedicated", "operator": "Equal", "value": ""}, {"key": "dedicated", "effect": "NoSchedule"}, True),
        ({"key": "other", "operator": "Exists"}, {"key": "nvidia.com/gpu", "effect": "NoSchedule"}, False),
    ],
)
def test_toleration_matching_is_the_kubernetes_rule(toleration, taint, expected):
    assert pv.tolerates(pv.normalize_tolerations([toleration])[0], taint) is expected


def test_prefer_no_schedule_taints_do_not_block():
    taints = [{"key": "spot", "effect": "PreferNoSchedule"}, {"key": "gpu", "effect": "NoExecute"}]
    assert pv.untolerated_taints(taints, []) == [{"key": "gpu", "effect": "NoExecute"}]


@pytest.mark.parametrize(
    "tolerations, message",
    [
        ([{"key": "a", "operator": "In"}], "tolerations\\[0\\].operator must be one of Exists, Equal, got 'In'"),
        ([{"operator": "Equal", "value": "x"}], "tolerations\\[0\\] has no key"),
        ([{"key": "a", "effect": "Never"}], "tolerations\\[0\\].effect must be"),
        (["nvidia.com/gpu"], "tolerations\\[0\\] must be a dict"),
    ],
)
def test_bad_tolerations_are_named(tolerations, message):
    with pytest.raises(pv.PlanCheckError, match=message):
        pv.normalize_tolerations(tolerations)


# --------------------------------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.pop("plan"), "plan.plan is missing"),
        (lambda p: p["plan"].update(tensor_parallel_size=0), "plan.plan.tensor_parallel_size must be a positive integer, got 0"),
        (lambda p: p["plan"].update(pipeline_parallel_size="two"), "plan.plan.pipeline_parallel_size must be a positive integer, got 'two'"),
        (lambda p: p["plan"].update(gpu_labels=[], gpu_memory_gib=None), "needs gpu_labels or gpu_memory_gib"),
        (lambda p: p["plan"].update(gpu_memory_gib="lots"), "gpu_memory_gib must be a number of GiB, got 'lots'"),
    ],
)
def test_unusable_plans_are_refused_naming_the_field(mutate, message):
    bad = plan()
    mutate(bad)
    with pytest.raises(pv.PlanCheckError, match=message):
        pv.check_plan(bad)


def test_unusable_arguments_are_refused():
    with pytest.raises(pv.PlanCheckError, match="deployment_mode must be one of auto, single_node, multi_node, got 'lws'"):
        pv.check_plan(plan(), deployment_mode="lws")
    with pytest.raises(pv.PlanCheckError, match="cluster.nodes must be the list"):
        pv.check_plan(plan(), cluster={"changed": False})
    with pytest.raises(pv.PlanCheckError, match="hosts must be a list"):
        pv.check_plan(plan(), hosts="gpu01")


def test_inner_plan_dict_is_accepted():
    assert pv.requirements(plan()["plan"])["tensor_parallel_size"] == 8


def test_plan_that_does_not_fit_and_no_facts():
    bad = plan()
    bad["fits"] = False
    result = pv.check_plan(bad)
    assert codes(result, "error") == ["PLAN_DOES_NOT_FIT"] and codes(result, "warning") == ["NO_FACTS"]
    assert result["findings"][0]["severity"] == "error"  # errors first


# --------------------------------------------------------------------------------------------- /dev/shm


def test_default_shm_is_an_error_for_nccl():
    result = pv.check_plan(plan(tp=8), cluster={"nodes": [gpu_node("a")], "components": components()}, shm_size_bytes=64 * 2 ** 20)
    shm = finding(result, "SHM_TOO_SMALL")
    assert shm["severity"] == "error"
    assert "64 MiB (the container default)" in shm["message"] and "at least 1 GiB" in shm["message"]
    assert "emptyDir {medium: Memory, sizeLimit: 5Gi}" in shm["hint"]


def test_shm_between_the_floor_and_the_sizing_is_a_warning():
    result = pv.check_plan(plan(tp=8), cluster={"nodes": [gpu_node("a")], "components": components()}, shm_size_bytes=2 * GIB)
    shm = finding(result, "SHM_TOO_SMALL")
    assert shm["severity"] == "warning" and "below the 5 GiB sized for 8 NCCL ranks" in shm["message"]
    assert pv.check_plan(plan(tp=8), cluster={"nodes": [gpu_node("a")], "components": components()},
                         shm_size_bytes=5 * GIB)["findings"] == []


def test_single_gpu_small_shm_is_only_a_warning():
    result = pv.check_plan(plan(tp=1), cluster={"nodes": [gpu_node("a")], "components": components()}, shm_size_bytes=64 * 2 ** 20)
    assert finding(result, "SHM_TOO_SMALL")["severity"] == "warning"


# --------------------------------------------------------------------------------------------- host facts


def _links(count, kind_of):
    links = []
    for a in range(count):
        for b in range(a + 1, count):
            kind = kind_of(a, b)
            links.append({"a": a, "b": b, "type": "NVLINK" if kind.startswith("NV") else kind,
                          "nvlinks": int(kind[2:]) if kind.startswith("NV") else 0, "raw": kind})
    return links


def host(name, gpu_name, count, memory_mib, kind_of, islands, shm=256 * GIB, rdma=("mlx5_0",), mig=()):
    gpus = [{"index": i, "uuid": "GPU-%s-%d" % (name, i), "name": gpu_name, "memory_mib": memory_mib,
             "compute_capability": "9.0", "pci_bus_id": "00000000:%02X:00.0" % (0x18 + i),
             "mig_mode": "Enabled" if i in mig else "Disabled"} for i in range(count)]
    return {"name": name, "gpus": gpus, "gpu_count": count, "driver_version": "580.159.04", "cuda_version": "13.0",
            "links": _links(count, kind_of), "nvlink_islands": islands,
            "max_nvlink_tp": max([len(i) for i in islands] or [1]),
            "all_pairs_nvlink": len(islands) == 1 and len(islands[0]) == count, "shm_bytes": shm, "rdma_devices": list(rdma)}


def nvswitch_h100(name):
    return host(name, "NVIDIA H100 80GB HBM3", 8, 81559, lambda a, b: "NV18", [list(range(8))])


def pcie_l40s(name):
    # Two PCIe switches per socket; GPUs 0-3 on socket 0, 4-7 on socket 1.
    return host(name, "NVIDIA L40S", 8, 46068, lambda a, b: "PXB" if a // 2 == b // 2 else ("NODE" if a // 4 == b // 4 else "SYS"),
                [], rdma=())


def bridged_a100(name):
    # NVLink bridges join GPUs in fours (PCIe A100 with 3-way bridges); the islands talk over PCIe/SMP.
    return host(name, "NVIDIA A100 80GB PCIe", 8, 81920, lambda a, b: "NV12" if a // 4 == b // 4 else "SYS",
                [[0, 1, 2, 3], [4, 5, 6, 7]])


def test_nvswitch_host_is_quiet():
    result = pv.check_plan(plan(tp=8), hosts=[nvswitch_h100("dgx01")], shm_size_bytes=8 * GIB)
    assert result["findings"] == [] and result["candidate_nodes"][0]["nodes"] == ["dgx01"]


def test_tp_spanning_nvlink_islands_is_a_warning_with_the_split_to_use():
    result = pv.check_plan(plan(tp=8, gpu="A100-80GB", labels=["NVIDIA-A100-80GB-PCIe"]), hosts=[bridged_a100("gpu07")],
                           shm_size_bytes=8 * GIB)
    island = finding(result, "NVLINK_ISLAND")
    assert island["severity"] == "warning" and island["nodes"] == ["gpu07"]
    assert "largest island 4 GPUs" in island["message"] and "TP=4 x PP=2" in island["hint"]
    assert result["ok"]


def test_pcie_only_tp4_warns_with_the_expected_cost():
    result = pv.check_plan(plan(tp=4, gpu="L40S", labels=["NVIDIA-L40S"], memory=L40S_GIB), hosts={"l40s-a": pcie_l40s("x")},
                           shm_size_bytes=8 * GIB)
    pcie = finding(result, "PCIE_TP")
    assert pcie["severity"] == "warning" and pcie["nodes"] == ["l40s-a"]
    # 80 layers x 2 all-reduces x 1.5 (ring, n=4) x 64 seqs x 8192 x 2 bytes = 251.7 MB per decode step.
    assert "~252 MB of all-reduce traffic" in pcie["message"] and "~10.1 ms over PCIe" in pcie["message"]
    assert "TP=2 x PP=2" in pcie["hint"]
    # TP=2 over PCIe is fine; TP=8 crosses the CPU sockets.
    assert "PCIE_TP" not in codes(pv.check_plan(plan(tp=2, gpu="L40S", labels=["NVIDIA-L40S"], memory=L40S_GIB),
                                                hosts=[pcie_l40s("a")], shm_size_bytes=8 * GIB))
    wide = pv.check_plan(plan(tp=8, gpu="L40S", labels=["NVIDIA-L40S"], memory=L40S_GIB), hosts=[pcie_l40s("a")], shm_size_bytes=8 * GIB)
    assert "SYS (across CPU sockets)" in finding(wide, "PCIE_TP")["message"]


def test_host_capacity_without_a_cluster():
    small = host("gpu-small", "NVIDIA H100 80GB HBM3", 2, 81559, lambda a, b: "NV18", [[0, 1]])
    result = pv.check_plan(plan(tp=4), hosts=[small, copy.deepcopy(small)])
    capacity = finding(result, "GPU_CAPACITY")
    assert capacity["severity"] == "error" and "at most 2 on one node" in capacity["message"]


def test_host_facts_multi_node_without_rdma_devices():
    hosts = [host("h%d" % i, "NVIDIA H100 80GB HBM3", 8, 81559, lambda a, b: "NV18", [list(range(8))], rdma=()) for i in range(2)]
    result = pv.check_plan(plan(tp=8, pp=2, nodes=2), hosts=hosts, shm_size_bytes=8 * GIB)
    assert finding(result, "RDMA_MISSING")["nodes"] == ["h0", "h1"]
    assert "per the host facts" in finding(result, "RDMA_MISSING")["message"]


def test_host_shm_mixed_products_and_mig():
    odd = host("odd", "NVIDIA H100 80GB HBM3", 4, 81559, lambda a, b: "NV18", [[0, 1, 2, 3]], shm=64 * 2 ** 20, mig=(3,))
    odd["gpus"][2]["name"] = "NVIDIA H100 PCIe"
    result = pv.check_plan(plan(tp=2), hosts=[odd])
    assert finding(result, "SHM_TOO_SMALL")["nodes"] == ["odd"]
    assert finding(result, "MIXED_GPU_PRODUCTS")["nodes"] == ["odd"]
    assert finding(result, "MIG_ENABLED")["nodes"] == ["odd"]


def test_hosts_are_tied_to_the_cluster_placement_by_name():
    cluster = {"nodes": [gpu_node("dgx01"), gpu_node("l40s-a", product="NVIDIA-L40S", memory=46068)], "components": components()}
    hosts = {"dgx01": nvswitch_h100("dgx01"), "l40s-a": pcie_l40s("l40s-a")}
    result = pv.check_plan(plan(tp=8), cluster=cluster, hosts=hosts, shm_size_bytes=8 * GIB)
    # The replica lands on dgx01; the PCIe host is not part of the placement, so no PCIE_TP.
    assert result["candidate_nodes"][0]["nodes"] == ["dgx01"] and result["findings"] == []


def test_sanitize_product_matches_gfd():
    assert pv.sanitize_product("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"
    assert pv.sanitize_product(" NVIDIA  L40S ") == "NVIDIA-L40S"


def test_format_findings_lines():
    result = pv.check_plan(plan(tp=8), cluster={"nodes": [], "components": components()})
    lines = pv.format_findings(result["findings"])
    assert lines[0].startswith("ERROR GPU_PRODUCT_NOT_FOUND: ") and " Fix: " in lines[0]


def test_every_matching_node_excluded_says_so_and_condition_taints_are_not_to_be_tolerated():
    result = pv.check_plan(plan(tp=4, gpu="A100-80GB", labels=["NVIDIA-A100-SXM4-80GB"]), cluster=recorded_cluster())
    capacity = finding(result, "GPU_CAPACITY")
    assert "all 4 nodes with that GPU are excluded" in capacity["message"]
    assert "re-plan" not in capacity["hint"]
    pressure = [f for f in result["findings"] if "memory-pressure" in f["message"]][0]
    assert pressure["hint"].startswith("Kubernetes sets this taint from the node's condition")


def test_nodes_on_a_driver_older_than_the_image_cuda_are_refused():
    # The recorded nodes run R570: CUDA 13.0 (vllm/vllm-openai:v0.34.0) needs R580.
    result = pv.check_plan(plan(tp=8), cluster=recorded_cluster(), tolerations=[GPU_TOLERATION],
                           engine_image="vllm/vllm-openai:v0.34.0")
    old = finding(result, "DRIVER_TOO_OLD")
    assert old["severity"] == "error" and not result["ok"]
    assert "CUDA 13.0" in old["message"] and "R580" in old["message"] and "570.172.08" in old["message"]
    # Without a known image (or with one built on an older CUDA) nothing is claimed.
    assert "DRIVER_TOO_OLD" not in codes(pv.check_plan(plan(tp=8), cluster=recorded_cluster(), tolerations=[GPU_TOLERATION]))
    assert "DRIVER_TOO_OLD" not in codes(pv.check_plan(plan(tp=8), cluster=recorded_cluster(), tolerations=[GPU_TOLERATION],
                                                       engine_image="registry.example/custom:1"))


def test_host_driver_versions_are_checked_too():
    host = {"name": "gpu-a", "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559,
                                       "driver_version": "550.163.01"} for i in range(8)]}
    result = pv.check_plan(plan(tp=8), hosts=[host], engine_image="vllm/vllm-openai:v0.34.0")
    assert "gpu-a (550.163.01)" in finding(result, "DRIVER_TOO_OLD")["message"]
    fresh = dict(host, gpus=[dict(g, driver_version="580.95.05") for g in host["gpus"]])
    assert "DRIVER_TOO_OLD" not in codes(pv.check_plan(plan(tp=8), hosts=[fresh], engine_image="vllm/vllm-openai:v0.34.0"))
