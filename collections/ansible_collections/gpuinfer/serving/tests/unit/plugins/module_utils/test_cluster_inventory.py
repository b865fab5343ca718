# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""cluster_inventory against API responses in the exact wire format (tests/fixtures/k8s_api)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
from decimal import Decimal

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import cluster_inventory as inv
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir, load_json


FIXTURES = fixture_dir("k8s_api", "discovery-aggregated-full.json")
pytestmark = pytest.mark.skipif(FIXTURES is None, reason="tests/fixtures/k8s_api is only in the repository checkout")


def load(name):
    return load_json(FIXTURES, name)


def all_nodes():
    return [item for page in (1, 2, 3) for item in load("nodes-limit4-page%d.json" % page)["items"]]


@pytest.fixture(scope="module")
def entries():
    return dict((e["name"], e) for e in inv.build_nodes(all_nodes(), load("pods-all.json")["items"]))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8", Decimal(8)),
        ("500m", Decimal("0.5")),
        ("16Gi", Decimal(16 * 2 ** 30)),
        ("2113442756Ki", Decimal(2113442756 * 1024)),
        ("1e3", Decimal(1000)),
        ("1.5k", Decimal(1500)),
        ("64M", Decimal(64 * 10 ** 6)),
        (None, Decimal(0)),
        (4, Decimal(4)),
    ],
)
def test_parse_quantity(text, expected):
    assert inv.parse_quantity(text) == expected


def test_parse_quantity_rejects_garbage_naming_it():
    with pytest.raises(inv.InventoryError, match="'eight' is not a Kubernetes quantity"):
        inv.parse_quantity("eight")


def _pod(containers=(), init=(), node="n1", phase="Running", overhead=None):
    def c(gpu, **extra):
        entry = {"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(gpu)}, "limits": {"nvidia.com/gpu": str(gpu)}}}
        entry.update(extra)
        return entry

    spec = {"nodeName": node, "containers": [c(g) for g in containers], "initContainers": [c(g, **x) for g, x in init]}
    if overhead:
        spec["overhead"] = overhead
    return {"spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize(
    "containers, init, expected",
    [
        ((2, 1), (), 3),
        ((2, 1), ((4, {}),), 4),  # init container larger than the sum of the app containers
        ((2, 1), ((2, {}),), 3),
        # sidecar (1) runs alongside the later init container (6) and the app (2): max(2+1, 6+1) = 7
        ((2,), ((1, {"restartPolicy": "Always"}), (6, {})), 7),
        # a sidecar started after a big init container does not add to it: max(2+1, 6) = 6
        ((2,), ((6, {}), (1, {"restartPolicy": "Always"})), 6),
        ((), (), 0),
    ],
)
def test_pod_request_follows_the_scheduler(containers, init, expected):
    assert inv.pod_request(_pod(containers, init)) == expected


def test_pod_request_uses_limits_when_requests_are_absent_and_adds_overhead():
    pod = {"spec": {"nodeName": "n", "containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
                    "overhead": {"nvidia.com/gpu": "1"}}, "status": {"phase": "Running"}}
    assert inv.pod_request(pod) == 3


def test_terminated_and_unscheduled_pods_hold_nothing():
    pods = [_pod((8,), phase="Succeeded"), _pod((8,), phase="Failed"), _pod((8,), node=None, phase="Pending"),
            _pod((2,), phase="Pending"), _pod((1,), phase="Unknown")]
    assert inv.requested_by_node(pods) == {"n1": 3}


def test_requested_from_the_recorded_pod_list(entries):
    requested = dict((name, e["gpu"]["requested"]) for name, e in entries.items())
    assert requested == {
        "a100-mig-0": 0,
        "a100-mig-mixed-0": 0,  # its pod asks for nvidia.com/mig-1g.10gb, not whole GPUs
        "cpu-0": 0,
        "dgx-h100-0": 2,  # the Succeeded 8-GPU job does not count
        "dgx-h100-1": 0,  # the Failed 8-GPU job does not count
        "gb200-nvl72-0": 4,
        "hgx-a100-0": 4,  # scheduled pod in its 4-GPU init container (app containers only 2 + 1)
        "hgx-a100-1": 8,
        "hgx-a100-2": 7,  # sidecar math
        "l40s-0": 0,
        "l40s-ts-0": 3,
    }


def test_server_side_filtered_pages_give_the_same_requests_as_the_full_list():
    # The module asks for status.phase!=Succeeded,status.phase!=Failed,spec.nodeName!= ; the pages recorded with
    # that selector must account exactly what the unfiltered list accounts.
    paged = {}
    for page in (1, 2, 3):
        inv.requested_by_node(load("pods-selected-limit4-page%d.json" % page)["items"], into=paged)
    assert paged == inv.requested_by_node(load("pods-all.json")["items"])


def test_node_entry_fields(entries):
    h100 = entries["dgx-h100-0"]
    assert h100["ready"] and h100["schedulable"]
    assert h100["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert h100["gpu"]["capacity"] == 8 and h100["gpu"]["allocatable"] == 8 and h100["gpu"]["free"] == 6
    assert h100["gpu"]["product"] == "NVIDIA-H100-80GB-HBM3" and h100["gpu"]["memory_mib"] == 81559
    assert h100["gpu"]["family"] == "hopper" and h100["gpu"]["count"] == 8 and h100["gpu"]["mig_strategy"] == "single"
    assert h100["gpu"]["driver_version"] == {"major": "570", "minor": "172", "revision": "08", "full": "570.172.08"}
    assert h100["rdma_resources"] == {"rdma/rdma_shared_device_a": 63} and h100["rdma"] and h100["rdma_nic"]
    assert h100["nic_labels"]["feature.node.kubernetes.io/pci-15b3.present"] == "true"
    assert h100["gfd_labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert h100["cpu_allocatable"] == 222.0
    assert h100["memory_allocatable_bytes"] == 2096665540 * 1024
    assert h100["zone"] == "us-east-1a"

    cordoned = entries["dgx-h100-1"]
    assert cordoned["ready"] and not cordoned["schedulable"]
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"} in cordoned["taints"]

    assert entries["hgx-a100-1"]["ready"] is False
    assert entries["a100-mig-mixed-0"]["problems"] == ["MemoryPressure"]
    assert entries["a100-mig-mixed-0"]["mig_resources"] == {"nvidia.com/mig-1g.10gb": 14}

    gb200 = entries["gb200-nvl72-0"]
    assert gb200["gpu"]["clique"] == "3f2a9c1e-6b7d-4e21-9a0f-5c8d2e7b1a44.32766"
    assert gb200["rdma_resources"] == {"nvidia.com/hostdev": 4} and gb200["gpu"]["free"] == 0

    nic_only = entries["hgx-a100-0"]
    assert nic_only["rdma_nic"] and not nic_only["rdma"]

    shared = entries["l40s-ts-0"]
    assert shared["gpu"]["shared"] and shared["gpu"]["base_product"] == "NVIDIA-L40S" and shared["gpu"]["free"] == 13
    assert entries["a100-mig-0"]["gpu"]["mig"] and not entries["a100-mig-mixed-0"]["gpu"]["mig"]

    cpu = entries["cpu-0"]
    assert cpu["gpu"]["allocatable"] == 0 and cpu["gpu"]["product"] is None and cpu["taints"] == []


def test_free_never_goes_negative():
    node = load("nodes-limit4-page1.json")["items"][0]
    entry = inv.node_entry(node, requested=99)
    assert entry["gpu"]["free"] == 0


def test_custom_gpu_resource_name():
    node = copy.deepcopy(load("nodes-limit4-page1.json")["items"][0])  # a100-mig-0
    assert node["metadata"]["name"] == "a100-mig-0"
    node["status"]["allocatable"]["amd.com/gpu"] = "8"
    entry = inv.node_entry(node, requested=3, gpu_resource="amd.com/gpu")
    assert entry["gpu"]["resource"] == "amd.com/gpu" and entry["gpu"]["allocatable"] == 8 and entry["gpu"]["free"] == 5


def test_node_without_name_is_reported():
    with pytest.raises(inv.InventoryError, match="no metadata.name"):
        inv.node_entry({"metadata": {}, "status": {}})


def test_summary_by_product(entries):
    summary = inv.summarize(list(entries.values()))
    assert "cpu" not in " ".join(summary)  # nodes without GPUs are not summarised
    h100 = summary["NVIDIA-H100-80GB-HBM3"]
    # The cordoned node's 8 GPUs are allocatable but not free for new pods.
    assert (h100["nodes"], h100["ready_nodes"], h100["schedulable_nodes"], h100["rdma_nodes"]) == (2, 2, 1, 2)
    assert (h100["total_gpus"], h100["requested_gpus"], h100["free_gpus"], h100["largest_free_block"]) == (16, 2, 6, 6)
    assert h100["nodes_with_free"] == {"1": 1, "2": 1, "4": 1, "8": 0}
    a100 = summary["NVIDIA-A100-SXM4-80GB"]
    # hgx-a100-1 is NotReady: its GPUs count in the total, never as free.
    assert (a100["nodes"], a100["schedulable_nodes"], a100["total_gpus"], a100["free_gpus"]) == (4, 3, 28, 9)
    assert a100["gpus_per_node"] == [4, 8] and a100["largest_free_block"] == 4
    assert a100["nodes_with_free"] == {"1": 3, "2": 2, "4": 2, "8": 0}
    assert summary["NVIDIA-L40S-SHARED"]["nodes_with_free"]["16"] == 0
    assert summary["NVIDIA-GB200"]["free_gpus"] == 0


def test_unlabelled_gpu_nodes_are_summarised_separately():
    node = copy.deepcopy(load("nodes-limit4-page3.json")["items"][0])
    for key in list(node["metadata"]["labels"]):
        if key.startswith("nvidia.com/"):
            del node["metadata"]["labels"][key]
    summary = inv.summarize([inv.node_entry(node)])
    assert list(summary) == ["unlabelled"]


def test_components_everything_installed():
    discovery = inv.parse_discovery(load("discovery-aggregated-full.json"))
    components = inv.detect_components(
        discovery, load("clusterpolicies-ready.json")["items"], [load("apiservice-v1beta2.custom.metrics.k8s.io.json")]
    )
    assert components["gpu_operator"]["installed"] and components["gpu_operator"]["ready"]
    assert components["gpu_operator"]["state"] == "ready" and components["gpu_operator"]["cluster_policy"] == "cluster-policy"
    assert components["gpu_operator"]["nvidia_driver_crd"] is True
    assert components["leaderworkerset"] == {"installed": True, "version": "v1"}
    assert components["prometheus_operator"] == {"installed": True, "service_monitor": True, "pod_monitor": True}
    assert components["keda"]["installed"] and components["keda"]["external_metrics"]
    assert components["prometheus_adapter"] == {"installed": True, "available": True, "version": "v1beta2"}
    assert components["nim_operator"] == {"installed": True, "nim_service": True, "nim_cache": True}
    assert components["metrics_server"]["installed"] and components["node_feature_discovery"]["installed"]


def test_components_bare_cluster_with_a_stale_adapter():
    components = inv.detect_components(inv.parse_discovery(load("discovery-aggregated-bare.json")), [], None)
    assert components["gpu_operator"] == {
        "installed": False, "state": None, "ready": False, "cluster_policy": None, "message": None,
        "cluster_policies": [], "nvidia_driver_crd": False,
    }
    for name in ("leaderworkerset", "keda", "nim_operator", "metrics_server", "node_feature_discovery"):
        assert components[name]["installed"] is False, name
    assert components["prometheus_operator"]["service_monitor"] is False
    # The APIService is registered but its backend is down: discovery marks it Stale.
    assert components["prometheus_adapter"]["installed"] and components["prometheus_adapter"]["available"] is False


def test_components_not_ready_policy_skips_ignored_duplicates():
    discovery = inv.parse_discovery(load("discovery-aggregated-full.json"))
    operator = inv.detect_components(discovery, load("clusterpolicies-notready.json")["items"])["gpu_operator"]
    assert operator["state"] == "notReady" and not operator["ready"]
    assert operator["cluster_policy"] == "cluster-policy"
    assert "state-device-plugin" in operator["message"]
    assert [p["state"] for p in operator["cluster_policies"]] == ["notReady", "ignored"]


def test_components_unreadable_or_missing_cluster_policy():
    discovery = inv.parse_discovery(load("discovery-aggregated-full.json"))
    assert inv.detect_components(discovery, None)["gpu_operator"]["state"] == "unknown"
    assert inv.detect_components(discovery, [])["gpu_operator"]["state"] == "missing"


def test_legacy_discovery_completed_with_resource_lists():
    discovery = inv.parse_discovery(load("discovery-legacy.json"))
    assert discovery["nvidia.com"]["resources"] is None and discovery["nvidia.com"]["preferred"] == "v1"
    assert inv.has_resource(discovery, "nvidia.com", "clusterpolicies") is None
    for name in ("apiresources-nvidia.com-v1.json", "apiresources-leaderworkerset.x-k8s.io-v1.json",
                 "apiresources-monitoring.coreos.com-v1.json"):
        inv.add_resource_list(discovery, load(name))
    assert inv.has_resource(discovery, "nvidia.com", "clusterpolicies") is True
    components = inv.detect_components(discovery, load("clusterpolicies-ready.json")["items"])
    assert components["gpu_operator"]["ready"] and components["leaderworkerset"]["installed"]
    # This Prometheus Operator install has no ServiceMonitor CRD: group present, resource absent.
    assert components["prometheus_operator"]["installed"] and not components["prometheus_operator"]["service_monitor"]
    assert components["prometheus_operator"]["pod_monitor"]
    assert not components["keda"]["installed"] and not components["prometheus_adapter"]["installed"]


def test_parse_discovery_rejects_other_documents():
    with pytest.raises(inv.InventoryError, match="kind 'Status'"):
        inv.parse_discovery({"kind": "Status", "status": "Failure"})


def test_excluded_pods_leave_their_gpus_free():
    # A re-run of a deploy must see the GPUs of the instance it replaces as available.
    own = {"metadata": {"namespace": "llm", "labels": {"app.kubernetes.io/instance": "llama"}},
           "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"nvidia.com/gpu": "8"}}}]},
           "status": {"phase": "Running"}}
    other = {"metadata": {"namespace": "team-b", "labels": {"app.kubernetes.io/instance": "llama"}},
             "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"nvidia.com/gpu": "2"}}}]},
             "status": {"phase": "Running"}}
    exclude = {"namespace": "llm", "labels": {"app.kubernetes.io/instance": "llama"}}
    assert inv.requested_by_node([own, other], exclude=exclude) == {"n1": 2}
    assert inv.requested_by_node([own, other]) == {"n1": 10}
    # An empty label set excludes nothing rather than everything in the namespace.
    assert inv.requested_by_node([own, other], exclude={"namespace": "llm", "labels": {}}) == {"n1": 10}


def test_a_node_the_gpu_operator_found_a_host_driver_on():
    def node(labels):
        return {"metadata": {"name": "n", "labels": labels}, "spec": {},
                "status": {"allocatable": {"cpu": "8", "memory": "1Gi", "nvidia.com/gpu": "8"}, "conditions": []}}

    assert inv.node_entry(node({"nvidia.com/gpu.deploy.driver": "pre-installed"}), 0)["gpu"]["driver_preinstalled"] is True
    assert inv.node_entry(node({"nvidia.com/gpu.deploy.driver": "true"}), 0)["gpu"]["driver_preinstalled"] is False
    assert inv.node_entry(node({}), 0)["gpu"]["driver_preinstalled"] is False
