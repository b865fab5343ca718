# -*- coding: utf-8 -*-
"""module_utils/deploy/service.py: the Service's checks and its monitoring and autoscaling decisions."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import service

NOTHING = {"prometheus_operator": {"service_monitor": False}, "prometheus_adapter": {"available": False},
           "keda": {"installed": False}, "gateway_api": {"http_route": False}}
EVERYTHING = {"prometheus_operator": {"service_monitor": True}, "prometheus_adapter": {"available": True},
              "keda": {"installed": True}, "gateway_api": {"http_route": True}}


def settings(**overrides):
    base = dict(engine="vllm", engines=["nim", "sglang", "vllm"], name="llm", target_name="llm-vllm", min_replicas=1,
                max_replicas=2, target_waiting=5.0, expose="none", host="", gateway_name="", autoscaling="none",
                keda_server_address="http://prometheus-operated.monitoring.svc:9090", monitoring="auto",
                hpa_force=False, custom_metric_name="vllm_num_requests_waiting")
    base.update(overrides)
    return base


def test_auto_monitoring_follows_the_prometheus_operator():
    assert service.resolve(settings(), EVERYTHING)["monitoring_mode"] == "servicemonitor"
    assert service.resolve(settings(), NOTHING)["monitoring_mode"] == "annotations"
    assert service.resolve(settings(monitoring="none"), EVERYTHING)["monitoring_mode"] == "none"


def test_an_hpa_without_a_custom_metrics_api_is_skipped_and_explained():
    resolved = service.resolve(settings(autoscaling="hpa"), NOTHING)
    assert resolved["autoscaling_mode"] == "none"
    assert resolved["notes"][0].startswith("HPA skipped: the cluster registers no custom metrics API")
    assert "vllm_num_requests_waiting" in resolved["notes"][0]
    assert service.resolve(settings(autoscaling="hpa", hpa_force=True), NOTHING)["autoscaling_mode"] == "hpa"
    assert service.resolve(settings(autoscaling="hpa"), EVERYTHING) == {
        "problems": [], "notes": [], "monitoring_mode": "servicemonitor", "autoscaling_mode": "hpa", "objects": []}


def test_render_mode_renders_what_was_asked():
    resolved = service.resolve(settings(autoscaling="keda", expose="httproute", gateway_name="gw"))
    assert resolved == {"problems": [], "notes": [], "monitoring_mode": "servicemonitor", "autoscaling_mode": "keda",
                        "objects": []}


@pytest.mark.parametrize("overrides, components, message", [
    ({"engine": "tgi"}, EVERYTHING, "inference_service_engine=tgi: allowed nim, sglang, vllm"),
    ({"name": "Bad_Name"}, EVERYTHING, "inference_service_name='Bad_Name' must be a DNS label"),
    ({"target_name": ""}, EVERYTHING, "inference_service_target_name must be set"),
    ({"min_replicas": 3, "max_replicas": 2}, EVERYTHING, "inference_service_min_replicas (3) <= inference_service_max_replicas (2)"),
    ({"target_waiting": 0}, EVERYTHING, "inference_service_target_waiting (0) must be > 0"),
    ({"autoscaling": "hpa", "replicas": 3, "max_replicas": 2}, EVERYTHING,
     "The plan's 3 replica(s) (plan_replicas) lie outside the autoscaler's range inference_service_min_replicas=1 to "
     "inference_service_max_replicas=2"),
    ({"expose": "ingress"}, EVERYTHING, "inference_service_expose=ingress needs inference_service_host"),
    ({"expose": "httproute"}, EVERYTHING, "needs inference_service_gateway_name"),
    ({"autoscaling": "keda", "keda_server_address": "prometheus:9090"}, EVERYTHING, "must be the http(s) URL"),
    ({"autoscaling": "keda"}, NOTHING, "no scaledobjects.keda.sh CRD"),
    ({"expose": "httproute", "gateway_name": "gw"}, NOTHING, "no httproutes.gateway.networking.k8s.io CRD"),
])
def test_bad_settings_name_the_variable(overrides, components, message):
    problems = service.resolve(settings(**overrides), components)["problems"]
    assert any(message in problem for problem in problems), problems


# --- The objects ---------------------------------------------------------------------------------------------------

OBJECT_SETTINGS = dict(
    namespace="serving", instance="llm", port=8000, multi_node=False, controller="Deployment",
    controller_api_version="apps/v1", metrics_path="/metrics", waiting_series="vllm:num_requests_waiting",
    target_waiting_quantity="5", ingress_class="", ingress_annotations={}, tls_secret="", gateway_namespace="",
    servicemonitor_labels={}, scrape_interval="15s", scale_up_stabilization_seconds=60,
    scale_down_stabilization_seconds=600, adapter_rule=True, adapter_namespace="monitoring", keda_polling_interval=30,
    keda_cooldown_period=600)


def objects(components, object_overrides=None, **overrides):
    resolved = service.resolve(settings(**overrides), components, dict(OBJECT_SETTINGS, **(object_overrides or {})))
    assert resolved["problems"] == []
    return dict((obj["kind"], obj) for obj in resolved["objects"]), [obj["kind"] for obj in resolved["objects"]]


def test_a_plain_endpoint_is_a_service_scraped_as_decided():
    by_kind, kinds = objects(NOTHING)
    assert kinds == ["Service"]
    service_object = by_kind["Service"]
    assert service_object["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                                                         "prometheus.io/path": "/metrics"}
    selector = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "llm"}
    ports = [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service_object["spec"] == {"type": "ClusterIP", "selector": selector, "ports": ports}
    by_kind, kinds = objects(EVERYTHING, {"servicemonitor_labels": {"release": "prom"}})
    assert kinds == ["Service", "ServiceMonitor"] and "annotations" not in by_kind["Service"]["metadata"]
    monitor = by_kind["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prom" and "release" not in monitor["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_a_multi_node_endpoint_selects_the_leader_and_scales_the_leaderworkerset():
    by_kind, kinds = objects(EVERYTHING, {"multi_node": True, "controller": "LeaderWorkerSet",
                                          "controller_api_version": "leaderworkerset.x-k8s.io/v1"}, autoscaling="hpa")
    assert kinds == ["Service", "ServiceMonitor", "HorizontalPodAutoscaler", "ConfigMap"]
    assert by_kind["Service"]["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    hpa = by_kind["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "llm-vllm"}
    assert hpa["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "5"}


def test_the_adapter_rule_is_what_prometheus_adapter_reads():
    from ansible.plugins.filter.core import to_nice_yaml

    by_kind, kinds = objects(NOTHING, autoscaling="hpa")
    assert kinds == ["Service", "ConfigMap"]  # the HPA waits for a custom metrics API; its rule does not
    config = by_kind["ConfigMap"]
    assert config["metadata"]["namespace"] == "monitoring"
    # Byte for byte what the role's template wrote with ansible's to_nice_yaml(indent=2).
    expected = to_nice_yaml({"rules": [{
        "seriesQuery": 'vllm:num_requests_waiting{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^vllm:num_requests_waiting$", "as": "vllm_num_requests_waiting"},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"}]}, indent=2)
    assert config["data"]["config.yaml"] == expected
    assert objects(NOTHING, {"adapter_rule": False}, autoscaling="hpa")[1] == ["Service"]


def test_keda_queries_the_engine_pods_queue():
    by_kind, kinds = objects(EVERYTHING, {"target_waiting_quantity": "2.5"}, autoscaling="keda")
    assert kinds == ["Service", "ServiceMonitor", "ScaledObject"]
    spec = by_kind["ScaledObject"]["spec"]
    assert spec["triggers"] == [{"type": "prometheus", "metadata": {
        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
        "query": 'sum(vllm:num_requests_waiting{namespace="serving",pod=~"llm-vllm-.*"})', "threshold": "2.5"}}]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


INGRESS_BACKEND = {"service": {"name": "llm", "port": {"name": "http"}}}
INGRESS_RULES = [{"host": "x.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": INGRESS_BACKEND}]}}]


@pytest.mark.parametrize("expose, object_overrides, overrides, expected", [
    ("ingress", {"ingress_class": "nginx", "tls_secret": "tls", "ingress_annotations": {"a": "b"}}, {"host": "x.example.com"},
     {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
      "metadata": {"name": "llm", "namespace": "serving", "annotations": {"a": "b"}},
      "spec": {"rules": INGRESS_RULES, "ingressClassName": "nginx", "tls": [{"hosts": ["x.example.com"], "secretName": "tls"}]}}),
    ("ingress", {}, {"host": "x.example.com"},
     {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "llm", "namespace": "serving"},
      "spec": {"rules": INGRESS_RULES}}),
    ("httproute", {"gateway_namespace": "gateways"}, {"gateway_name": "gw", "host": "h.example.com"},
     {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "llm", "namespace": "serving"},
      "spec": {"parentRefs": [{"name": "gw", "namespace": "gateways"}],
               "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [{"name": "llm", "port": 8000}]}],
               "hostnames": ["h.example.com"]}}),
])
def test_exposure(expose, object_overrides, overrides, expected):
    resolved = service.resolve(settings(expose=expose, monitoring="none", **overrides), EVERYTHING,
                               dict(OBJECT_SETTINGS, **object_overrides))
    exposed = resolved["objects"][1]
    exposed["metadata"].pop("labels")
    assert exposed == expected
    assert list(exposed["spec"]) == list(expected["spec"])  # the order the render files keep


def test_no_objects_when_a_setting_is_refused():
    resolved = service.resolve(settings(min_replicas=3, max_replicas=2), EVERYTHING, OBJECT_SETTINGS)
    assert resolved["problems"] and resolved["objects"] == []


def test_replicas_outside_the_range_are_fine_without_an_autoscaler():
    assert service.settings_problems(settings(autoscaling="none", replicas=3, max_replicas=2)) == []
    assert service.settings_problems(settings(autoscaling="hpa", replicas=2, max_replicas=2)) == []
