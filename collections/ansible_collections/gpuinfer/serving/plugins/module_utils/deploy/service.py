# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""The Service's decisions in one call: its settings checked, then how metrics are scraped and how it scales.

Pure computation (no Ansible, no network). ``components`` is what gpu_cluster_info detected
(``components`` of its result), or the same shape built from the role's own lookups when it runs alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import observability

SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def settings_problems(settings):
    """Problems with the Service settings alone, each naming the variable."""
    problems = []
    engines = settings["engines"]
    if settings["engine"] not in engines:
        problems.append("inference_service_engine=%s: allowed %s (registered in module_utils/deploy/engines/registry.py)."
                        % (settings["engine"], ", ".join(engines)))
    if not SERVICE_NAME.match(str(settings["name"])):
        problems.append("inference_service_name='%s' must be a DNS label (lower case, digits, '-', starting with a letter)."
                        % settings["name"])
    if not settings["target_name"]:
        problems.append("inference_service_target_name must be set.")
    minimum, maximum = int(settings["min_replicas"]), int(settings["max_replicas"])
    if not 1 <= minimum <= maximum:
        problems.append("1 <= inference_service_min_replicas (%d) <= inference_service_max_replicas (%d) does not hold."
                        % (minimum, maximum))
    replicas = settings.get("replicas")
    if settings["autoscaling"] != "none" and replicas is not None and not minimum <= int(replicas) <= maximum:
        problems.append("The plan's %d replica(s) (plan_replicas) lie outside the autoscaler's range "
                        "inference_service_min_replicas=%d to inference_service_max_replicas=%d: the autoscaler would "
                        "override them at once. Set the range to include %d, or change plan_replicas."
                        % (int(replicas), minimum, maximum, int(replicas)))
    if float(settings["target_waiting"]) <= 0:
        problems.append("inference_service_target_waiting (%s) must be > 0." % settings["target_waiting"])
    expose = settings["expose"]
    if expose not in ("none", "httproute") and not settings["host"]:
        problems.append("inference_service_expose=%s needs inference_service_host." % expose)
    if expose == "httproute" and not settings["gateway_name"]:
        problems.append("inference_service_expose=httproute needs inference_service_gateway_name (the parent Gateway).")
    if settings["autoscaling"] == "keda" and not re.match(r"^https?://", str(settings["keda_server_address"])):
        problems.append("inference_service_keda_server_address='%s' must be the http(s) URL of the Prometheus that "
                        "scrapes the engine." % settings["keda_server_address"])
    return problems


def resolve(settings, components=None, object_settings=None):
    """{problems, notes, monitoring_mode, autoscaling_mode, objects}.

    ``components`` None means nothing can be asked (render mode): what was requested is rendered, ``auto``
    monitoring as a ServiceMonitor and ``hpa`` as an HPA, for a cluster that has the APIs. With
    ``object_settings`` (what only the objects need: namespace, port, layout, metric names, ...) and no
    problem, ``objects`` holds the endpoint's objects (build_objects); otherwise it is empty.
    """
    problems = settings_problems(settings)
    notes = []
    rendering = components is None
    components = components or {}
    if not rendering:
        if settings["autoscaling"] == "keda" and not (components.get("keda") or {}).get("installed"):
            problems.append("inference_service_autoscaling=keda but the cluster has no scaledobjects.keda.sh CRD: install "
                            "KEDA, or use inference_service_autoscaling=hpa or none.")
        if settings["expose"] == "httproute" and not (components.get("gateway_api") or {}).get("http_route"):
            problems.append("inference_service_expose=httproute but the cluster has no httproutes.gateway.networking.k8s.io "
                            "CRD: install the Gateway API CRDs and a Gateway controller, or use inference_service_expose=ingress.")
    operator_found = rendering or bool((components.get("prometheus_operator") or {}).get("service_monitor"))
    custom_metrics_found = rendering or bool((components.get("prometheus_adapter") or {}).get("available"))

    monitoring = settings["monitoring"]
    if monitoring == "auto":
        monitoring = "servicemonitor" if operator_found else "annotations"
    autoscaling = settings["autoscaling"]
    if autoscaling == "hpa" and not custom_metrics_found and not settings["hpa_force"]:
        autoscaling = "none"
        notes.append(
            "HPA skipped: the cluster registers no custom metrics API (APIService v1beta1.custom.metrics.k8s.io), so %s "
            "would never have a value. Install prometheus-adapter with the rule this role renders (ConfigMap "
            "%s-prometheus-adapter-rules), use inference_service_autoscaling=keda, or set inference_service_hpa_force=true."
            % (settings["custom_metric_name"], settings["name"]))
    objects = build_objects(dict(settings, **object_settings), monitoring, autoscaling) if object_settings and not problems else []
    return {"problems": problems, "notes": notes, "monitoring_mode": monitoring, "autoscaling_mode": autoscaling,
            "objects": objects}


def _with(base, extra):
    """``base`` updated with ``extra``'s truthy entries, as a new dict (keys of base first)."""
    merged = dict(base)
    merged.update((key, value) for key, value in extra.items() if value)
    return merged


def _adapter_rules(waiting_series, metric_name):
    """prometheus-adapter's rule for the queue-depth series, as its config.yaml text."""
    import yaml  # PyYAML ships with ansible-core; only the controller builds objects

    rules = {"rules": [{
        "seriesQuery": waiting_series + '{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^" + re.escape(waiting_series) + "$", "as": metric_name},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }]}
    return yaml.safe_dump(rules, indent=2, allow_unicode=True, default_flow_style=False)


def build_objects(settings, monitoring_mode, autoscaling_mode):
    """The endpoint's objects: Service; Ingress or HTTPRoute; ServiceMonitor (+ Grafana dashboard ConfigMap and
    PrometheusRule); HPA (+ prometheus-adapter rule) or KEDA ScaledObject, from checked ``settings`` and the
    monitoring and autoscaling modes resolve() decided."""
    name, namespace, port = settings["name"], settings["namespace"], int(settings["port"])
    labels = {
        "app.kubernetes.io/managed-by": "gpuinfer.serving",
        "app.kubernetes.io/part-of": "gpuinfer-serving",
        "app.kubernetes.io/name": settings["engine"],
        "app.kubernetes.io/instance": settings["instance"],
        "app.kubernetes.io/component": "endpoint",
    }
    selector = {"app.kubernetes.io/name": settings["engine"], "app.kubernetes.io/instance": settings["instance"]}
    if settings["multi_node"]:
        # Only the LWS leader (worker index 0) serves the API; workers run headless.
        selector["leaderworkerset.sigs.k8s.io/worker-index"] = "0"
    target = {"apiVersion": settings["controller_api_version"], "kind": settings["controller"], "name": settings["target_name"]}
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": int(settings["scale_up_stabilization_seconds"]),
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": int(settings["scale_down_stabilization_seconds"]),
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
    }
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": settings["metrics_path"]}
    objects = [{
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _with(metadata, {"annotations": scrape}) if monitoring_mode == "annotations" else metadata,
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]},
    }]
    host = settings["host"]
    if settings["expose"] == "ingress":
        backend = {"service": {"name": name, "port": {"name": "http"}}}
        spec = {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}
        tls = [{"hosts": [host], "secretName": settings["tls_secret"]}] if settings["tls_secret"] else None
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                        "metadata": _with(metadata, {"annotations": settings["ingress_annotations"]}),
                        "spec": _with(spec, {"ingressClassName": settings["ingress_class"], "tls": tls})})
    elif settings["expose"] == "httproute":
        parent = _with({"name": settings["gateway_name"]}, {"namespace": settings["gateway_namespace"]})
        spec = {"parentRefs": [parent],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                           "backendRefs": [{"name": name, "port": port}]}]}
        objects.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": metadata,
                        "spec": _with(spec, {"hostnames": [host] if host else None})})
    if monitoring_mode == "servicemonitor":
        objects.append({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": dict(metadata, labels=dict(labels, **settings["servicemonitor_labels"])),
            "spec": {"selector": {"matchLabels": labels}, "namespaceSelector": {"matchNames": [namespace]},
                     "endpoints": [{"port": "http", "path": settings["metrics_path"], "interval": settings["scrape_interval"]}]},
        })
        # What reads that scrape: the Grafana dashboard and the alert rules (module_utils/deploy/observability.py).
        objects.extend(observability.build_objects(settings, labels))
    waiting = settings["target_waiting_quantity"]
    if autoscaling_mode == "hpa":
        objects.append({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata,
            "spec": {"scaleTargetRef": target, "minReplicas": int(settings["min_replicas"]),
                     "maxReplicas": int(settings["max_replicas"]),
                     "metrics": [{"type": "Pods", "pods": {"metric": {"name": settings["custom_metric_name"]},
                                                           "target": {"type": "AverageValue", "averageValue": waiting}}}],
                     "behavior": behavior},
        })
    # The rule goes with the HPA that was asked for, also when the HPA waits for a custom metrics API.
    if settings["autoscaling"] == "hpa" and settings["adapter_rule"]:
        objects.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name + "-prometheus-adapter-rules", "namespace": settings["adapter_namespace"], "labels": labels},
            "data": {"config.yaml": _adapter_rules(settings["waiting_series"], settings["custom_metric_name"])},
        })
    if autoscaling_mode == "keda":
        query = 'sum(%s{namespace="%s",pod=~"%s-.*"})' % (settings["waiting_series"], namespace, settings["target_name"])
        objects.append({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": metadata,
            "spec": {"scaleTargetRef": target, "minReplicaCount": int(settings["min_replicas"]),
                     "maxReplicaCount": int(settings["max_replicas"]),
                     "pollingInterval": int(settings["keda_polling_interval"]),
                     "cooldownPeriod": int(settings["keda_cooldown_period"]),
                     "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
                     "triggers": [{"type": "prometheus", "metadata": {
                         "serverAddress": settings["keda_server_address"], "query": query, "threshold": waiting}}]},
        })
    return objects
