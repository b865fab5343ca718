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

SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def settings_problems(settings):
    """Problems with the Service settings alone, each naming the variable."""
    problems = []
    engines = settings["engines"]
    if settings["engine"] not in engines:
        problems.append("inference_service_engine=%s: allowed %s (registered in module_utils/engines.py)."
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


def resolve(settings, components=None):
    """{problems, notes, monitoring_mode, autoscaling_mode}.

    ``components`` None means nothing can be asked (render mode): what was requested is rendered, ``auto``
    monitoring as a ServiceMonitor and ``hpa`` as an HPA, for a cluster that has the APIs.
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
    return {"problems": problems, "notes": notes, "monitoring_mode": monitoring, "autoscaling_mode": autoscaling}
