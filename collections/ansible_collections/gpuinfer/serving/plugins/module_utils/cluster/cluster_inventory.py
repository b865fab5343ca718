# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Turn Kubernetes API objects (plain dicts, as the API returns them) into a GPU inventory.

Pure Python: no Ansible and no network imports. ``gpuinfer.serving.gpu_cluster_info`` feeds it
the pages it lists; the unit tests feed it recorded API responses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from decimal import Decimal

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import rollout

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"

# Pods in these phases hold no resources: the scheduler ignores them when it sums what a node has left.
TERMINATED_POD_PHASES = ("Succeeded", "Failed")
# Server-side filter for the pod list, so terminated and unscheduled pods never cross the wire.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,spec.nodeName!="

GFD_LABELS = (
    "nvidia.com/gpu.present",
    "nvidia.com/gpu.product",
    "nvidia.com/gpu.memory",
    "nvidia.com/gpu.count",
    "nvidia.com/gpu.replicas",
    "nvidia.com/gpu.family",
    "nvidia.com/gpu.machine",
    "nvidia.com/gpu.clique",
    "nvidia.com/gpu.compute.major",
    "nvidia.com/gpu.compute.minor",
    "nvidia.com/gpu.sharing-strategy",
    "nvidia.com/gpu.deploy.driver",
    "nvidia.com/mig.capable",
    "nvidia.com/mig.strategy",
    "nvidia.com/mig.config",
    "nvidia.com/cuda.driver-version.major",
    "nvidia.com/cuda.driver-version.minor",
    "nvidia.com/cuda.driver-version.revision",
    "nvidia.com/cuda.driver-version.full",
    "nvidia.com/cuda.runtime-version.full",
)
# GFD appends these to gpu.product when a GPU is shared (time-slicing/MPS) or split (MIG single strategy).
SHARED_PRODUCT_SUFFIX = "-SHARED"
MIG_PRODUCT_MARKER = "-MIG-"

NFD_PREFIX = "feature.node.kubernetes.io/"
# 15b3 is the PCI vendor id of Mellanox/NVIDIA networking (ConnectX, BlueField).
NIC_LABEL_PREFIXES = (
    NFD_PREFIX + "pci-15b3.",
    NFD_PREFIX + "rdma.",
    NFD_PREFIX + "network-sriov.",
)
RDMA_RESOURCE_PREFIXES = ("rdma/",)
RDMA_RESOURCES = ("nvidia.com/hostdev",)
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"

ZONE_LABEL = "topology.kubernetes.io/zone"
# Conditions that are "True" when something is wrong (the kubelet reports them alongside Ready).
PROBLEM_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


class InventoryError(ValueError):
    """An API object does not have the shape the inventory expects; the message names it."""


def parse_quantity(value):
    """A Kubernetes resource.Quantity ("500m", "16Gi", "1e3", 8) as a Decimal; empty is 0.

    The grammar is the collection's one quantity parser (inputs.quantity_decimal).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return Decimal(0)
    if isinstance(value, Decimal):
        value = str(value)
    try:
        return inputs.quantity_decimal(value.strip() if isinstance(value, str) else value)
    except inputs.InputError:
        raise InventoryError("'%s' is not a Kubernetes quantity (examples: 8, 500m, 16Gi)" % value)


def _count(value):
    """Quantities of countable resources (GPUs, RDMA devices) as an int, rounding partial units up."""
    quantity = parse_quantity(value)
    whole = int(quantity)
    return whole + 1 if quantity > whole else whole


def _int_label(labels, key):
    value = labels.get(key)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _container_requests(container, resource):
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    if resource in requests:
        return parse_quantity(requests[resource])
    # The API server copies limits into requests for extended resources, but objects built
    # by hand (and some old recorded ones) carry limits only.
    limits = resources.get("limits") or {}
    return parse_quantity(limits.get(resource))


def pod_request(pod, resource=DEFAULT_GPU_RESOURCE):
    """How much of ``resource`` the scheduler accounts to ``pod`` (a plain Pod dict).

    Same rule as the scheduler's resource helper: the sum over app containers, compared with the
    largest init container; sidecars (init containers with restartPolicy Always) keep running,
    so they add to both sides. Pod overhead is added on top.
    """
    spec = pod.get("spec") or {}
    total = sum((_container_requests(c, resource) for c in spec.get("containers") or []), Decimal(0))
    sidecars = Decimal(0)
    init_peak = Decimal(0)
    for container in spec.get("initContainers") or []:
        request = _container_requests(container, resource)
        if container.get("restartPolicy") == "Always":
            total += request
            sidecars += request
            running = sidecars
        else:
            running = request + sidecars
        init_peak = max(init_peak, running)
    total = max(total, init_peak)
    total += parse_quantity((spec.get("overhead") or {}).get(resource))
    return total


def pod_holds_resources(pod):
    """True when the scheduler counts this pod against its node."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return bool(spec.get("nodeName")) and status.get("phase") not in TERMINATED_POD_PHASES


def pod_matches(pod, namespace=None, labels=None):
    """True when the pod is in ``namespace`` (any when None) and carries every label of ``labels``."""
    metadata = pod.get("metadata") or {}
    if namespace and metadata.get("namespace") != namespace:
        return False
    pod_labels = metadata.get("labels") or {}
    return all(pod_labels.get(key) == value for key, value in (labels or {}).items())


def requested_by_node(pods, resource=DEFAULT_GPU_RESOURCE, into=None, exclude=None):
    """{node name: requested count} over the pods that hold resources. ``into`` lets callers accumulate page by page.

    ``exclude`` ({namespace, labels}) names pods whose GPUs count as free: the workload a deploy is about to
    replace, which would otherwise make a re-run look like it needs twice the GPUs.
    """
    totals = {} if into is None else into
    for pod in pods:
        if not pod_holds_resources(pod):
            continue
        if exclude and exclude.get("labels") and pod_matches(pod, exclude.get("namespace"), exclude["labels"]):
            continue
        request = pod_request(pod, resource)
        if request:
            node_name = pod["spec"]["nodeName"]
            totals[node_name] = totals.get(node_name, Decimal(0)) + request
    return totals


def _ready(conditions):
    for condition in conditions:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _driver_version(labels):
    parts = dict(
        (part, labels.get("nvidia.com/cuda.driver-version." + part))
        for part in ("major", "minor", "revision", "full")
    )
    if not any(parts.values()):
        return None
    if not parts["full"]:
        parts["full"] = ".".join(p for p in (parts["major"], parts["minor"], parts["revision"]) if p)
    return parts


def base_product(product):
    """The GFD product without the -SHARED suffix that time-slicing/MPS adds."""
    if product and product.endswith(SHARED_PRODUCT_SUFFIX):
        return product[: -len(SHARED_PRODUCT_SUFFIX)]
    return product


def node_entry(node, requested=0, gpu_resource=DEFAULT_GPU_RESOURCE):
    """One inventory entry for a Node dict; ``requested`` is what pods on it request of ``gpu_resource``."""
    metadata = node.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise InventoryError("a Node object has no metadata.name: %r" % (sorted(node),))
    labels = metadata.get("labels") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    capacity = status.get("capacity") or {}
    allocatable = status.get("allocatable") or {}
    conditions = status.get("conditions") or []

    gpu_allocatable = _count(allocatable.get(gpu_resource))
    gpu_requested = _count(requested)
    product = labels.get("nvidia.com/gpu.product")
    sharing = labels.get("nvidia.com/gpu.sharing-strategy")
    replicas = _int_label(labels, "nvidia.com/gpu.replicas")
    shared = bool(
        (product and product.endswith(SHARED_PRODUCT_SUFFIX))
        or (sharing and sharing != "none")
        or (replicas is not None and replicas > 1)
    )
    resource_names = set(capacity) | set(allocatable)
    rdma = dict(
        (res, _count(allocatable.get(res, capacity.get(res))))
        for res in sorted(resource_names)
        if res.startswith(RDMA_RESOURCE_PREFIXES) or res in RDMA_RESOURCES
    )
    mig = dict(
        (res, _count(allocatable.get(res, capacity.get(res))))
        for res in sorted(resource_names)
        if res.startswith(MIG_RESOURCE_PREFIX)
    )
    nic_labels = dict((key, value) for key, value in sorted(labels.items()) if key.startswith(NIC_LABEL_PREFIXES))
    rdma_nic = any(
        value == "true" and (key.startswith(NFD_PREFIX + "pci-15b3.") or key.startswith(NFD_PREFIX + "rdma."))
        for key, value in nic_labels.items()
    )
    taints = [
        dict((field, taint[field]) for field in ("key", "value", "effect") if taint.get(field) not in (None, ""))
        for taint in spec.get("taints") or []
    ]
    return {
        "name": name,
        "ready": _ready(conditions),
        "schedulable": not spec.get("unschedulable", False),
        "problems": sorted(c["type"] for c in conditions if c.get("type") in PROBLEM_CONDITIONS and c.get("status") == "True"),
        "taints": taints,
        "zone": labels.get(ZONE_LABEL),
        "gpu": {
            "resource": gpu_resource,
            "capacity": _count(capacity.get(gpu_resource)),
            "allocatable": gpu_allocatable,
            "requested": gpu_requested,
            "free": max(gpu_allocatable - gpu_requested, 0),
            "product": product,
            "base_product": base_product(product),
            "memory_mib": _int_label(labels, "nvidia.com/gpu.memory"),
            "count": _int_label(labels, "nvidia.com/gpu.count"),
            "family": labels.get("nvidia.com/gpu.family"),
            "clique": labels.get("nvidia.com/gpu.clique"),
            "mig_strategy": labels.get("nvidia.com/mig.strategy"),
            "mig": product is not None and MIG_PRODUCT_MARKER in product,
            "shared": shared,
            "driver_version": _driver_version(labels),
            # The GPU Operator labels a node whose host has its own driver (it then deploys none there).
            "driver_preinstalled": labels.get("nvidia.com/gpu.deploy.driver") == "pre-installed",
        },
        "gfd_labels": dict((key, labels[key]) for key in GFD_LABELS if key in labels),
        "mig_resources": mig,
        "rdma_resources": rdma,
        "rdma": any(count > 0 for count in rdma.values()),
        "rdma_nic": rdma_nic,
        "nic_labels": nic_labels,
        "cpu_allocatable": float(parse_quantity(allocatable.get("cpu"))),
        "memory_allocatable_bytes": int(parse_quantity(allocatable.get("memory"))),
    }


def build_nodes(nodes, pods=None, gpu_resource=DEFAULT_GPU_RESOURCE, requested=None):
    """Inventory entries, sorted by name, from Node dicts and either Pod dicts or a precomputed ``requested`` map."""
    if requested is None:
        requested = requested_by_node(pods or [], gpu_resource)
    entries = [node_entry(node, requested.get((node.get("metadata") or {}).get("name"), 0), gpu_resource) for node in nodes]
    return sorted(entries, key=lambda entry: entry["name"])


def usable(entry):
    """Ready and not cordoned: the scheduler may place pods there (taints depend on the workload)."""
    return entry["ready"] and entry["schedulable"]


def _thresholds(largest):
    thresholds, size = [], 1
    while size <= max(largest, 1):
        thresholds.append(size)
        size *= 2
    return thresholds


def summarize(entries):
    """Per GPU product (GFD label, ``unlabelled`` when GFD is missing): node and GPU counts.

    Free GPUs and block sizes count only Ready, uncordoned nodes, because nothing else can be scheduled;
    taints are left to the plan check, which knows the workload's tolerations.
    """
    groups = {}
    for entry in entries:
        gpu = entry["gpu"]
        if gpu["allocatable"] <= 0 and gpu["capacity"] <= 0:
            continue
        product = gpu["product"] or "unlabelled"
        groups.setdefault(product, []).append(entry)

    summary = {}
    for product, members in sorted(groups.items()):
        available = [m for m in members if usable(m)]
        largest_allocatable = max(m["gpu"]["allocatable"] for m in members)
        free_blocks = [m["gpu"]["free"] for m in available]
        memories = sorted(set(m["gpu"]["memory_mib"] for m in members if m["gpu"]["memory_mib"]))
        families = sorted(set(m["gpu"]["family"] for m in members if m["gpu"]["family"]))
        summary[product] = {
            "nodes": len(members),
            "ready_nodes": len([m for m in members if m["ready"]]),
            "schedulable_nodes": len(available),
            "rdma_nodes": len([m for m in members if m["rdma"]]),
            "memory_mib": memories[0] if len(memories) == 1 else (memories or None),
            "family": families[0] if len(families) == 1 else (families or None),
            "gpus_per_node": sorted(set(m["gpu"]["allocatable"] for m in members)),
            "total_gpus": sum(m["gpu"]["allocatable"] for m in members),
            "requested_gpus": sum(m["gpu"]["requested"] for m in members),
            "free_gpus": sum(free_blocks),
            "largest_free_block": max(free_blocks or [0]),
            "nodes_with_free": dict(
                (str(size), len([f for f in free_blocks if f >= size])) for size in _thresholds(largest_allocatable)
            ),
        }
    return summary


# ---------------------------------------------------------------------------------------------
# Installed components, from API discovery.

GPU_OPERATOR_GROUP = "nvidia.com"
LWS_GROUP = "leaderworkerset.x-k8s.io"
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"
KEDA_GROUP = "keda.sh"
CUSTOM_METRICS_GROUP = "custom.metrics.k8s.io"
EXTERNAL_METRICS_GROUP = "external.metrics.k8s.io"
METRICS_GROUP = "metrics.k8s.io"
NIM_OPERATOR_GROUP = "apps.nvidia.com"
NFD_GROUP = "nfd.k8s-sigs.io"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"

# Groups whose resource lists the module fetches when the server only offers legacy discovery.
INTERESTING_GROUPS = (GPU_OPERATOR_GROUP, LWS_GROUP, PROMETHEUS_OPERATOR_GROUP, KEDA_GROUP, NIM_OPERATOR_GROUP, GATEWAY_API_GROUP)


def parse_discovery(document):
    """Normalise ``GET /apis`` into {group: {preferred, versions, resources: {version: [plural]} | None, stale}}.

    Accepts the aggregated form (APIGroupDiscoveryList, one request lists every resource) and the
    legacy APIGroupList (groups and versions only: ``resources`` stays None until
    ``add_resource_list`` fills it from ``GET /apis/<group>/<version>``).
    """
    kind = document.get("kind")
    groups = {}
    if kind == "APIGroupDiscoveryList":
        for item in document.get("items") or []:
            name = (item.get("metadata") or {}).get("name")
            if not name:
                continue
            versions = item.get("versions") or []
            groups[name] = {
                # The aggregated list is ordered by preference, newest first.
                "preferred": versions[0]["version"] if versions else None,
                "versions": [v.get("version") for v in versions],
                "resources": dict(
                    (v.get("version"), sorted(r.get("resource") for r in v.get("resources") or [] if r.get("resource")))
                    for v in versions
                ),
                "stale": [v.get("version") for v in versions if v.get("freshness") == "Stale"],
            }
    elif kind == "APIGroupList" or "groups" in document:
        for item in document.get("groups") or []:
            name = item.get("name")
            if not name:
                continue
            groups[name] = {
                "preferred": (item.get("preferredVersion") or {}).get("version"),
                "versions": [v.get("version") for v in item.get("versions") or []],
                "resources": None,
                "stale": [],
            }
    else:
        raise InventoryError("GET /apis returned kind %r; expected APIGroupList or APIGroupDiscoveryList" % kind)
    return groups


def add_resource_list(discovery, document):
    """Record the plural resource names of an APIResourceList (``GET /apis/<group>/<version>``)."""
    group_version = document.get("groupVersion") or ""
    if "/" not in group_version:
        return discovery
    group, version = group_version.split("/", 1)
    entry = discovery.setdefault(group, {"preferred": version, "versions": [version], "resources": None, "stale": []})
    if entry["resources"] is None:
        entry["resources"] = {}
    entry["resources"][version] = sorted(
        r["name"] for r in document.get("resources") or [] if r.get("name") and "/" not in r["name"]
    )
    return discovery


def has_resource(discovery, group, resource):
    """True when ``group`` serves ``resource``; None when only the group is known (resources not listed)."""
    entry = discovery.get(group)
    if not entry:
        return False
    if entry["resources"] is None:
        return None
    return any(resource in names for names in entry["resources"].values())


def _present(discovery, group, resource):
    found = has_resource(discovery, group, resource)
    # Without the resource list, a CRD group being served at all is the best signal there is.
    return bool(group in discovery) if found is None else found


def _condition(obj, condition_type):
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            return condition
    return None


def cluster_policy_state(policies):
    """Summarise ClusterPolicy objects: the operator uses the oldest one and ignores the rest."""
    entries = []
    for policy in policies:
        status = policy.get("status") or {}
        error = _condition(policy, "Error")
        entries.append(
            {
                "name": (policy.get("metadata") or {}).get("name"),
                "state": status.get("state"),
                "message": error.get("message") if error and error.get("status") == "True" else None,
                "created": (policy.get("metadata") or {}).get("creationTimestamp") or "",
            }
        )
    entries.sort(key=lambda e: (e["created"], e["name"] or ""))
    active = [e for e in entries if e["state"] != "ignored"]
    chosen = active[0] if active else (entries[0] if entries else None)
    return entries, chosen


def _api_service_available(api_services, group):
    if api_services is None:
        return None
    matching = [s for s in api_services if (s.get("spec") or {}).get("group") == group]
    if not matching:
        return False
    for service in matching:
        condition = _condition(service, "Available")
        if not condition or condition.get("status") != "True":
            return False
    return True


def detect_components(discovery, cluster_policies=None, api_services=None):
    """Which optional pieces the cluster has.

    ``discovery``: parse_discovery() output (possibly completed by add_resource_list);
    ``cluster_policies``: ClusterPolicy dicts, or None when they could not be listed;
    ``api_services``: APIService dicts for the metrics groups, or None when not read.
    """
    operator_installed = _present(discovery, GPU_OPERATOR_GROUP, "clusterpolicies")
    policies, chosen = cluster_policy_state(cluster_policies or [])
    if not operator_installed:
        gpu_operator_state = None
    elif cluster_policies is None:
        gpu_operator_state = "unknown"
    elif chosen is None:
        gpu_operator_state = "missing"
    else:
        gpu_operator_state = chosen["state"] or "unknown"

    adapter_group = discovery.get(CUSTOM_METRICS_GROUP)
    adapter_available = _api_service_available(api_services, CUSTOM_METRICS_GROUP)
    if adapter_available is None and adapter_group is not None:
        adapter_available = not adapter_group["stale"]

    return {
        "gpu_operator": {
            "installed": operator_installed,
            # missing: CRD present but no ClusterPolicy; unknown: not allowed to read it.
            "state": gpu_operator_state,
            "ready": gpu_operator_state == "ready",
            "cluster_policy": chosen["name"] if chosen else None,
            "message": chosen["message"] if chosen else None,
            "cluster_policies": [dict((k, v) for k, v in p.items() if k != "created") for p in policies],
            "nvidia_driver_crd": bool(has_resource(discovery, GPU_OPERATOR_GROUP, "nvidiadrivers")),
        },
        "leaderworkerset": {
            "installed": _present(discovery, LWS_GROUP, "leaderworkersets"),
            "version": (discovery.get(LWS_GROUP) or {}).get("preferred"),
        },
        "prometheus_operator": {
            "installed": PROMETHEUS_OPERATOR_GROUP in discovery,
            "service_monitor": _present(discovery, PROMETHEUS_OPERATOR_GROUP, "servicemonitors"),
            "pod_monitor": _present(discovery, PROMETHEUS_OPERATOR_GROUP, "podmonitors"),
        },
        "keda": {
            "installed": _present(discovery, KEDA_GROUP, "scaledobjects"),
            "version": (discovery.get(KEDA_GROUP) or {}).get("preferred"),
            "external_metrics": EXTERNAL_METRICS_GROUP in discovery,
        },
        "prometheus_adapter": {
            # The adapter registers the custom metrics APIService; its group appears in discovery.
            "installed": adapter_group is not None,
            "available": bool(adapter_available) if adapter_group is not None else False,
            "version": (adapter_group or {}).get("preferred"),
        },
        "metrics_server": {"installed": METRICS_GROUP in discovery},
        "nim_operator": {
            "installed": _present(discovery, NIM_OPERATOR_GROUP, "nimservices") or _present(discovery, NIM_OPERATOR_GROUP, "nimcaches"),
            "nim_service": _present(discovery, NIM_OPERATOR_GROUP, "nimservices"),
            "nim_cache": _present(discovery, NIM_OPERATOR_GROUP, "nimcaches"),
        },
        "node_feature_discovery": {"installed": NFD_GROUP in discovery},
        "gateway_api": {"installed": GATEWAY_API_GROUP in discovery,
                        "http_route": _present(discovery, GATEWAY_API_GROUP, "httproutes")},
    }


# ---------------------------------------------------------------------------------------------
# Objects of the target namespace a deploy needs (Secrets it refers to, a claim it reuses, the
# download Job it waits for), summarised without Secret values.

def summarize_namespace_objects(namespace, namespace_found, secrets, claims, jobs, wanted, configmaps=None, workloads=None):
    """{namespace, exists, secrets, claims, jobs}: one entry per wanted name, found or not.

    ``secrets``/``claims``/``jobs``: the objects read (dicts in the API's form); ``wanted``:
    {"secrets": [names], "claims": [names], "jobs": [names]}. Secret entries carry the key
    names and the type, never the data.
    """
    by_name = dict((kind, dict(((item.get("metadata") or {}).get("name"), item) for item in items or []))
                   for kind, items in (("secrets", secrets), ("claims", claims), ("jobs", jobs)))
    result = {"namespace": namespace, "exists": bool(namespace_found), "secrets": {}, "claims": {}, "jobs": {},
              "configmaps": {}, "workloads": []}
    configmaps_by_name = dict(((item.get("metadata") or {}).get("name"), item) for item in configmaps or [])
    for name in wanted.get("configmaps") or []:
        item = configmaps_by_name.get(name)
        result["configmaps"][name] = {"exists": bool(item), "data": (item or {}).get("data") or {}}
    for item in workloads or []:
        metadata, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        want = int(spec.get("replicas", 1) or 0)
        result["workloads"].append({
            "api_version": item.get("apiVersion"),
            "kind": item.get("kind"),
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace") or namespace,
            "revision": (metadata.get("annotations") or {}).get(rollout.REVISION_ANNOTATION),
            "resource_version": metadata.get("resourceVersion"),
            "handed_over_fields": rollout.handed_over_fields(metadata.get("managedFields")),
            "ready": int(status.get("readyReplicas") or 0) >= want and int(status.get("updatedReplicas") or 0) >= want,
        })
    for name in wanted.get("secrets") or []:
        item = by_name["secrets"].get(name)
        result["secrets"][name] = ({"exists": True, "type": item.get("type"), "keys": sorted((item.get("data") or {}).keys())}
                                   if item else {"exists": False, "type": None, "keys": []})
    for name in wanted.get("claims") or []:
        item = by_name["claims"].get(name)
        if item:
            status = item.get("status") or {}
            requested = (((item.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            result["claims"][name] = {"exists": True, "phase": status.get("phase"),
                                      "capacity": (status.get("capacity") or {}).get("storage") or requested,
                                      "access_modes": list((item.get("spec") or {}).get("accessModes") or [])}
        else:
            result["claims"][name] = {"exists": False, "phase": None, "capacity": None, "access_modes": []}
    for name in wanted.get("jobs") or []:
        item = by_name["jobs"].get(name)
        if item:
            status = item.get("status") or {}
            conditions = dict((c.get("type"), c) for c in status.get("conditions") or [] if c.get("status") == "True")
            completions = (item.get("spec") or {}).get("completions") or 1
            result["jobs"][name] = {
                "exists": True,
                "succeeded": int(status.get("succeeded") or 0),
                "failed": int(status.get("failed") or 0),
                "complete": "Complete" in conditions or int(status.get("succeeded") or 0) >= completions,
                "failed_condition": bool(set(conditions) & set(("Failed", "FailureTarget"))),
            }
        else:
            result["jobs"][name] = {"exists": False, "succeeded": 0, "failed": 0, "complete": False, "failed_condition": False}
    return result
