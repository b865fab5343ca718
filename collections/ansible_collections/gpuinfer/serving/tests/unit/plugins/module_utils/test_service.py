# -*- coding: utf-8 -*-
"""module_utils/service.py: the Service's checks and its monitoring and autoscaling decisions."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils import service

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
        "problems": [], "notes": [], "monitoring_mode": "servicemonitor", "autoscaling_mode": "hpa"}


def test_render_mode_renders_what_was_asked():
    resolved = service.resolve(settings(autoscaling="keda", expose="httproute", gateway_name="gw"))
    assert resolved == {"problems": [], "notes": [], "monitoring_mode": "servicemonitor", "autoscaling_mode": "keda"}


@pytest.mark.parametrize("overrides, components, message", [
    ({"engine": "tgi"}, EVERYTHING, "inference_service_engine=tgi: allowed nim, sglang, vllm"),
    ({"name": "Bad_Name"}, EVERYTHING, "inference_service_name='Bad_Name' must be a DNS label"),
    ({"target_name": ""}, EVERYTHING, "inference_service_target_name must be set"),
    ({"min_replicas": 3, "max_replicas": 2}, EVERYTHING, "inference_service_min_replicas (3) <= inference_service_max_replicas (2)"),
    ({"target_waiting": 0}, EVERYTHING, "inference_service_target_waiting (0) must be > 0"),
    ({"expose": "ingress"}, EVERYTHING, "inference_service_expose=ingress needs inference_service_host"),
    ({"expose": "httproute"}, EVERYTHING, "needs inference_service_gateway_name"),
    ({"autoscaling": "keda", "keda_server_address": "prometheus:9090"}, EVERYTHING, "must be the http(s) URL"),
    ({"autoscaling": "keda"}, NOTHING, "no scaledobjects.keda.sh CRD"),
    ({"expose": "httproute", "gateway_name": "gw"}, NOTHING, "no httproutes.gateway.networking.k8s.io CRD"),
])
def test_bad_settings_name_the_variable(overrides, components, message):
    problems = service.resolve(settings(**overrides), components)["problems"]
    assert any(message in problem for problem in problems), problems
