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

import threading

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_labelled as labelled
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube.k8s_auth import (
    AUTH_ARG_SPEC,
    ApiException,
    api_client,
    authenticate,
    check_paging,
    count_requests,
    get_json,
    read_and_exit,
    read_pages,
    require_kubernetes,
)

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - Python 2
    ThreadPoolExecutor = None


CONNECT_TIMEOUT = 10
# Lists in flight at once: a remote API server's round trip, not its work, dominates small labelled lists.
LIST_WORKERS = 8
# Answers that mean "this resource cannot be listed here", not "the API server failed".
SKIP_STATUSES = (403, 404, 405)
# What a 403 answer to discovery lacks (a 403 for one resource's list is skipped, not a failure).
NEEDS = "API discovery (GET /api, /apis) must be allowed"


class LabelledReader(object):
    """Discovers the deletable resources and lists them with a label selector, counting HTTP requests."""

    def __init__(self, client, page_size=500, request_timeout=60):
        self.client = client
        self.page_size = page_size
        self.timeout = (min(CONNECT_TIMEOUT, request_timeout), request_timeout)
        self.warnings = []
        self.skipped = []
        self._lock = threading.Lock()
        # Counted at the REST layer: every HTTP request, whichever thread issued it.
        self._requests = count_requests(client)

    @property
    def api_calls(self):
        """HTTP requests made so far."""
        return self._requests.count

    def _get(self, path, accept, query=None):
        """GET ``path`` verbatim with a chosen Accept header and query; the parsed JSON body."""
        return get_json(self.client, path, accept, self.timeout, query)

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

        def get_page(token):
            query = [("labelSelector", selector), ("limit", self.page_size)]
            if token:
                query.append(("continue", token))
            return self._get(path, labelled.METADATA_LIST_ACCEPT, query)

        def add(state, page):
            objects, owned = state
            found, left_out = labelled.objects_from_list(resource, page, include_owned)
            objects.extend(found)
            return objects, owned + left_out

        try:
            return read_pages(get_page, lambda: ([], 0), add)
        except ApiException as exc:
            if exc.status not in SKIP_STATUSES:
                raise
            self._skip(
                labelled.api_version(resource["group"], resource["version"]), resource["resource"], namespace,
                "%s %s" % (exc.status, exc.reason),
            )
            return [], 0

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
    require_kubernetes(module, api_calls=0)

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
    check_paging(module)

    client = authenticate(module, api_client, api_calls=0)
    reader = LabelledReader(client, params["page_size"], params["request_timeout"])
    read_and_exit(
        module, client, reader,
        lambda: reader.gather(selector, namespaces, params["cluster_scoped"], params["include_owned"]),
        NEEDS, bad_response=(labelled.DiscoveryError,),
    )


def main():
    run_module()


if __name__ == "__main__":
    main()
