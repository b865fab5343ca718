#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_cluster_info
short_description: Inventory of the GPU nodes of a Kubernetes cluster and of the components serving needs
version_added: "0.1.0"
description:
  - Lists nodes and pods through the Kubernetes API (paginated, server-side filtered, never one request per
    node) and reports, per node, readiness, cordon state, taints, C(nvidia.com/gpu) capacity, allocatable,
    requested by running pods and free, the GPU Feature Discovery labels, RDMA resources and NIC labels.
  - Summarises GPUs per product (free GPUs, largest free block on one node, nodes with at least N free).
  - Detects the optional components GPU serving relies on from API discovery (one request with aggregated
    discovery) and the GPU Operator C(ClusterPolicy) state.
  - Only reads from the API server; safe in check mode.
author:
  - gpuinfer.serving contributors (!UNKNOWN)
extends_documentation_fragment:
  - gpuinfer.serving.k8s_auth
options:
  page_size:
    description:
      - Items per list request (the API C(limit)); lists continue with the server's C(continue) token.
      - Larger pages mean fewer requests and more memory per response.
    type: int
    default: 500
  node_selector:
    description:
      - Label selector restricting the nodes reported, for example C(nvidia.com/gpu.present=true).
      - Pods are still listed cluster-wide, because their requests decide what is free on the selected nodes.
    type: str
  exclude_pods:
    description:
      - Pods whose GPUs are reported as free, typically the workload a deploy is about to replace
        (re-running a deploy must not see its own pods as competitors for the GPUs).
      - Pods match when they are in O(exclude_pods.namespace) (any namespace when omitted) and carry every label of
        O(exclude_pods.labels).
    type: dict
    suboptions:
      namespace:
        description: Namespace of the pods.
        type: str
      labels:
        description: Labels the pods must all carry; an empty dict excludes nothing.
        type: dict
        default: {}
  namespace_objects:
    description:
      - Also read, in the same run, the objects of one namespace a deploy refers to, so a deploy asks the API server
        once before it creates anything - Secrets by name (their key names and type, never their values),
        PersistentVolumeClaims by name (phase and capacity) and Jobs by name (succeeded, failed, complete).
      - Needs C(get) on the namespace and C(list) on Secrets, PersistentVolumeClaims and Jobs in it; a namespace that
        does not exist yet is reported with C(exists=false) and no objects.
    type: dict
    suboptions:
      namespace:
        description: The namespace.
        type: str
        required: true
      secrets:
        description: Secret names.
        type: list
        elements: str
        default: []
      claims:
        description: PersistentVolumeClaim names.
        type: list
        elements: str
        default: []
      jobs:
        description: Job names.
        type: list
        elements: str
        default: []
      configmaps:
        description: ConfigMap names; their data is returned (the deploy's revision history lives in one).
        type: list
        elements: str
        default: []
      workload_labels:
        description:
          - Labels (all must match) of the Deployments and LeaderWorkerSets to list, for example the instance's; a
            deploy removes those it no longer builds (a change of layout or engine replaces the workload).
          - Needs C(list) on Deployments, and on LeaderWorkerSets where the cluster serves them.
        type: dict
        default: {}
  gpu_resource:
    description:
      - Extended resource name counted as GPUs.
    type: str
    default: nvidia.com/gpu
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
  - Needs C(get)/C(list) on nodes and pods cluster-wide. Without access to C(clusterpolicies.nvidia.com)
    or C(apiservices) the component report says C(unknown) for them, with a warning, instead of failing.
seealso:
  - module: gpuinfer.serving.gpu_plan_check
"""

EXAMPLES = r"""
- name: Read the GPU inventory
  gpuinfer.serving.gpu_cluster_info:
    kubeconfig: ~/.kube/config
  register: cluster

- name: Free H100 GPUs
  ansible.builtin.debug:
    msg: "{{ cluster.summary['NVIDIA-H100-80GB-HBM3'].free_gpus | default(0) }}"

- name: Only nodes GPU Feature Discovery labelled
  gpuinfer.serving.gpu_cluster_info:
    node_selector: nvidia.com/gpu.present=true
    page_size: 1000
  register: gpu_nodes
"""

RETURN = r"""
nodes:
  description: One entry per node, sorted by name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
    ready:
      description: The node's Ready condition is True.
      type: bool
    schedulable:
      description: The node is not cordoned (C(spec.unschedulable) unset).
      type: bool
    problems:
      description: Pressure conditions that are True (MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable).
      type: list
      elements: str
    taints:
      description: Taints (key, value, effect).
      type: list
      elements: dict
    zone:
      description: The C(topology.kubernetes.io/zone) label.
      type: str
    gpu:
      description:
        - C(capacity), C(allocatable), C(requested) (by pods that are not Succeeded/Failed, init containers
          counted the way the scheduler does) and C(free) of I(gpu_resource); C(product), C(base_product)
          (without C(-SHARED)), C(memory_mib), C(count), C(family), C(clique), C(mig_strategy), C(mig),
          C(shared) and C(driver_version) (major, minor, revision, full) from the GFD labels; C(driver_preinstalled)
          when the GPU Operator labelled the node C(nvidia.com/gpu.deploy.driver=pre-installed) (its host has a driver).
      type: dict
    gfd_labels:
      description: The GPU Feature Discovery / GPU Operator labels present on the node.
      type: dict
    mig_resources:
      description: Allocatable C(nvidia.com/mig-*) resources (MIG mixed strategy).
      type: dict
    rdma_resources:
      description: Allocatable C(rdma/*) and C(nvidia.com/hostdev) resources.
      type: dict
    rdma:
      description: At least one RDMA resource is allocatable.
      type: bool
    rdma_nic:
      description: Node Feature Discovery found a Mellanox/NVIDIA NIC (C(pci-15b3)) or RDMA capability.
      type: bool
    nic_labels:
      description: NFD labels about NICs (C(pci-15b3.*), C(rdma.*), C(network-sriov.*)).
      type: dict
    cpu_allocatable:
      description: Allocatable CPU cores.
      type: float
    memory_allocatable_bytes:
      description: Allocatable memory in bytes.
      type: int
  sample:
    - name: dgx-h100-0
      ready: true
      schedulable: true
      problems: []
      taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
      zone: zone-a
      gpu: {resource: nvidia.com/gpu, capacity: 8, allocatable: 8, requested: 2, free: 6, product: NVIDIA-H100-80GB-HBM3,
            base_product: NVIDIA-H100-80GB-HBM3, memory_mib: 81559, count: 8, family: hopper, clique: null,
            mig_strategy: single, mig: false, shared: false,
            driver_version: {major: "570", minor: "172", revision: "08", full: "570.172.08"}, driver_preinstalled: false}
      rdma: true
summary:
  description:
    - Per GPU product (C(unlabelled) when GFD labels are missing) - C(nodes), C(ready_nodes), C(schedulable_nodes)
      (Ready and not cordoned), C(rdma_nodes), C(memory_mib), C(family), C(gpus_per_node), C(total_gpus)
      (allocatable), C(requested_gpus), C(free_gpus) and C(largest_free_block) on schedulable nodes, and
      C(nodes_with_free) (threshold as a string -> schedulable nodes with at least that many free GPUs).
  returned: success
  type: dict
  sample:
    NVIDIA-H100-80GB-HBM3: {nodes: 2, ready_nodes: 2, schedulable_nodes: 2, rdma_nodes: 2, memory_mib: 81559, family: hopper,
                            gpus_per_node: [8], total_gpus: 16, requested_gpus: 2, free_gpus: 14, largest_free_block: 8,
                            nodes_with_free: {"1": 2, "2": 2, "4": 2, "8": 1}}
totals:
  description: Cluster-wide counts - C(nodes), C(gpu_nodes), C(gpus), C(requested_gpus), C(free_gpus), C(pods) (pods counted).
  returned: success
  type: dict
components:
  description:
    - Optional components - C(gpu_operator) (C(installed), C(state) from the ClusterPolicy - ready, notReady, ignored,
      C(missing) when the CRD exists without a ClusterPolicy, C(unknown) when it could not be read - and C(ready)),
      C(leaderworkerset), C(prometheus_operator) (C(service_monitor), C(pod_monitor)), C(keda),
      C(prometheus_adapter) (custom.metrics.k8s.io; C(available) from its APIService), C(metrics_server),
      C(nim_operator) (C(nim_service), C(nim_cache)) and C(node_feature_discovery).
  returned: success
  type: dict
discovery:
  description: How API discovery was done - C(aggregated) (one request) or C(legacy) (one request per interesting group).
  returned: success
  type: str
namespace_objects:
  description:
    - With O(namespace_objects), what exists in that namespace - C(namespace), C(exists), C(secrets) (name ->
      C(exists), C(type), C(keys)), C(claims) (name -> C(exists), C(phase), C(capacity), C(access_modes)), C(jobs) (name -> C(exists),
      C(succeeded), C(failed), C(complete), C(failed_condition)), C(configmaps) (name -> C(exists), C(data)) and
      C(workloads) (a list of C(api_version), C(kind), C(name), C(namespace), C(revision) - the
      C(gpuinfer.serving/deploy-revision) annotation -, C(resource_version), C(ready) and C(handed_over_fields) -
      for a workload an earlier version of the collection created or patched, its C(metadata.managedFields) with that
      client's entries handed over to the collection's server-side apply, else null).
  returned: when namespace_objects is given
  type: dict
api_calls:
  description: HTTP requests made to the API server.
  returned: always
  type: int
  sample: 7
"""

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import cluster_inventory as inventory
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube.k8s_auth import (
    AGGREGATED_DISCOVERY_ACCEPT,
    AUTH_ARG_SPEC,
    ApiException,
    api_client,
    authenticate,
    check_paging,
    count_requests,
    get_raw,
    read_and_exit,
    read_pages,
    require_kubernetes,
    response_json,
)

JSON = "application/json"

CONNECT_TIMEOUT = 10
# What a 403 answer to the node and pod lists lacks.
NEEDS = "the account needs get/list on nodes and pods cluster-wide (a ClusterRole bound with a ClusterRoleBinding)"


class ClusterReader(object):
    """Reads what the inventory needs with as few requests as the API allows, counting them."""

    def __init__(self, client, page_size=500, request_timeout=60, gpu_resource=inventory.DEFAULT_GPU_RESOURCE, exclude_pods=None):
        self.client = client
        self.exclude_pods = exclude_pods
        self.page_size = page_size
        self.timeout = (min(CONNECT_TIMEOUT, request_timeout), request_timeout)
        self.gpu_resource = gpu_resource
        self.warnings = []
        self._requests = count_requests(client)

    @property
    def api_calls(self):
        """HTTP requests made so far."""
        return self._requests.count

    def _get(self, path, query=None):
        # Raw GETs: importing the generated API classes (CoreV1Api alone) costs ~1.7 s per module run.
        return response_json(get_raw(self.client, path, JSON, self.timeout, query))

    def _paged(self, path, start, add, **params):
        """The state ``add(state, items)`` builds from every page of a list (see read_pages)."""

        def get_page(token):
            query = [("limit", self.page_size)] + sorted(params.items()) + ([("continue", token)] if token else [])
            return self._get(path, query)

        return read_pages(get_page, start, lambda state, page: add(state, page.get("items") or []))

    def requested_gpus(self):
        """{node: GPUs requested} from every scheduled, non-terminated pod, and the number of pods."""

        def add(state, items):
            requested, pods = state
            inventory.requested_by_node(items, self.gpu_resource, into=requested, exclude=self.exclude_pods)
            return requested, pods + len(items)

        return self._paged("/api/v1/pods", lambda: ({}, 0), add, fieldSelector=inventory.POD_FIELD_SELECTOR)

    def nodes(self, requested, node_selector=None):

        def add(nodes, items):
            nodes.extend(inventory.build_nodes(items, requested=requested, gpu_resource=self.gpu_resource))
            return nodes

        params = {"labelSelector": node_selector} if node_selector else {}
        nodes = self._paged("/api/v1/nodes", list, add, **params)
        return sorted(nodes, key=lambda entry: entry["name"])

    def discovery(self):
        # Raw: the generated ApisApi asks for /apis/, and the API server serves aggregated discovery on /apis only.
        response = get_raw(self.client, "/apis", AGGREGATED_DISCOVERY_ACCEPT, self.timeout)
        discovery = inventory.parse_discovery(response_json(response))
        mode = "aggregated"
        if any(entry["resources"] is None for entry in discovery.values()):
            mode = "legacy"
            for group in inventory.INTERESTING_GROUPS:
                entry = discovery.get(group)
                if not entry or not entry["preferred"]:
                    continue
                try:
                    resources = self._get("/apis/%s/%s" % (group, entry["preferred"]))
                except ApiException as exc:
                    # An aggregated API whose backend is down answers 503; judge that group by its presence alone.
                    self.warnings.append("cannot list the resources of %s/%s (%s %s)" % (group, entry["preferred"], exc.status, exc.reason))
                    continue
                inventory.add_resource_list(discovery, resources)
        return discovery, mode

    def cluster_policies(self, discovery):
        entry = discovery.get(inventory.GPU_OPERATOR_GROUP)
        # None: the group is served but its resources are unknown (legacy discovery failed): try anyway.
        if inventory.has_resource(discovery, inventory.GPU_OPERATOR_GROUP, "clusterpolicies") is False:
            return []
        version = next(
            (v for v, names in sorted((entry["resources"] or {}).items()) if "clusterpolicies" in names), entry["preferred"]
        )
        try:
            policies = self._get("/apis/%s/%s/clusterpolicies" % (inventory.GPU_OPERATOR_GROUP, version))
        except ApiException as exc:
            if exc.status in (401, 403, 404):
                self.warnings.append(
                    "cannot list clusterpolicies.nvidia.com (%s %s): GPU Operator state reported as unknown" % (exc.status, exc.reason)
                )
                return None
            raise
        return policies.get("items") or []

    def metrics_api_services(self, discovery):
        if inventory.CUSTOM_METRICS_GROUP not in discovery:
            return []
        version = discovery[inventory.CUSTOM_METRICS_GROUP]["preferred"]
        try:
            service = self._get("/apis/apiregistration.k8s.io/v1/apiservices/%s.%s" % (version, inventory.CUSTOM_METRICS_GROUP))
        except ApiException as exc:
            if exc.status in (401, 403, 404):
                self.warnings.append("cannot read the custom metrics APIService (%s %s)" % (exc.status, exc.reason))
                return None
            raise
        return [service]

    def _list(self, path, wanted):
        return (self._get(path).get("items") or []) if wanted else []

    def namespace_objects(self, wanted, lws_served=False):
        namespace = wanted["namespace"]
        try:
            self._get("/api/v1/namespaces/%s" % namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return inventory.summarize_namespace_objects(namespace, False, [], [], [], wanted)
        secrets = self._list("/api/v1/namespaces/%s/secrets" % namespace, wanted.get("secrets"))
        claims = self._list("/api/v1/namespaces/%s/persistentvolumeclaims" % namespace, wanted.get("claims"))
        jobs = self._list("/apis/batch/v1/namespaces/%s/jobs" % namespace, wanted.get("jobs"))
        configmaps = self._list("/api/v1/namespaces/%s/configmaps" % namespace, wanted.get("configmaps"))
        workloads = []
        labels = wanted.get("workload_labels") or {}
        if labels:
            selector = quote(",".join("%s=%s" % (key, labels[key]) for key in sorted(labels)), safe="")
            # List items carry no kind; the summary needs it.
            workloads = [dict(item, apiVersion="apps/v1", kind="Deployment") for item in self._list(
                "/apis/apps/v1/namespaces/%s/deployments?labelSelector=%s" % (namespace, selector), True)]
            if lws_served:
                workloads += [dict(item, apiVersion=inventory.LWS_GROUP + "/v1", kind="LeaderWorkerSet") for item in self._list(
                    "/apis/%s/v1/namespaces/%s/leaderworkersets?labelSelector=%s" % (inventory.LWS_GROUP, namespace, selector), True)]
        return inventory.summarize_namespace_objects(namespace, True, secrets, claims, jobs, wanted, configmaps, workloads)

    def gather(self, node_selector=None):
        requested, pod_count = self.requested_gpus()
        nodes = self.nodes(requested, node_selector)
        discovery, mode = self.discovery()
        components = inventory.detect_components(
            discovery, self.cluster_policies(discovery), self.metrics_api_services(discovery)
        )
        gpu_nodes = [n for n in nodes if n["gpu"]["allocatable"] > 0 or n["gpu"]["capacity"] > 0]
        return {
            "nodes": nodes,
            "summary": inventory.summarize(nodes),
            "totals": {
                "nodes": len(nodes),
                "gpu_nodes": len(gpu_nodes),
                "gpus": sum(n["gpu"]["allocatable"] for n in gpu_nodes),
                "requested_gpus": sum(n["gpu"]["requested"] for n in gpu_nodes),
                "free_gpus": sum(n["gpu"]["free"] for n in gpu_nodes if inventory.usable(n)),
                "pods": pod_count,
            },
            "components": components,
            "discovery": mode,
        }


ARGUMENT_SPEC = dict(
    page_size=dict(type="int", default=500),
    node_selector=dict(type="str"),
    gpu_resource=dict(type="str", default=inventory.DEFAULT_GPU_RESOURCE),
    exclude_pods=dict(type="dict", options=dict(namespace=dict(type="str"), labels=dict(type="dict", default={}))),
    namespace_objects=dict(type="dict", options=dict(
        namespace=dict(type="str", required=True),
        secrets=dict(type="list", elements="str", default=[], no_log=False),
        claims=dict(type="list", elements="str", default=[]),
        jobs=dict(type="list", elements="str", default=[]),
        configmaps=dict(type="list", elements="str", default=[]),
        workload_labels=dict(type="dict", default={}),
    )),
    request_timeout=dict(type="int", default=60),
)
ARGUMENT_SPEC.update(AUTH_ARG_SPEC)


def run(module):
    """Read the cluster and end ``module`` with exit_json or fail_json.

    ``module`` is an AnsibleModule, or the action plugin's in-process stand-in with the same params, warn,
    exit_json and fail_json.
    """
    require_kubernetes(module, api_calls=0)
    check_paging(module)
    params = module.params
    client = authenticate(module, api_client, api_calls=0)
    reader = ClusterReader(client, params["page_size"], params["request_timeout"], params["gpu_resource"], params["exclude_pods"])

    def read():
        result = reader.gather(params["node_selector"])
        if params["namespace_objects"]:
            result["namespace_objects"] = reader.namespace_objects(
                params["namespace_objects"], result["components"]["leaderworkerset"]["installed"])
        return result

    read_and_exit(module, client, reader, read, NEEDS, bad_response=(inventory.InventoryError,))


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


if __name__ == "__main__":
    main()
