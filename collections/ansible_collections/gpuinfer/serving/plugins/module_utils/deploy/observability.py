# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""An instance's Grafana dashboard and Prometheus alert rules, built once.

Called by service.build_objects when the engine is scraped through a ServiceMonitor (the Prometheus Operator is
served, or render mode asked for it): a ConfigMap the Grafana sidecar loads (label ``grafana_dashboard: "1"``) and a
monitoring.coreos.com/v1 PrometheusRule, both reading what that ServiceMonitor scrapes (job = the Service's name),
kube-state-metrics (restarts) and NVIDIA's DCGM exporter (GPUs).

Every engine series named here is checked against the pinned release's contract (tests/contracts, through
check.metric_violations) and every DCGM series against the exporter's counter files (tests/contracts/dcgm).

No ``{{`` appears in any string built here: Ansible before 2.19 templates a fact's strings again when it is read,
so Grafana legends use ``${__field.labels.pod}`` and alert annotations name no label template.

Pure computation (no Ansible, no network).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines

# The series each engine family publishes, by what the panel or alert shows. The family is the prefix of the
# engine description's queue series (engine_<name>.py): NIM 2.x runs vLLM inside and publishes vLLM's series.
# Counters are named as exported (_total), histograms by their base name (_bucket is added where read).
ENGINE_SERIES = {
    "vllm": {
        "running": "vllm:num_requests_running",
        "kv_cache_usage": "vllm:kv_cache_usage_perc",  # 0..1
        "ttft": "vllm:time_to_first_token_seconds",
        "tpot": "vllm:inter_token_latency_seconds",
        "e2e": "vllm:e2e_request_latency_seconds",
        "prompt_tokens": "vllm:prompt_tokens_total",
        "generation_tokens": "vllm:generation_tokens_total",
    },
    "sglang": {
        "running": "sglang:num_running_reqs",
        "kv_cache_usage": "sglang:token_usage",  # 0..1: KV pool tokens in use
        "ttft": "sglang:time_to_first_token_seconds",
        "tpot": "sglang:inter_token_latency_seconds",
        "e2e": "sglang:e2e_request_latency_seconds",
        "prompt_tokens": "sglang:prompt_tokens_total",
        "generation_tokens": "sglang:generation_tokens_total",
    },
}

# NVIDIA DCGM exporter series (etc/default-counters.csv; tests/contracts/dcgm): title, series, Grafana unit.
GPU_PANELS = (
    ("GPU utilisation", "DCGM_FI_DEV_GPU_UTIL", "percent"),
    ("GPU framebuffer memory used", "DCGM_FI_DEV_FB_USED", "mbytes"),  # MiB
    ("GPU power draw", "DCGM_FI_DEV_POWER_USAGE", "watt"),
    ("GPU temperature", "DCGM_FI_DEV_GPU_TEMP", "celsius"),
    ("GPU Xid errors (last Xid code)", "DCGM_FI_DEV_XID_ERRORS", "none"),
)
XID_SERIES = "DCGM_FI_DEV_XID_ERRORS"

# The Grafana sidecar's default selection in kube-prometheus-stack (grafana.sidecar.dashboards.label/labelValue).
DASHBOARD_LABEL = {"grafana_dashboard": "1"}

QUANTILES = (0.5, 0.9, 0.99)

# Alert thresholds no role variable sets (the queue threshold is inference_service_target_waiting, the plan's SLO
# when it has one).
KV_CACHE_FULL = 0.95
KV_CACHE_FOR = "5m"
QUEUE_FOR = "10m"
DOWN_FOR = "5m"
RESTART_WINDOW = "15m"
RESTART_FOR = "5m"


def family(engine):
    """The series family (vllm, sglang) an engine publishes, from its description's queue series."""
    return engines.get(engine).queue_metric.split(":", 1)[0]


def _number(value):
    return "%g" % float(value)


def _selectors(settings):
    """(engine series matcher, pod name regex) for the instance."""
    engine = 'namespace="%s",job="%s"' % (settings["namespace"], settings["name"])
    return engine, "%s-.*" % settings["target_name"]


def gpu_series(series, namespace, pods):
    """A DCGM series for the GPUs the instance's pods hold, with the pod's name in ``pod``.

    The exporter labels a GPU's series with the pod holding it (pod, namespace). Scraped through the GPU Operator's
    ServiceMonitor (honorLabels false) they arrive as exported_pod / exported_namespace, with pod and namespace the
    exporter's own; with honorLabels true they keep their names. Both forms are read.
    """
    exported = ('label_replace(%s{exported_namespace="%s",exported_pod=~"%s"}, "pod", "$1", "exported_pod", "(.+)")'
                % (series, namespace, pods))
    direct = '%s{namespace="%s",pod=~"%s"}' % (series, namespace, pods)
    return "(%s or %s)" % (exported, direct)


# --- The dashboard ---------------------------------------------------------------------------------------------------

def _panel(panel_id, title, targets, unit, grid, description="", per="pod", thresholds=None, maximum=None):
    defaults = {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}}
    if per:
        defaults["displayName"] = per
    if maximum is not None:
        defaults["min"], defaults["max"] = 0, maximum
    if thresholds is not None:
        steps = [{"color": "green", "value": None}, {"color": "red", "value": thresholds}]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [dict(target, refId=chr(ord("A") + index)) for index, target in enumerate(targets)],
    }


def _row(panel_id, title, y):
    return {"id": panel_id, "type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}


def _quantiles(histogram, matcher):
    return [{"expr": "histogram_quantile(%s, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))"
                     % (_number(quantile), histogram, matcher),
             "legendFormat": "p%d" % round(quantile * 100)} for quantile in QUANTILES]


def dashboard(settings):
    """The Grafana dashboard model (JSON-ready dict) of one instance."""
    series = ENGINE_SERIES[family(settings["engine"])]
    engine_matcher, pods = _selectors(settings)
    namespace, name = settings["namespace"], settings["name"]
    title = engines.get(settings["engine"]).title
    per_pod = "${__field.labels.pod}"
    panels, y = [_row(1, "%s engine (Service %s/%s)" % (title, namespace, name), 0)], 1
    rate = "sum by (pod) (rate(%s{%s}[$__rate_interval]))"
    latency = "p50, p90, p99 over all replicas."
    # (title, targets, unit, legend, description, threshold line, maximum)
    layout = [
        ("Requests waiting per replica", [{"expr": "sum by (pod) (%s{%s})" % (settings["waiting_series"], engine_matcher)}],
         "short", per_pod, "The queue the autoscaler reads; the line is its target (inference_service_target_waiting).",
         float(settings["target_waiting"]), None),
        ("Requests running per replica", [{"expr": "sum by (pod) (%s{%s})" % (series["running"], engine_matcher)}],
         "short", per_pod, "", None, None),
        ("KV-cache usage per replica", [{"expr": "max by (pod) (%s{%s})" % (series["kv_cache_usage"], engine_matcher)}],
         "percentunit", per_pod, "The line is the KV-cache alert's threshold.", KV_CACHE_FULL, 1),
        ("Time to first token", _quantiles(series["ttft"], engine_matcher), "s", None, latency, None, None),
        ("Time per output token (inter-token latency)", _quantiles(series["tpot"], engine_matcher), "s", None, latency,
         None, None),
        ("End-to-end request latency", _quantiles(series["e2e"], engine_matcher), "s", None, latency, None, None),
        ("Prompt tokens per second", [{"expr": rate % (series["prompt_tokens"], engine_matcher)}], "short", per_pod, "",
         None, None),
        ("Generated tokens per second", [{"expr": rate % (series["generation_tokens"], engine_matcher)}], "short", per_pod,
         "", None, None),
    ]
    panel_id = 2
    for index, (panel_title, targets, unit, per, description, threshold, maximum) in enumerate(layout):
        grid = {"h": 8, "w": 12, "x": 12 * (index % 2), "y": y + 8 * (index // 2)}
        panels.append(_panel(panel_id, panel_title, targets, unit, grid, description, per, threshold, maximum))
        panel_id += 1
    y += 8 * ((len(layout) + 1) // 2)
    panels.append(_row(panel_id, "GPUs of the engine pods (NVIDIA DCGM exporter)", y))
    panel_id, y = panel_id + 1, y + 1
    for index, (panel_title, gpu, unit) in enumerate(GPU_PANELS):
        grid = {"h": 8, "w": 12, "x": 12 * (index % 2), "y": y + 8 * (index // 2)}
        expr = "max by (pod, gpu) (%s)" % gpu_series(gpu, namespace, pods)
        panels.append(_panel(panel_id, panel_title, [{"expr": expr}], unit, grid,
                             "Per GPU of each pod (workers of a multi-node replica included).",
                             "${__field.labels.pod} GPU ${__field.labels.gpu}", None, 100 if unit == "percent" else None))
        panel_id += 1
    uid = "gpuinfer-" + hashlib.sha1(("%s/%s" % (namespace, name)).encode("utf-8")).hexdigest()[:20]
    return {
        "uid": uid,
        "title": "%s / %s (%s)" % (namespace, name, title),
        "tags": ["gpuinfer-serving", settings["engine"]],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                                 "current": {}, "hide": 0, "refresh": 1, "options": []}]},
        "annotations": {"list": []},
        "panels": panels,
    }


# --- The alert rules -------------------------------------------------------------------------------------------------

def alert_rules(settings):
    """The PrometheusRule's rules for one instance."""
    series = ENGINE_SERIES[family(settings["engine"])]
    engine_matcher, pods = _selectors(settings)
    namespace, name = settings["namespace"], settings["name"]
    where = "%s/%s" % (namespace, name)
    target = _number(settings["target_waiting"])
    gpu_matcher = gpu_series(XID_SERIES, namespace, pods)
    return [
        {"alert": "InferenceKVCacheNearlyFull",
         "expr": "max by (namespace, pod) (%s{%s}) > %s" % (series["kv_cache_usage"], engine_matcher, _number(KV_CACHE_FULL)),
         "for": KV_CACHE_FOR,
         "labels": {"severity": "warning"},
         "annotations": {"summary": "KV cache of %s over %d%% for %s" % (where, round(KV_CACHE_FULL * 100), KV_CACHE_FOR),
                         "description": "A replica (label pod) of %s has used more than %d%% of its KV cache for %s: new "
                                        "requests queue or preempt running ones. Add replicas or shorten max_model_len."
                                        % (where, round(KV_CACHE_FULL * 100), KV_CACHE_FOR)}},
        {"alert": "InferenceRequestsWaiting",
         "expr": "avg by (namespace, job) (%s{%s}) > %s" % (settings["waiting_series"], engine_matcher, target),
         "for": QUEUE_FOR,
         "labels": {"severity": "warning"},
         "annotations": {"summary": "%s queues more than %s requests per replica for %s" % (where, target, QUEUE_FOR),
                         "description": "Requests waiting per replica of %s stayed above the autoscaler's target (%s, "
                                        "inference_service_target_waiting) for %s: the autoscaler is at its maximum, "
                                        "absent or cannot place new replicas, and latency misses the plan's SLO."
                                        % (where, target, QUEUE_FOR)}},
        {"alert": "InferenceEngineDown",
         "expr": "up{%s} == 0" % engine_matcher,
         "for": DOWN_FOR,
         "labels": {"severity": "critical"},
         "annotations": {"summary": "An engine pod of %s cannot be scraped for %s" % (where, DOWN_FOR),
                         "description": "Prometheus has failed to scrape an engine pod (label pod) of %s for %s: the "
                                        "engine is down or not serving." % (where, DOWN_FOR)}},
        {"alert": "InferencePodRestarting",
         "expr": 'increase(kube_pod_container_status_restarts_total{namespace="%s",pod=~"%s"}[%s]) > 0'
                 % (namespace, pods, RESTART_WINDOW),
         "for": RESTART_FOR,
         "labels": {"severity": "warning"},
         "annotations": {"summary": "A pod of %s restarted in the last %s" % (where, RESTART_WINDOW),
                         "description": "A container (labels pod, container) of workload %s restarted: each restart "
                                        "reloads the model weights. Check its previous logs and events."
                                        % settings["target_name"]}},
        {"alert": "InferenceGPUXidError",
         "expr": "max by (pod, gpu) (%s) > 0" % gpu_matcher,
         "labels": {"severity": "critical"},
         "annotations": {"summary": "A GPU of %s reported an Xid error" % where,
                         "description": "The DCGM exporter reports an Xid error (the value is the last Xid code) on a GPU "
                                        "(labels pod, gpu) of %s. Look the code up in NVIDIA's Xid catalogue; most need "
                                        "the pod moved or the node drained." % where}},
    ]


# --- The objects -----------------------------------------------------------------------------------------------------

def build_objects(settings, labels):
    """Dashboard ConfigMap and PrometheusRule of one instance, as ``settings`` asks (keys dashboards, alerts,
    dashboards_namespace; an absent key builds nothing), labelled like the endpoint's other objects (``labels``)."""
    objects = []
    name, namespace = settings["name"], settings["namespace"]
    if settings.get("dashboards"):
        # Compact JSON: one line in the rendered file, whatever YAML style the writer picks.
        model = json.dumps(dashboard(settings), sort_keys=True, separators=(",", ":"))
        dashboard_labels = dict(labels, **DASHBOARD_LABEL)
        dashboard_labels["app.kubernetes.io/component"] = "dashboards"
        objects.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name + "-grafana-dashboard",
                         "namespace": settings.get("dashboards_namespace") or namespace,
                         "labels": dashboard_labels},
            "data": {"%s-%s.json" % (namespace, name): model},
        })
    if settings.get("alerts"):
        # Prometheus selects rules like ServiceMonitors (kube-prometheus-stack: the release label), so the rule
        # carries the ServiceMonitor's extra labels.
        rule_labels = dict(labels, **(settings.get("servicemonitor_labels") or {}))
        rule_labels["app.kubernetes.io/component"] = "alerts"
        objects.append({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": name, "namespace": namespace, "labels": rule_labels},
            "spec": {"groups": [{"name": "gpuinfer-serving.%s.%s" % (namespace, name), "rules": alert_rules(settings)}]},
        })
    return objects
