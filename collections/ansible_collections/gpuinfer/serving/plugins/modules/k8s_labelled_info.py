#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_labelled_info
short_description: Find every Kubernetes object carrying given labels, whatever its kind, in delete order
version_added: "0.1.0"
description:
  - Finds, through API discovery, every resource the API server serves that can be listed and deleted (the preferred
    version of each group, subresources left out), then lists each one with a label selector in the given namespaces
    and, with O(cluster_scoped=true), the cluster-scoped ones too. Custom resources (LeaderWorkerSet, ScaledObject,
    ServiceMonitor, HTTPRoute ...) are found the same way as built-in ones; a kind whose CRD is not installed is
    simply not served.
  - Discovery takes two requests (C(GET /apis) and C(GET /api) with aggregated discovery); servers without aggregated
    discovery (before Kubernetes 1.30 by default) are read the legacy way, one more request per group.
  - Lists ask for object metadata only, so Secret and ConfigMap contents are never read.
  - Objects that an owner reference marks as made by a controller (a Deployment's ReplicaSets and pods, a Service's
    EndpointSlices, a StatefulSet's ControllerRevisions ...) inherit their owner's labels; they are left out (and
    counted in RV(owned)) unless O(include_owned=true), because the garbage collector removes them with their owner
    and deleting them alone races with the controller that recreates them.
  - Events and core C(endpoints) (kept by the endpoints controller in step with their Service) are never listed.
  - Returns the objects in delete order - autoscalers, then workload controllers, then pods, then everything else,
    then PersistentVolumeClaims - so a caller that deletes them one after the other never has a controller recreate
    what was just deleted nor an autoscaler scale a target being deleted.
  - Only reads from the API server; safe in check mode.
author:
  - gpuinfer.serving contributors (!UNKNOWN)
extends_documentation_fragment:
  - gpuinfer.serving.k8s_auth
options:
  label_selectors:
    description:
      - Label selector requirements, all of which an object must match, for example
        C(app.kubernetes.io/managed-by=gpuinfer.serving).
      - Each entry is one requirement of a Kubernetes label selector (C(key=value), C(key!=value), C(key),
        C(!key), C(key in (a,b))). At least one must be a C(key=value) equality, so the selection is never every object.
    type: list
    elements: str
    required: true
  namespaces:
    description:
      - Namespaces whose namespaced resources are listed. A namespace that does not exist has no objects.
    type: list
    elements: str
    default: []
  cluster_scoped:
    description:
      - Also list the cluster-scoped resources (Namespaces, ClusterRoles, PersistentVolumes, custom resources ...).
      - Needs C(list) on them cluster-wide.
    type: bool
    default: false
  include_owned:
    description:
      - Also return the objects a controller made from a labelled owner (see the description).
    type: bool
    default: false
  page_size:
    description:
      - Items per list request (the API C(limit)); lists continue with the server's C(continue) token.
    type: int
    default: 500
  request_timeout:
    description:
      - Seconds to wait for each API response (connection setup is capped at 10 seconds).
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Read-only; check mode changes nothing.
notes:
  - A resource that answers 403 (not allowed to list it), 404 or 405 is skipped with a warning and reported in
    RV(skipped), not a failure; a group whose API server extension does not answer (a C(Stale) version in aggregated
    discovery, an error for its legacy resource list) is skipped the same way.
  - Lists are sent a few at a time in parallel; RV(api_calls) counts every HTTP request.
seealso:
  - module: kubernetes.core.k8s
  - module: gpuinfer.serving.gpu_cluster_info
"""

EXAMPLES = r"""
- name: Find what the collection created for one instance
  gpuinfer.serving.k8s_labelled_info:
    label_selectors:
      - app.kubernetes.io/managed-by=gpuinfer.serving
      - app.kubernetes.io/instance=llama-3-1-70b
    namespaces: [llm-serving, monitoring]
  register: labelled

- name: Delete them one after the other, in the order returned
  kubernetes.core.k8s:
    state: absent
    definition: >-
      {% set found = namespace(definitions=[]) %}
      {% for obj in labelled.objects %}
      {%   set found.definitions = found.definitions + [{'apiVersion': obj.api_version, 'kind': obj.kind,
                                                        'metadata': {'name': obj.name, 'namespace': obj.namespace}}] %}
      {% endfor %}
      {{ found.definitions }}
    wait: true
  when: labelled.objects | length > 0

- name: Everything labelled for the instance, cluster-scoped objects included
  gpuinfer.serving.k8s_labelled_info:
    label_selectors: [app.kubernetes.io/instance=llama-3-1-70b]
    namespaces: [llm-serving]
    cluster_scoped: true
  register: everywhere
"""

RETURN = r"""
objects:
  description:
    - The objects found, in delete order - HorizontalPodAutoscaler and KEDA ScaledObject first, then workload
      controllers (LeaderWorkerSet, Deployment, StatefulSet, Job ...), then pods, then every other kind, then
      PersistentVolumeClaims; by kind, namespace and name within each step.
  returned: success
  type: list
  elements: dict
  contains:
    api_version:
      description: C(apps/v1), C(v1) ... (the preferred version of the group).
      type: str
    kind:
      description: Kind, for example C(Deployment).
      type: str
    name:
      description: Object name.
      type: str
    namespace:
      description: Namespace; null for a cluster-scoped object.
      type: str
  sample:
    - {api_version: autoscaling/v2, kind: HorizontalPodAutoscaler, name: llama-3-1-70b, namespace: llm-serving}
    - {api_version: apps/v1, kind: Deployment, name: llama-3-1-70b-vllm, namespace: llm-serving}
    - {api_version: v1, kind: ConfigMap, name: llama-3-1-70b-prometheus-adapter-rules, namespace: monitoring}
    - {api_version: v1, kind: Service, name: llama-3-1-70b, namespace: llm-serving}
resources_listed:
  description: Resources (group, version and plural) listed, each in every namespace for namespaced ones.
  returned: success
  type: int
  sample: 41
owned:
  description: Matching objects left out because a controller made them from an owner (see O(include_owned)).
  returned: success
  type: int
  sample: 3
skipped:
  description: Resources not listed, with C(api_version), C(resource), C(namespace) (null when cluster-scoped or
    the whole group) and C(reason) (C(403 Forbidden), C(stale) ...).
  returned: success
  type: list
  elements: dict
discovery:
  description: How API discovery was done - C(aggregated) (two requests) or C(legacy) (one more per group).
  returned: success
  type: str
api_calls:
  description: HTTP requests made to the API server.
  returned: always
  type: int
  sample: 84
"""

import json
import threading

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.gpuinfer.serving.plugins.module_utils import k8s_labelled as labelled
from ansible_collections.gpuinfer.serving.plugins.module_utils.k8s_auth import (
    AUTH_ARG_SPEC,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    K8sAuthError,
    api_client,
)

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - Python 2
    ThreadPoolExecutor = None

try:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError as Urllib3HTTPError
except ImportError:  # pragma: no cover - reported through missing_required_lib
    class ApiException(Exception):
        status = None
        reason = None
        body = None

    class Urllib3HTTPError(Exception):
        pass


CONNECT_TIMEOUT = 10
# A continue token expires after ~5 minutes (etcd compaction); the list then restarts from scratch.
MAX_LIST_ATTEMPTS = 2
# Lists in flight at once: a remote API server's round trip, not its work, dominates small labelled lists.
LIST_WORKERS = 8
# Answers that mean "this resource cannot be listed here", not "the API server failed".
SKIP_STATUSES = (403, 404, 405)


class ListExpired(Exception):
    pass


class LabelledReader(object):
    """Discovers the deletable resources and lists them with a label selector, counting HTTP requests."""

    def __init__(self, client, page_size=500, request_timeout=60):
        self.client = client
        self.page_size = page_size
        self.timeout = (min(CONNECT_TIMEOUT, request_timeout), request_timeout)
        self.api_calls = 0
        self.warnings = []
        self.skipped = []
        self._lock = threading.Lock()
        self._count_requests(client)

    def _count_requests(self, client):
        # Counting at the REST layer sees every HTTP request, whichever thread issued it.
        rest = client.rest_client
        send = rest.request

        def counted(*args, **kwargs):
            with self._lock:
                self.api_calls += 1
            return send(*args, **kwargs)

        rest.request = counted

    def _get(self, path, accept, query=None):
        """GET ``path`` verbatim with a chosen Accept header and query; the parsed JSON body."""
        client = self.client
        if hasattr(client, "param_serialize"):
            request = client.param_serialize(
                "GET", path, query_params=query or None, header_params={"Accept": accept}, auth_settings=["BearerToken"]
            )
            response = client.call_api(*request, _request_timeout=self.timeout)
            response.read()
            if not 200 <= response.status <= 299:
                ApiException.from_response(http_resp=response, body=response.data, data=None)
                raise ApiException(status=response.status, reason=response.reason)  # not reached with current clients
        else:  # kubernetes client releases before the 2025 generator
            response = client.call_api(
                path, "GET", query_params=query or [], header_params={"Accept": accept}, auth_settings=["BearerToken"],
                _preload_content=False, _return_http_data_only=True, _request_timeout=self.timeout,
            )
        data = response.data
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(data)

    def _skip(self, api_version, resource, namespace, reason):
        with self._lock:
            self.skipped.append({"api_version": api_version, "resource": resource, "namespace": namespace, "reason": reason})

    def _map(self, function, items):
        """``function`` over ``items``, LIST_WORKERS at a time; results in the order of ``items``."""
        if ThreadPoolExecutor is None or len(items) < 2:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(LIST_WORKERS, len(items))) as pool:
            return list(pool.map(function, items))

    def _legacy_resources(self, groups):
        """Resource lists of the preferred version of ``groups`` ({group: version}), one request each."""

        def read(item):
            group, version = item
            try:
                return labelled.parse_resource_list(self._get(labelled.group_version_path(group, version), "application/json"))
            except ApiException as exc:
                # An extension API server that is down answers 503; the core group must answer.
                if not group:
                    raise
                self._skip(labelled.api_version(group, version), None, None, "%s %s" % (exc.status, exc.reason))
                return []

        resources = []
        for found in self._map(read, sorted(groups.items())):
            resources.extend(found)
        return resources

    def discover(self):
        """``(deletable resources, mode)`` from aggregated discovery, else the legacy documents."""
        resources, legacy, stale = [], {}, []
        for path in ("/api", "/apis"):
            document = self._get(path, labelled.AGGREGATED_DISCOVERY_ACCEPT)
            parsed = labelled.parse_aggregated(document)
            if parsed is None:
                legacy.update(labelled.parse_legacy_groups(document))
            else:
                resources.extend(parsed[0])
                stale.extend(parsed[1])
        for group_version in stale:
            self._skip(group_version, None, None, "stale")
        if legacy:
            resources.extend(self._legacy_resources(legacy))
        return labelled.deletable(resources), ("legacy" if legacy else "aggregated")

    def list_objects(self, resource, namespace, selector, include_owned):
        """``(objects, owned)`` of one resource in one namespace (None: cluster-scoped), every page."""
        path = labelled.list_path(resource, namespace)
        for attempt in range(MAX_LIST_ATTEMPTS):
            objects, owned, token = [], 0, None
            try:
                while True:
                    query = [("labelSelector", selector), ("limit", self.page_size)]
                    if token:
                        query.append(("continue", token))
                    try:
                        document = self._get(path, labelled.METADATA_LIST_ACCEPT, query)
                    except ApiException as exc:
                        if exc.status == 410 and token and attempt + 1 < MAX_LIST_ATTEMPTS:
                            raise ListExpired()
                        if exc.status in SKIP_STATUSES:
                            self._skip(
                                labelled.api_version(resource["group"], resource["version"]), resource["resource"], namespace,
                                "%s %s" % (exc.status, exc.reason),
                            )
                            return [], 0
                        raise
                    found, left_out = labelled.objects_from_list(resource, document, include_owned)
                    objects.extend(found)
                    owned += left_out
                    token = (document.get("metadata") or {}).get("continue")
                    if not token:
                        return objects, owned
            except ListExpired:
                continue
        return objects, owned

    def gather(self, selector, namespaces, cluster_scoped, include_owned):
        resources, mode = self.discover()
        work = []
        for resource in resources:
            if resource["namespaced"]:
                work.extend((resource, namespace) for namespace in namespaces)
            elif cluster_scoped:
                work.append((resource, None))
        results = self._map(lambda item: self.list_objects(item[0], item[1], selector, include_owned), work)
        objects, owned = [], 0
        for found, left_out in results:
            objects.extend(found)
            owned += left_out
        self.skipped.sort(key=lambda entry: (entry["api_version"], entry["resource"] or "", entry["namespace"] or ""))
        by_reason = {}
        for entry in self.skipped:
            where = entry["resource"] or "the whole group"
            where = "%s (%s)" % (where, entry["api_version"])
            if entry["namespace"]:
                where += " in %s" % entry["namespace"]
            by_reason.setdefault(entry["reason"], []).append(where)
        for reason, places in sorted(by_reason.items()):
            if reason == "stale":
                self.warnings.append("not listed, their API server extension does not answer (Stale in discovery): %s" % ", ".join(places))
            else:
                self.warnings.append("not listed, the API server answered %s: %s" % (reason, ", ".join(places)))
        return {
            "objects": labelled.delete_order(objects),
            "resources_listed": len(set((item[0]["group"], item[0]["resource"]) for item in work)),
            "owned": owned,
            "skipped": self.skipped,
            "discovery": mode,
        }


def _api_error_message(exc, host):
    body = exc.body
    detail = None
    if body:
        try:
            detail = json.loads(body if isinstance(body, str) else body.decode("utf-8")).get("message")
        except (ValueError, AttributeError, UnicodeDecodeError):
            detail = None
    if exc.status == 401:
        return (
            "the API server at %s rejected the credentials (401 Unauthorized): check kubeconfig/context, "
            "an expired token or client certificate" % host
        )
    if exc.status == 403:
        return "forbidden by the API server at %s (403): %s; API discovery (GET /api, /apis) must be allowed" % (
            host, detail or exc.reason
        )
    return "the API server at %s answered %s %s: %s" % (host, exc.status, exc.reason, detail or "no details")


def run_module():
    argument_spec = dict(
        label_selectors=dict(type="list", elements="str", required=True),
        namespaces=dict(type="list", elements="str", default=[]),
        cluster_scoped=dict(type="bool", default=False),
        include_owned=dict(type="bool", default=False),
        page_size=dict(type="int", default=500),
        request_timeout=dict(type="int", default=60),
    )
    argument_spec.update(AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR), api_calls=0)

    params = module.params
    try:
        selector = labelled.label_selector(params["label_selectors"])
    except labelled.SelectorError as exc:
        module.fail_json(msg=str(exc), api_calls=0)
    namespaces = []
    for namespace in params["namespaces"]:
        namespace = (namespace or "").strip()
        if not namespace:
            module.fail_json(msg="namespaces has an empty entry: %s" % params["namespaces"], api_calls=0)
        if namespace not in namespaces:
            namespaces.append(namespace)
    if not namespaces and not params["cluster_scoped"]:
        module.fail_json(msg="nothing to list: give namespaces, cluster_scoped=true, or both", api_calls=0)
    if params["page_size"] < 1:
        module.fail_json(msg="page_size must be a positive number of items per request, got %s" % params["page_size"], api_calls=0)
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second, got %s" % params["request_timeout"], api_calls=0)

    try:
        client = api_client(params)
    except K8sAuthError as exc:
        module.fail_json(msg="cannot authenticate to Kubernetes: %s" % exc, api_calls=0)

    host = client.configuration.host
    reader = LabelledReader(client, params["page_size"], params["request_timeout"])
    try:
        result = reader.gather(selector, namespaces, params["cluster_scoped"], params["include_owned"])
    except ApiException as exc:
        module.fail_json(msg=_api_error_message(exc, host), status=exc.status, api_calls=reader.api_calls)
    except (Urllib3HTTPError, OSError) as exc:
        module.fail_json(
            msg="cannot reach the Kubernetes API server at %s: %s (check the kubeconfig server address, "
            "VPN/firewall, and that the cluster is up)" % (host, exc),
            api_calls=reader.api_calls,
        )
    except (labelled.DiscoveryError, ValueError) as exc:
        module.fail_json(msg="unexpected API response from %s: %s" % (host, exc), api_calls=reader.api_calls)
    finally:
        client.close()

    for warning in reader.warnings:
        module.warn(warning)
    module.exit_json(changed=False, api_calls=reader.api_calls, **result)


def main():
    run_module()


if __name__ == "__main__":
    main()
