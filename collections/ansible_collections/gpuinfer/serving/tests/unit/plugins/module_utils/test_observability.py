# -*- coding: utf-8 -*-
"""module_utils/deploy/observability.py: the Grafana dashboard and the PrometheusRule of each engine's endpoint."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import pathlib
import re
import sys

import pytest
import yaml

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import observability, service

ROOT = pathlib.Path(__file__).resolve().parents[8]
sys.path.insert(0, str(ROOT))

from tests.contracts import check as contracts  # noqa: E402

ROLE = ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving" / "roles" / "inference_service"

# Contract data: what the Grafana sidecar loads, from the charts' own values.yaml.
# - kube-prometheus-stack 88.5.3 (prometheus-community/helm-charts tag kube-prometheus-stack-88.5.3, commit
#   ea930baeebeba39f56d6b44e351f23b2a072a600, charts/kube-prometheus-stack/values.yaml lines 1536-1542):
#   grafana.sidecar.dashboards {enabled: true, label: grafana_dashboard, labelValue: "1", searchNamespace: ALL}.
# - the grafana chart 10.5.15 alone (grafana/helm-charts tag grafana-10.5.15, commit
#   570b7560be8503a031a470cf81a7dfaf865ed5b5, charts/grafana/values.yaml): sidecar.dashboards {enabled: false,
#   label: grafana_dashboard, labelValue: "", searchNamespace: null (Grafana's own namespace)}; labelValue ""
#   selects any value. Hence inference_service_dashboards_namespace.
# - kube-prometheus-stack's Prometheus selects PrometheusRules by the release label (ruleSelectorNilUsesHelmValues:
#   true) in every namespace (ruleNamespaceSelector: {}), the same selection as ServiceMonitors.
KUBE_PROMETHEUS_STACK_SIDECAR = {"label": "grafana_dashboard", "labelValue": "1", "searchNamespace": "ALL"}
GRAFANA_CHART_SIDECAR = {"label": "grafana_dashboard", "labelValue": "", "searchNamespace": None}

WAITING = {"vllm": "vllm:num_requests_waiting", "nim": "vllm:num_requests_waiting", "sglang": "sglang:num_queue_reqs"}
CONTRACT = {"vllm": "vLLM 0.34.0", "nim": "vLLM 0.34.0", "sglang": "SGLang 0.5.23"}


def settings(engine="vllm", **overrides):
    base = dict(engine=engine, engines=engines.names(), name="llm", target_name="llm-%s" % engine, min_replicas=1,
                max_replicas=2, target_waiting=5.0, expose="none", host="", gateway_name="", autoscaling="none",
                keda_server_address="http://prometheus-operated.monitoring.svc:9090", monitoring="auto", hpa_force=False,
                custom_metric_name="%s_num_requests_waiting" % engine)
    base.update(overrides)
    return base


def object_settings(engine="vllm", **overrides):
    base = dict(namespace="serving", instance="llm", port=8000, multi_node=False, controller="Deployment",
                controller_api_version="apps/v1", metrics_path=engines.info(engine)["metrics_path"],
                waiting_series=WAITING[engine], target_waiting_quantity="5", ingress_class="", ingress_annotations={},
                tls_secret="", gateway_namespace="", servicemonitor_labels={}, scrape_interval="15s",
                scale_up_stabilization_seconds=60, scale_down_stabilization_seconds=600, adapter_rule=True,
                adapter_namespace="monitoring", keda_polling_interval=30, keda_cooldown_period=600,
                dashboards=True, alerts=True, dashboards_namespace="")
    base.update(overrides)
    return base


def built(engine="vllm", components=None, setting_overrides=None, **overrides):
    resolved = service.resolve(settings(engine, **(setting_overrides or {})), components,
                               object_settings(engine, **overrides))
    assert resolved["problems"] == []
    return resolved["objects"]


def by_kind(objects, kind):
    return [obj for obj in objects if obj["kind"] == kind]


def dashboard_of(objects):
    (config_map,) = [obj for obj in by_kind(objects, "ConfigMap") if obj["metadata"]["name"].endswith("-grafana-dashboard")]
    (text,) = config_map["data"].values()
    return config_map, json.loads(text)


def model_of(objects):
    return dashboard_of(objects)[1]


GPU_SERIES = set(item[1] for item in observability.GPU_PANELS)


def exprs(objects):
    model = model_of(objects)
    panel_exprs = [target["expr"] for panel in model["panels"] for target in panel.get("targets", [])]
    (rule,) = by_kind(objects, "PrometheusRule")
    return panel_exprs + [item["expr"] for group in rule["spec"]["groups"] for item in group["rules"]]


# --- What is built, and when ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", sorted(WAITING))
def test_every_engine_gets_a_dashboard_and_rules_next_to_its_servicemonitor(engine):
    objects = built(engine)
    assert [obj["kind"] for obj in objects] == ["Service", "ServiceMonitor", "ConfigMap", "PrometheusRule"]
    config_map, model = dashboard_of(objects)
    assert config_map["metadata"]["namespace"] == "serving"
    titles = [panel["title"] for panel in model["panels"]]
    for title in ("Requests waiting per replica", "Requests running per replica", "KV-cache usage per replica",
                  "Time to first token", "Time per output token (inter-token latency)", "End-to-end request latency",
                  "Prompt tokens per second", "Generated tokens per second", "GPU utilisation",
                  "GPU framebuffer memory used", "GPU power draw", "GPU temperature", "GPU Xid errors (last Xid code)"):
        assert title in titles
    (rule,) = by_kind(objects, "PrometheusRule")
    assert [item["alert"] for item in rule["spec"]["groups"][0]["rules"]] == [
        "InferenceKVCacheNearlyFull", "InferenceRequestsWaiting", "InferenceEngineDown", "InferencePodRestarting",
        "InferenceGPUXidError"]


def test_every_registered_engine_has_a_series_family():
    for name in engines.names():
        assert observability.family(name) in observability.ENGINE_SERIES
    # NIM 2.x runs vLLM inside and publishes vLLM's series (tests/contracts/nim: names not settled upstream).
    assert observability.family("nim") == "vllm"


def test_no_dashboard_or_rules_without_a_servicemonitor_or_when_turned_off():
    nothing = {"prometheus_operator": {"service_monitor": False}, "prometheus_adapter": {"available": False},
               "keda": {"installed": False}, "gateway_api": {"http_route": False}}
    assert [obj["kind"] for obj in built(components=nothing)] == ["Service"]
    assert [obj["kind"] for obj in built(setting_overrides={"monitoring": "none"})] == ["Service"]
    assert [obj["kind"] for obj in built(dashboards=False)] == ["Service", "ServiceMonitor", "PrometheusRule"]
    assert [obj["kind"] for obj in built(alerts=False)] == ["Service", "ServiceMonitor", "ConfigMap"]
    # A caller that passes neither key (build_objects' own callers before this) gets neither object.
    plain = object_settings()
    for key in ("dashboards", "alerts", "dashboards_namespace"):
        plain.pop(key)
    assert [obj["kind"] for obj in service.resolve(settings(), None, plain)["objects"]] == ["Service", "ServiceMonitor"]


# --- Labels and where the objects land --------------------------------------------------------------------------------

def test_labels_follow_the_collection_convention_and_the_sidecar_contract():
    objects = built(servicemonitor_labels={"release": "kube-prometheus-stack"})
    config_map = dashboard_of(objects)[0]
    (rule,) = by_kind(objects, "PrometheusRule")
    for obj, component in ((config_map, "dashboards"), (rule, "alerts")):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "gpuinfer.serving"
        assert labels["app.kubernetes.io/part-of"] == "gpuinfer-serving"
        assert labels["app.kubernetes.io/name"] == "vllm"
        assert labels["app.kubernetes.io/instance"] == "llm"
        assert labels["app.kubernetes.io/component"] == component
    # kube-prometheus-stack's sidecar selects label == labelValue; the grafana chart alone takes any value.
    sidecar = KUBE_PROMETHEUS_STACK_SIDECAR
    assert config_map["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert GRAFANA_CHART_SIDECAR["label"] in config_map["metadata"]["labels"]
    assert observability.DASHBOARD_LABEL == {sidecar["label"]: sidecar["labelValue"]}
    # Prometheus selects rules by the same extra labels as the ServiceMonitor; the dashboard needs none.
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "release" not in config_map["metadata"]["labels"]
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["app.kubernetes.io/component"] == "endpoint"


def test_the_dashboard_can_land_where_grafana_watches():
    config_map = dashboard_of(built(dashboards_namespace="monitoring"))[0]
    assert config_map["metadata"]["namespace"] == "monitoring"
    (rule,) = by_kind(built(dashboards_namespace="monitoring"), "PrometheusRule")
    assert rule["metadata"]["namespace"] == "serving"


def test_the_dashboard_is_a_grafana_model_per_instance():
    model = model_of(built())
    other = model_of(built(namespace="other"))
    assert model["uid"] != other["uid"] and len(model["uid"]) <= 40
    assert model["templating"]["list"][0]["type"] == "datasource"
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert [target["refId"] for target in panel["targets"]] == ["A", "B", "C"][:len(panel["targets"])]


def test_engine_panels_are_per_pod_and_latencies_are_quantiles():
    model = model_of(built())
    panels = dict((panel["title"], panel) for panel in model["panels"])
    waiting = panels["Requests waiting per replica"]
    assert waiting["targets"][0]["expr"] == 'sum by (pod) (vllm:num_requests_waiting{namespace="serving",job="llm"})'
    assert waiting["fieldConfig"]["defaults"]["displayName"] == "${__field.labels.pod}"
    ttft = panels["Time to first token"]["targets"]
    assert [target["legendFormat"] for target in ttft] == ["p50", "p90", "p99"]
    assert ttft[2]["expr"] == ('histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket'
                               '{namespace="serving",job="llm"}[$__rate_interval])))')
    gpu = panels["GPU utilisation"]["targets"][0]["expr"]
    assert gpu == ('max by (pod, gpu) ((label_replace(DCGM_FI_DEV_GPU_UTIL{exported_namespace="serving",'
                   'exported_pod=~"llm-vllm-.*"}, "pod", "$1", "exported_pod", "(.+)") or '
                   'DCGM_FI_DEV_GPU_UTIL{namespace="serving",pod=~"llm-vllm-.*"}))')


# --- Thresholds ------------------------------------------------------------------------------------------------------

def rules_of(objects):
    (rule,) = by_kind(objects, "PrometheusRule")
    return dict((item["alert"], item) for item in rule["spec"]["groups"][0]["rules"])


def test_the_queue_alert_fires_above_the_autoscalers_target():
    # The plan's SLO sets inference_service_target_waiting (slo.autoscaling.target_waiting); the alert follows it.
    rules = rules_of(built(setting_overrides={"target_waiting": 2.5}))
    queue = rules["InferenceRequestsWaiting"]
    assert queue["expr"] == 'avg by (namespace, job) (vllm:num_requests_waiting{namespace="serving",job="llm"}) > 2.5'
    assert queue["for"] == observability.QUEUE_FOR
    model = model_of(built(setting_overrides={"target_waiting": 2.5}))
    waiting = [panel for panel in model["panels"] if panel["title"] == "Requests waiting per replica"][0]
    assert waiting["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 2.5
    # The waiting series is the one the autoscaler reads, also when set by hand.
    rules = rules_of(built("nim", waiting_series="num_requests_waiting"))
    assert rules["InferenceRequestsWaiting"]["expr"].startswith("avg by (namespace, job) (num_requests_waiting{")


def test_the_other_alerts():
    rules = rules_of(built("sglang"))
    assert rules["InferenceKVCacheNearlyFull"]["expr"] == (
        'max by (namespace, pod) (sglang:token_usage{namespace="serving",job="llm"}) > 0.95')
    assert rules["InferenceKVCacheNearlyFull"]["for"] == "5m"
    assert rules["InferenceEngineDown"]["expr"] == 'up{namespace="serving",job="llm"} == 0'
    assert rules["InferencePodRestarting"]["expr"] == (
        'increase(kube_pod_container_status_restarts_total{namespace="serving",pod=~"llm-sglang-.*"}[15m]) > 0')
    assert rules["InferenceGPUXidError"]["expr"].startswith("max by (pod, gpu) ((label_replace(DCGM_FI_DEV_XID_ERRORS{")
    assert rules["InferenceGPUXidError"]["expr"].endswith(") > 0")
    assert set(item["labels"]["severity"] for item in rules.values()) == {"warning", "critical"}


def test_no_string_ansible_would_template_again():
    # Ansible before 2.19 templates a fact's strings again when it is read: a "{{" would break the play.
    for engine in sorted(WAITING):
        assert "{{" not in json.dumps(built(engine)) and "{%" not in json.dumps(built(engine))


# --- Every series exists in the pinned release --------------------------------------------------------------------------

@pytest.mark.parametrize("engine", sorted(WAITING))
def test_every_series_is_in_the_pinned_contracts(engine):
    objects = built(engine)
    assert contracts.metric_violations(objects) == []
    named = " ".join(exprs(objects))
    # Each engine panel and rule names a series of its own family, and every GPU series is checked too.
    family = observability.family(engine)
    assert re.findall(r"\b%s:" % family, named) and not re.findall(r"\b%s:" % ({"vllm", "sglang"} - {family}).pop(), named)
    assert set(re.findall(r"DCGM_FI_[A-Z_]+", named)) == GPU_SERIES


def test_every_series_table_entry_is_exported():
    for family, table in observability.ENGINE_SERIES.items():
        exported = contracts.exported_series(contracts.load(family))
        for role, name in table.items():
            wanted = name + "_bucket" if role in ("ttft", "tpot", "e2e") else name
            assert wanted in exported, (family, role, name)
    dcgm = contracts.dcgm_contract()
    for name in GPU_SERIES:
        assert name in dcgm["metrics"] and name in dcgm["dcp_metrics_included"]
    assert dcgm["source"]["tag"] == contracts.DCGM_EXPORTER
    assert set(dcgm["unchanged_in_tags"]["names"]) == GPU_SERIES


def test_the_checker_names_a_bogus_series():
    objects = built()
    config_map, model = dashboard_of(objects)
    model["panels"][1]["targets"][0]["expr"] = "sum(vllm:num_requests_bogus{}) + sum(DCGM_FI_DEV_GPU_BOGUS)"
    config_map["data"] = {"x.json": json.dumps(model)}
    (rule,) = by_kind(objects, "PrometheusRule")
    # A histogram read without _bucket and a counter without _total are not series either.
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "rate(vllm:e2e_request_latency_seconds[5m]) + vllm:prompt_tokens"
    sglang_rule = by_kind(built("sglang"), "PrometheusRule")[0]
    sglang_rule["spec"]["groups"][0]["rules"][0]["expr"] = "sglang:token_usage_perc > 0.95"
    assert sorted(contracts.metric_violations([config_map, rule, sglang_rule])) == sorted([
        "ConfigMap llm-grafana-dashboard: metric vllm:num_requests_bogus is not exported by vLLM 0.34.0",
        "PrometheusRule llm: metric vllm:e2e_request_latency_seconds is not exported by vLLM 0.34.0",
        "PrometheusRule llm: metric vllm:prompt_tokens is not exported by vLLM 0.34.0",
        "PrometheusRule llm: metric sglang:token_usage_perc is not exported by SGLang 0.5.23",
        "ConfigMap llm-grafana-dashboard: series DCGM_FI_DEV_GPU_BOGUS is not in dcgm-exporter 4.5.3-4.8.2's default "
        "counters (etc/default-counters.csv and etc/dcp-metrics-included.csv)",
    ])


# --- The role's variables ----------------------------------------------------------------------------------------------

def test_the_role_declares_and_passes_the_variables():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    expected = {"inference_service_dashboards": ("bool", True), "inference_service_alerts": ("bool", True),
                "inference_service_dashboards_namespace": ("str", "")}
    for name, (kind, value) in expected.items():
        assert defaults[name] == value and spec[name]["default"] == value and spec[name]["type"] == kind
    passed = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["inference_service_object_settings"]
    assert passed["dashboards"] == "{{ inference_service_dashboards | bool }}"
    assert passed["alerts"] == "{{ inference_service_alerts | bool }}"
    assert passed["dashboards_namespace"] == "{{ inference_service_dashboards_namespace }}"
