# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""k8s_labelled's pure logic: discovery (aggregated and legacy), selectors, list paths, owned objects, delete order."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_labelled as kl
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir, load_json

FIXTURES = fixture_dir("k8s_api", "discovery-aggregated-full.json")
needs_fixtures = pytest.mark.skipif(FIXTURES is None, reason="tests/fixtures/k8s_api is only in the repository checkout")

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def aggregated_resource(name, kind, scope="Namespaced", verbs=None, subresources=()):
    return {
        "resource": name,
        "responseKind": {"group": "", "version": "", "kind": kind},
        "scope": scope,
        "singularResource": name[:-1],
        "verbs": ALL_VERBS if verbs is None else verbs,
        "subresources": [
            {"subresource": sub, "responseKind": {"group": "", "version": "", "kind": kind}, "verbs": ["get", "patch", "update"]}
            for sub in subresources
        ],
    }


# GET /api with the aggregated Accept header, as kube-apiserver 1.37 answers it (trimmed).
CORE_AGGREGATED = {
    "kind": "APIGroupDiscoveryList",
    "apiVersion": "apidiscovery.k8s.io/v2",
    "metadata": {},
    "items": [{
        "metadata": {"creationTimestamp": None},
        "versions": [{
            "version": "v1",
            "resources": [
                aggregated_resource("bindings", "Binding", verbs=["create"]),
                aggregated_resource("componentstatuses", "ComponentStatus", "Cluster", ["get", "list"]),
                aggregated_resource("configmaps", "ConfigMap"),
                aggregated_resource("endpoints", "Endpoints"),
                aggregated_resource("events", "Event"),
                aggregated_resource("namespaces", "Namespace", "Cluster", ["create", "delete", "get", "list", "patch", "update", "watch"],
                                    ["finalize", "status"]),
                aggregated_resource("persistentvolumeclaims", "PersistentVolumeClaim", subresources=["status"]),
                aggregated_resource("pods", "Pod", subresources=["attach", "binding", "eviction", "exec", "log", "status"]),
                aggregated_resource("secrets", "Secret"),
                aggregated_resource("services", "Service", verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
                                    subresources=["proxy", "status"]),
            ],
            "freshness": "Current",
        }],
    }],
}

# GET /apis: preferred version first; a stale aggregated API; a group whose resource cannot be deleted.
APIS_AGGREGATED = {
    "kind": "APIGroupDiscoveryList",
    "apiVersion": "apidiscovery.k8s.io/v2",
    "metadata": {},
    "items": [
        {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "freshness": "Current", "resources": [
            aggregated_resource("deployments", "Deployment", subresources=["scale", "status"]),
            aggregated_resource("replicasets", "ReplicaSet", subresources=["scale", "status"]),
            aggregated_resource("statefulsets", "StatefulSet", subresources=["scale", "status"]),
        ]}]},
        {"metadata": {"name": "autoscaling"}, "versions": [
            {"version": "v2", "freshness": "Current", "resources": [
                aggregated_resource("horizontalpodautoscalers", "HorizontalPodAutoscaler", subresources=["status"])]},
            {"version": "v1", "freshness": "Current", "resources": [
                aggregated_resource("horizontalpodautoscalers", "HorizontalPodAutoscaler", subresources=["status"])]},
        ]},
        {"metadata": {"name": "events.k8s.io"}, "versions": [{"version": "v1", "freshness": "Current", "resources": [
            aggregated_resource("events", "Event")]}]},
        {"metadata": {"name": "keda.sh"}, "versions": [{"version": "v1alpha1", "freshness": "Current", "resources": [
            aggregated_resource("scaledobjects", "ScaledObject", subresources=["status"])]}]},
        {"metadata": {"name": "rbac.authorization.k8s.io"}, "versions": [{"version": "v1", "freshness": "Current", "resources": [
            aggregated_resource("clusterroles", "ClusterRole", "Cluster")]}]},
        {"metadata": {"name": "custom.metrics.k8s.io"}, "versions": [
            {"version": "v1beta2", "freshness": "Stale"},
            {"version": "v1beta1", "freshness": "Current", "resources": []},
        ]},
        {"metadata": {"name": "metrics.k8s.io"}, "versions": [{"version": "v1beta1", "freshness": "Current", "resources": [
            aggregated_resource("pods", "PodMetrics", verbs=["get", "list"])]}]},
    ],
}


def names(resources):
    return [(r["group"], r["version"], r["resource"]) for r in resources]


# Discovery, aggregated

def test_core_group_has_no_name_and_subresources_are_not_resources():
    resources, stale = kl.parse_aggregated(CORE_AGGREGATED)
    assert stale == []
    assert {r["group"] for r in resources} == {""}
    assert [r["resource"] for r in resources][:3] == ["bindings", "componentstatuses", "configmaps"]
    assert not any("/" in r["resource"] for r in resources)
    pods = next(r for r in resources if r["resource"] == "pods")
    assert pods == {"group": "", "version": "v1", "resource": "pods", "kind": "Pod", "namespaced": True, "verbs": sorted(ALL_VERBS)}
    namespaces = next(r for r in resources if r["resource"] == "namespaces")
    assert namespaces["namespaced"] is False and "deletecollection" not in namespaces["verbs"]


def test_only_the_preferred_version_of_a_group_counts_and_stale_ones_are_reported():
    resources, stale = kl.parse_aggregated(APIS_AGGREGATED)
    hpa = [r for r in resources if r["resource"] == "horizontalpodautoscalers"]
    assert [r["version"] for r in hpa] == ["v2"]
    # The preferred version of custom.metrics.k8s.io is Stale: nothing of that group is listed, it is reported.
    assert stale == ["custom.metrics.k8s.io/v1beta2"]
    assert not any(r["group"] == "custom.metrics.k8s.io" for r in resources)
    assert next(r for r in resources if r["resource"] == "scaledobjects")["kind"] == "ScaledObject"


def test_deletable_needs_list_and_delete_and_skips_events_and_endpoints():
    core = kl.parse_aggregated(CORE_AGGREGATED)[0]
    groups = kl.parse_aggregated(APIS_AGGREGATED)[0]
    chosen = kl.deletable(core + groups)
    assert names(chosen) == [
        ("", "v1", "configmaps"),
        ("", "v1", "namespaces"),
        ("", "v1", "persistentvolumeclaims"),
        ("", "v1", "pods"),
        ("", "v1", "secrets"),
        ("", "v1", "services"),
        ("apps", "v1", "deployments"),
        ("apps", "v1", "replicasets"),
        ("apps", "v1", "statefulsets"),
        ("autoscaling", "v2", "horizontalpodautoscalers"),
        ("keda.sh", "v1alpha1", "scaledobjects"),
        ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    ]
    # bindings (create only), componentstatuses and metrics (no delete), both events and endpoints are out.


def test_a_legacy_document_is_not_aggregated():
    assert kl.parse_aggregated({"kind": "APIGroupList", "groups": []}) is None
    assert kl.parse_aggregated({"kind": "APIVersions", "versions": ["v1"]}) is None
    assert kl.parse_aggregated([]) is None


# Discovery, legacy

LEGACY_APIS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
        {"name": "autoscaling",
         "versions": [{"groupVersion": "autoscaling/v2", "version": "v2"}, {"groupVersion": "autoscaling/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "autoscaling/v2", "version": "v2"}},
        {"name": "no-preference.example.com", "versions": [{"groupVersion": "no-preference.example.com/v1beta1", "version": "v1beta1"}]},
    ],
}

LEGACY_CORE_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {"name": "bindings", "namespaced": True, "kind": "Binding", "verbs": ["create"]},
        {"name": "configmaps", "namespaced": True, "kind": "ConfigMap", "verbs": ALL_VERBS},
        {"name": "namespaces", "namespaced": False, "kind": "Namespace", "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"name": "namespaces/status", "namespaced": False, "kind": "Namespace", "verbs": ["get", "patch", "update"]},
        {"name": "pods", "namespaced": True, "kind": "Pod", "verbs": ALL_VERBS},
        {"name": "pods/log", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "events", "namespaced": True, "kind": "Event", "verbs": ALL_VERBS},
    ],
}

LEGACY_APPS_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "apps/v1",
    "resources": [
        {"name": "deployments", "namespaced": True, "kind": "Deployment", "verbs": ALL_VERBS},
        {"name": "deployments/scale", "namespaced": True, "group": "autoscaling", "version": "v1", "kind": "Scale",
         "verbs": ["get", "patch", "update"]},
        {"name": "controllerrevisions", "namespaced": True, "kind": "ControllerRevision", "verbs": ALL_VERBS},
    ],
}


def test_legacy_group_list_gives_the_preferred_version():
    assert kl.parse_legacy_groups(LEGACY_APIS) == {"apps": "v1", "autoscaling": "v2", "no-preference.example.com": "v1beta1"}


def test_legacy_api_versions_is_the_core_group():
    assert kl.parse_legacy_groups({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}) == {"": "v1"}


def test_legacy_resource_lists_leave_subresources_out():
    resources = kl.parse_resource_list(LEGACY_CORE_RESOURCES) + kl.parse_resource_list(LEGACY_APPS_RESOURCES)
    assert names(resources) == [
        ("", "v1", "bindings"), ("", "v1", "configmaps"), ("", "v1", "namespaces"), ("", "v1", "pods"), ("", "v1", "events"),
        ("apps", "v1", "deployments"), ("apps", "v1", "controllerrevisions"),
    ]
    assert names(kl.deletable(resources)) == [
        ("", "v1", "configmaps"), ("", "v1", "namespaces"), ("", "v1", "pods"),
        ("apps", "v1", "controllerrevisions"), ("apps", "v1", "deployments"),
    ]
    namespaces = next(r for r in resources if r["resource"] == "namespaces")
    assert namespaces["namespaced"] is False and namespaces["kind"] == "Namespace"


def test_legacy_and_aggregated_agree_on_the_same_resources():
    aggregated = kl.parse_aggregated(CORE_AGGREGATED)[0]
    legacy = kl.parse_resource_list({
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [{"name": r["resource"], "namespaced": r["namespaced"], "kind": r["kind"], "verbs": r["verbs"]} for r in aggregated],
    })
    assert legacy == aggregated


def test_unknown_discovery_documents_are_errors():
    with pytest.raises(kl.DiscoveryError):
        kl.parse_legacy_groups({"kind": "Status", "code": 500})
    with pytest.raises(kl.DiscoveryError):
        kl.parse_resource_list({"kind": "APIResourceList", "resources": []})


@needs_fixtures
def test_the_repository_discovery_fixtures():
    resources, stale = kl.parse_aggregated(load_json(FIXTURES, "discovery-aggregated-full.json"))
    assert stale == []
    chosen = {(r["group"], r["resource"]): r for r in kl.deletable(resources)}
    assert chosen[("leaderworkerset.x-k8s.io", "leaderworkersets")]["kind"] == "LeaderWorkerSet"
    assert chosen[("keda.sh", "scaledobjects")]["namespaced"] is True
    assert chosen[("autoscaling", "horizontalpodautoscalers")]["version"] == "v2"
    assert ("events.k8s.io", "events") not in chosen
    assert not any(group == "metrics.k8s.io" for group, resource in chosen)  # get/list only

    stale = kl.parse_aggregated(load_json(FIXTURES, "discovery-aggregated-bare.json"))[1]
    assert stale == ["custom.metrics.k8s.io/v1beta1"]

    groups = kl.parse_legacy_groups(load_json(FIXTURES, "discovery-legacy.json"))
    assert groups["autoscaling"] == "v2" and groups["leaderworkerset.x-k8s.io"] == "v1"
    lws = kl.parse_resource_list(load_json(FIXTURES, "apiresources-leaderworkerset.x-k8s.io-v1.json"))
    assert names(lws) == [("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")]


# Selectors and paths

def test_label_selector_joins_requirements():
    assert kl.label_selector([
        "app.kubernetes.io/managed-by=gpuinfer.serving", " app.kubernetes.io/instance = llm ", "app.kubernetes.io/name!=model-cache",
    ]) == "app.kubernetes.io/managed-by=gpuinfer.serving,app.kubernetes.io/instance = llm,app.kubernetes.io/name!=model-cache"
    assert kl.label_selector(["tier==gpu"]) == "tier==gpu"


@pytest.mark.parametrize("selectors", [[], None, [""], ["a=b", "  "], ["!app"], ["app!=x"], ["app"], ["app in (a,b)"], ["app="]])
def test_label_selector_refuses_selections_without_a_key_value(selectors):
    with pytest.raises(kl.SelectorError):
        kl.label_selector(selectors)


def test_list_paths():
    deployments = {"group": "apps", "version": "v1", "resource": "deployments", "namespaced": True}
    configmaps = {"group": "", "version": "v1", "resource": "configmaps", "namespaced": True}
    namespaces = {"group": "", "version": "v1", "resource": "namespaces", "namespaced": False}
    assert kl.list_path(deployments, "llm-serving") == "/apis/apps/v1/namespaces/llm-serving/deployments"
    assert kl.list_path(configmaps, "monitoring") == "/api/v1/namespaces/monitoring/configmaps"
    assert kl.list_path(namespaces) == "/api/v1/namespaces"
    assert kl.list_path(namespaces, "ignored") == "/api/v1/namespaces"
    with pytest.raises(ValueError):
        kl.list_path(deployments)
    assert kl.api_version("", "v1") == "v1" and kl.api_version("apps", "v1") == "apps/v1"


# Lists

DEPLOYMENTS = {"group": "apps", "version": "v1", "resource": "deployments", "kind": "Deployment", "namespaced": True}
REPLICASETS = {"group": "apps", "version": "v1", "resource": "replicasets", "kind": "ReplicaSet", "namespaced": True}
NAMESPACES = {"group": "", "version": "v1", "resource": "namespaces", "kind": "Namespace", "namespaced": False}


def partial_list(*items):
    """A PartialObjectMetadataList as the API server sends it for the metadata-only Accept header."""
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "2658"},
        "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata} for metadata in items],
    }


def test_objects_take_kind_and_version_from_discovery():
    document = partial_list({"name": "llm-vllm", "namespace": "llm-serving", "labels": {"app.kubernetes.io/instance": "llm"}})
    assert kl.objects_from_list(DEPLOYMENTS, document) == (
        [{"api_version": "apps/v1", "kind": "Deployment", "name": "llm-vllm", "namespace": "llm-serving"}], 0,
    )
    cluster = partial_list({"name": "llm-serving"})
    assert kl.objects_from_list(NAMESPACES, cluster) == (
        [{"api_version": "v1", "kind": "Namespace", "name": "llm-serving", "namespace": None}], 0,
    )
    assert kl.objects_from_list(DEPLOYMENTS, {"kind": "DeploymentList", "items": None}) == ([], 0)


def test_objects_a_controller_made_are_left_to_their_owner():
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-vllm", "uid": "1", "controller": True, "blockOwnerDeletion": True}
    plain_owner = dict(owner, controller=False)
    document = partial_list(
        {"name": "llm-vllm-5d8f", "namespace": "llm-serving", "ownerReferences": [owner]},
        {"name": "adopted-later", "namespace": "llm-serving", "ownerReferences": [plain_owner]},
        {"name": "standalone", "namespace": "llm-serving"},
    )
    objects, owned = kl.objects_from_list(REPLICASETS, document)
    assert [o["name"] for o in objects] == ["adopted-later", "standalone"] and owned == 1
    objects, owned = kl.objects_from_list(REPLICASETS, document, include_owned=True)
    assert len(objects) == 3 and owned == 0


# Delete order

def obj(kind, name, api_version="v1", namespace="llm-serving"):
    return {"api_version": api_version, "kind": kind, "name": name, "namespace": namespace}


def test_delete_order_autoscalers_controllers_pods_rest_claims():
    expected = [
        obj("HorizontalPodAutoscaler", "llm", "autoscaling/v2"),
        obj("ScaledObject", "llm", "keda.sh/v1alpha1"),
        obj("Deployment", "llm-vllm", "apps/v1"),
        obj("Job", "llm-warmup", "batch/v1"),
        obj("LeaderWorkerSet", "llm-405b", "leaderworkerset.x-k8s.io/v1"),
        obj("StatefulSet", "llm-db", "apps/v1"),
        obj("Pod", "llm-debug"),
        obj("ConfigMap", "llm-prometheus-adapter-rules", namespace="monitoring"),
        obj("ConfigMap", "llm-chat-template"),
        obj("HTTPRoute", "llm", "gateway.networking.k8s.io/v1"),
        obj("PodDisruptionBudget", "llm", "policy/v1"),
        obj("Secret", "llm-hf-token"),
        obj("Service", "llm"),
        obj("ServiceMonitor", "llm", "monitoring.coreos.com/v1"),
        obj("PersistentVolumeClaim", "llm-model-cache"),
    ]
    shuffled = list(expected)
    random.Random(7).shuffle(shuffled)
    ordered = kl.delete_order(shuffled)
    ranks = [kl.delete_rank(o["kind"]) for o in ordered]
    assert ranks == sorted(ranks)
    assert [o["kind"] for o in ordered[:2]] == ["HorizontalPodAutoscaler", "ScaledObject"]
    assert {o["kind"] for o in ordered[2:6]} == {"Deployment", "Job", "LeaderWorkerSet", "StatefulSet"}
    assert ordered[6]["kind"] == "Pod"
    assert ordered[-1]["kind"] == "PersistentVolumeClaim"
    # Within a step: by kind, then namespace (llm-serving before monitoring), then name.
    assert ordered[7:9] == [obj("ConfigMap", "llm-chat-template"), obj("ConfigMap", "llm-prometheus-adapter-rules", namespace="monitoring")]
    assert kl.delete_order(list(reversed(expected))) == ordered


def test_delete_order_keeps_cluster_scoped_and_unknown_kinds_in_the_middle():
    ordered = kl.delete_order([
        obj("PersistentVolumeClaim", "c"), obj(None, "odd"), obj("Namespace", "llm-serving", namespace=None), obj("Deployment", "d", "apps/v1"),
    ])
    assert [o["name"] for o in ordered] == ["d", "odd", "llm-serving", "c"]
