# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Decide whether a gpu_sizing plan can run on a cluster / on GPU hosts, before anything is created.

Pure Python: no Ansible, no network. Inputs are plain dicts: the gpu_sizing result (``gpuinfer_plan``),
the gpu_cluster_info result and gpu_host_facts facts. Output is a list of findings, each with a stable
code, a severity, what is wrong and how to fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import layout as replica
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import shm

ERROR = "error"
WARNING = "warning"

GIB = 2 ** 30
MIB = 2 ** 20
# Docker's and containerd's default /dev/shm when a pod mounts nothing there.
DEFAULT_CONTAINER_SHM_BYTES = 64 * MIB
# NVIDIA's NCCL troubleshooting guide asks containers for --shm-size=1g: NCCL keeps its SHM transport
# buffers and proxy state in /dev/shm, and vLLM's shared-memory broadcast queue lives there too.
NCCL_MIN_SHM_BYTES = 1 * GIB
# GFD and nvidia-smi report usable MiB, a little below the marketing size (H100 80GB: 81559 MiB = 79.6 GiB).
GPU_MEMORY_TOLERANCE = 0.95

DEPLOYMENT_MODES = ("auto", "single_node", "multi_node")
TOLERATION_OPERATORS = ("Exists", "Equal")
# PreferNoSchedule is a preference: the scheduler may still use the node.
BLOCKING_TAINT_EFFECTS = ("NoSchedule", "NoExecute")
# Taints the node controller sets from conditions already reported on their own (NotReady, cordoned).
CONDITION_TAINTS = {
    "node.kubernetes.io/not-ready": "ready",
    "node.kubernetes.io/unreachable": "ready",
    "node.kubernetes.io/unschedulable": "schedulable",
}

VLLM_MASTER_PORT = 29501
RAY_GCS_PORT = 6379
RAY_WORKER_PORTS = "10002-19999"
LINUX_EPHEMERAL_PORTS = "32768-60999"
# Sustained bandwidth per GPU, GB/s, order of magnitude for the cost estimate.
PCIE_GBPS = 25.0
NVLINK_GBPS = 300.0
NODE_LIST_LIMIT = 50

_SANITIZE = re.compile(r"\s+")


class PlanCheckError(ValueError):
    """The input itself is unusable; the message names the field, the value and what is allowed."""


# --------------------------------------------------------------------------------------------- inputs


def requirements(plan_result, replicas=None, deployment_mode="auto"):
    """What the plan asks of the cluster: the shape of one replica and how many of them.

    A replica is ``slots_per_replica`` pods, each needing ``gpus_per_slot`` GPUs on one node.
    """
    if not isinstance(plan_result, dict):
        raise PlanCheckError("plan must be the gpu_sizing result (a dict with a 'plan' key), got %s" % type(plan_result).__name__)
    plan = plan_result.get("plan")
    prefix = "plan.plan"
    if plan is None and "tensor_parallel_size" in plan_result:
        plan, prefix = plan_result, "plan"
    if not isinstance(plan, dict):
        raise PlanCheckError("plan.plan is missing: pass the whole gpu_sizing result (gpuinfer_plan), got keys %s" % sorted(plan_result))
    if deployment_mode not in DEPLOYMENT_MODES:
        raise PlanCheckError("deployment_mode must be one of %s, got %r" % (", ".join(DEPLOYMENT_MODES), deployment_mode))

    tp = inputs.whole_number(plan.get("tensor_parallel_size"), name=prefix + ".tensor_parallel_size", error=PlanCheckError)
    pp = inputs.whole_number(plan.get("pipeline_parallel_size", 1), name=prefix + ".pipeline_parallel_size", error=PlanCheckError)
    gpus_per_replica = inputs.whole_number(plan.get("gpus_per_replica", tp * pp), name=prefix + ".gpus_per_replica",
                                           error=PlanCheckError)
    # gpu_sizing's gpus_per_node is the node size it planned for, and nodes = ceil(TP x PP / gpus_per_node).
    gpus_per_node = plan.get("gpus_per_node")
    if gpus_per_node is not None:
        gpus_per_node = inputs.whole_number(gpus_per_node, name=prefix + ".gpus_per_node", error=PlanCheckError)
    default_nodes = -(-gpus_per_replica // gpus_per_node) if gpus_per_node else 1
    nodes = inputs.whole_number(plan.get("nodes", default_nodes), name=prefix + ".nodes", error=PlanCheckError)
    if replicas is None:
        replicas = plan.get("replicas", 1)
    replicas = inputs.whole_number(replicas, name="replicas" if "replicas" not in plan else prefix + ".replicas", error=PlanCheckError)

    labels = plan.get("gpu_labels") or []
    if isinstance(labels, str):
        labels = [labels]
    memory_gib = plan.get("gpu_memory_gib")
    if memory_gib is not None:
        try:
            memory_gib = float(memory_gib)
        except (TypeError, ValueError):
            raise PlanCheckError("%s.gpu_memory_gib must be a number of GiB, got %r" % (prefix, memory_gib))
    if not labels and not memory_gib:
        raise PlanCheckError("%s needs gpu_labels or gpu_memory_gib to know which GPUs qualify; got neither" % prefix)

    # The pod shape comes from plan/layout.py, the one place that decides it (plan.layout in auto mode).
    pod_nodes = 1 if deployment_mode == "single_node" else nodes
    try:
        if deployment_mode == "auto" and isinstance(plan.get("layout"), dict) and plan["layout"].get("controller"):
            shape = plan["layout"]
        else:
            shape = replica.replica_layout(tp, pp, pod_nodes)
    except replica.LayoutError as exc:
        raise PlanCheckError("%s: %s" % (prefix, exc))
    mode = "multi_node" if shape["multi_node"] else "single_node"
    slots, per_slot = shape["pods_per_replica"], shape["gpus_per_pod"]
    model = plan_result.get("model") if isinstance(plan_result.get("model"), dict) else {}
    return {
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "gpus_per_replica": gpus_per_replica,
        "replicas": replicas,
        "gpu": plan.get("gpu"),
        "gpu_labels": list(labels),
        "gpu_memory_gib": memory_gib,
        "mode": mode,
        "slots_per_replica": slots,
        "gpus_per_slot": per_slot,
        # TP ranks that share one pod's NVLink/PCIe fabric; beyond that, all-reduce crosses the network.
        "tp_per_node": min(tp, per_slot),
        "nccl": gpus_per_replica > 1,
        "fits": plan_result.get("fits"),
        "max_num_seqs": plan.get("max_num_seqs"),
        "hidden_size": model.get("hidden_size"),
        "num_layers": model.get("num_layers"),
        "dtype_bytes": 1 if str(plan.get("dtype") or "").lower() in ("fp8", "float8", "int8") else 2,
    }


def normalize_tolerations(tolerations):
    """Validate tolerations (Kubernetes field names) and return them as plain dicts."""
    result = []
    for index, toleration in enumerate(tolerations or []):
        field = "tolerations[%d]" % index
        if not isinstance(toleration, dict):
            raise PlanCheckError("%s must be a dict with key/operator/value/effect, got %r" % (field, toleration))
        operator = toleration.get("operator") or "Equal"
        if operator not in TOLERATION_OPERATORS:
            raise PlanCheckError("%s.operator must be one of %s, got %r" % (field, ", ".join(TOLERATION_OPERATORS), operator))
        key = toleration.get("key") or ""
        if not key and operator != "Exists":
            raise PlanCheckError("%s has no key, which Kubernetes only allows with operator Exists" % field)
        effect = toleration.get("effect") or ""
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise PlanCheckError("%s.effect must be NoSchedule, PreferNoSchedule, NoExecute or empty, got %r" % (field, effect))
        value = toleration.get("value")
        result.append({"key": key, "operator": operator, "value": "" if value is None else str(value), "effect": effect})
    return result


def tolerates(toleration, taint):
    """Kubernetes' rule: empty effect matches every effect; empty key with Exists matches every key."""
    if toleration["effect"] and toleration["effect"] != taint.get("effect"):
        return False
    if toleration["key"] and toleration["key"] != taint.get("key"):
        return False
    if toleration["operator"] == "Exists":
        return True
    return toleration["value"] == (taint.get("value") or "")


def untolerated_taints(taints, tolerations):
    return [
        taint for taint in taints or []
        if taint.get("effect") in BLOCKING_TAINT_EFFECTS and not any(tolerates(t, taint) for t in tolerations)
    ]


def taint_text(taint):
    value = taint.get("value")
    return "%s%s:%s" % (taint.get("key"), "=" + value if value else "", taint.get("effect"))


def sanitize_product(name):
    """nvidia-smi's name as GFD writes it in nvidia.com/gpu.product ("NVIDIA H100 80GB HBM3" -> "NVIDIA-H100-80GB-HBM3")."""
    return _SANITIZE.sub("-", (name or "").strip())


def _names(nodes):
    names = sorted(nodes)
    if len(names) <= 6:
        return ", ".join(names)
    return "%s and %d more" % (", ".join(names[:5]), len(names) - 5)


def _gib(size):
    return "%.0f GiB" % (size / float(GIB)) if size >= GIB else "%.0f MiB" % (size / float(MIB))


def _finding(severity, code, message, hint, nodes=None):
    nodes = sorted(nodes or [])
    return {
        "severity": severity,
        "code": code,
        "message": message,
        "hint": hint,
        "nodes": nodes[:NODE_LIST_LIMIT],
        "nodes_total": len(nodes),
    }


# --------------------------------------------------------------------------------------------- matching


def _product_matches(req, product, memory_mib):
    """(matches, reason) for a GPU product/memory against the plan."""
    needed_mib = req["gpu_memory_gib"] * 1024 * GPU_MEMORY_TOLERANCE if req["gpu_memory_gib"] else None
    if req["gpu_labels"]:
        if product not in req["gpu_labels"]:
            return False, "product %s is not one of %s" % (product or "unlabelled", ", ".join(req["gpu_labels"]))
        if needed_mib and memory_mib and memory_mib < needed_mib:
            return False, "%s MiB per GPU < %.0f GiB" % (memory_mib, req["gpu_memory_gib"])
        return True, None
    if not memory_mib:
        return False, "no nvidia.com/gpu.memory label to compare with %.0f GiB" % req["gpu_memory_gib"]
    if memory_mib < needed_mib:
        return False, "%s MiB per GPU < %.0f GiB" % (memory_mib, req["gpu_memory_gib"])
    return True, None


def classify_cluster_nodes(req, nodes, tolerations):
    """Split the cluster's nodes: ``candidates`` (usable GPUs of the plan's product) and why others are out."""
    candidates = []
    matching = []
    reasons = {"not_ready": [], "cordoned": [], "shared": [], "mig": [], "taints": {}}
    for node in nodes:
        gpu = node.get("gpu") or {}
        if not gpu.get("allocatable") and not gpu.get("capacity"):
            continue
        matches, _why = _product_matches(req, gpu.get("base_product") or gpu.get("product"), gpu.get("memory_mib"))
        if not matches:
            continue
        matching.append(node)
        name = node["name"]
        out = False
        if not node.get("ready"):
            reasons["not_ready"].append(name)
            out = True
        if not node.get("schedulable", True):
            reasons["cordoned"].append(name)
            out = True
        if gpu.get("shared") and req["nccl"]:
            # Time-sliced "GPUs" are slices of one device: two TP ranks could land on the same GPU.
            reasons["shared"].append(name)
            out = True
        if gpu.get("mig"):
            reasons["mig"].append(name)
            out = True
        taints = [
            t for t in untolerated_taints(node.get("taints"), tolerations)
            if not (t.get("key") in CONDITION_TAINTS and not node.get(CONDITION_TAINTS[t["key"]], True))
        ]
        for taint in taints:
            reasons["taints"].setdefault(taint_text(taint), []).append(name)
        out = out or bool(taints)
        if not out:
            candidates.append(node)
    return matching, candidates, reasons


def assign(req, candidates, label_order=None):
    """Greedy placement of every replica; returns (placements, remaining free per node).

    Each replica takes ``slots_per_replica`` distinct nodes of one product, each with ``gpus_per_slot``
    free GPUs. Taking the nodes with the most remaining slots first maximises the replicas that fit
    when a replica needs several distinct nodes (and is neutral when it needs one).
    """
    free = dict((n["name"], n["gpu"].get("free", 0)) for n in candidates)
    product_of = dict((n["name"], n["gpu"].get("base_product") or n["gpu"].get("product") or "unlabelled") for n in candidates)
    order = list(label_order or [])
    products = sorted(set(product_of.values()), key=lambda p: (order.index(p) if p in order else len(order), p))
    per_slot, slots = req["gpus_per_slot"], req["slots_per_replica"]
    placements = []
    for replica in range(1, req["replicas"] + 1):
        placed = None
        for product in products:
            usable_nodes = [name for name in free if product_of[name] == product and free[name] >= per_slot]
            if len(usable_nodes) < slots:
                continue
            if slots == 1:
                # Best fit keeps the big free blocks for the replicas (and workloads) that need them.
                usable_nodes.sort(key=lambda name: (free[name], name))
            else:
                usable_nodes.sort(key=lambda name: (-(free[name] // per_slot), name))
            chosen = sorted(usable_nodes[:slots])
            for name in chosen:
                free[name] -= per_slot
            placed = {"replica": replica, "placed": True, "product": product, "nodes": chosen, "gpus_per_node": per_slot}
            break
        placements.append(placed or {"replica": replica, "placed": False, "product": None, "nodes": [], "gpus_per_node": per_slot})
    return placements, free


def surge_capacity(req, candidates, free_after, label_order=None):
    """Whole replicas (at most ``req["replicas"]``) that still fit in what the placement left free.

    A rolling update may surge only when a new replica fits beside every old one; the old pods' GPUs
    count as taken here, since the caller placed every replica first.
    """
    if not candidates or req["replicas"] < 1:
        return 0
    remaining = []
    for node in candidates:
        copied = dict(node)
        copied["gpu"] = dict(node["gpu"], free=free_after.get(node["name"], 0))
        remaining.append(copied)
    extra, _left = assign(dict(req, replicas=req["replicas"]), remaining, label_order)
    return len([p for p in extra if p["placed"]])


# --------------------------------------------------------------------------------------------- checks


def _capacity_findings(req, placements, matching, candidates, products_present, source):
    findings = []
    placed = [p for p in placements if p["placed"]]
    want = "%d node%s with %d free %s GPU%s" % (
        req["slots_per_replica"], "s" if req["slots_per_replica"] > 1 else "", req["gpus_per_slot"],
        " / ".join(req["gpu_labels"]) or ">= %.0f GiB" % req["gpu_memory_gib"], "s" if req["gpus_per_slot"] > 1 else "",
    )
    if not matching:
        present = ", ".join("%s (%d)" % item for item in sorted(products_present.items())) or "no GPUs at all"
        findings.append(_finding(
            ERROR, "GPU_PRODUCT_NOT_FOUND",
            "No %s offers the plan's GPU (%s, %s): it has %s." % (
                source, req["gpu"] or "any", " / ".join(req["gpu_labels"]) or ">= %.0f GiB" % req["gpu_memory_gib"], present),
            "Re-run gpu_sizing with a gpu that exists here, or add nodes with that GPU (GFD must label them nvidia.com/gpu.product).",
        ))
        return findings
    if len(placed) == len(placements):
        return findings
    frees = sorted((n["gpu"].get("free", 0) for n in candidates), reverse=True)
    largest = frees[0] if frees else 0
    blocked = placements[len(placed)]["replica"]
    if placed:
        opening = "Only %d of %d replicas fit (replica %d is the first that cannot)" % (len(placed), req["replicas"], blocked)
    else:
        opening = "No replica fits" if req["replicas"] > 1 else "The replica does not fit"
    shape = "each needs %s (TP=%d x PP=%d, %s)" % (
        want, req["tensor_parallel_size"], req["pipeline_parallel_size"], req["mode"].replace("_", "-"))
    if candidates:
        message = "%s: %s; %d schedulable matching node%s with %d free GPUs in total, at most %d on one node." % (
            opening, shape, len(candidates), "" if len(candidates) == 1 else "s", sum(frees), largest)
    else:
        message = "%s: %s, and all %d node%s with that GPU %s excluded (see the other findings)." % (
            opening, shape, len(matching), "" if len(matching) == 1 else "s", "is" if len(matching) == 1 else "are")
    hints = []
    if not candidates:
        hints.append("fix what excludes the nodes (the NODE_*, TAINT_NOT_TOLERATED and GPU_SHARED findings)")
    if placed:
        hints.append("lower replicas to %d" % len(placed))
    if candidates and largest < req["gpus_per_slot"]:
        hints.append("re-plan so each pod needs at most %d GPUs (more pipeline stages, or a bigger GPU)" % largest)
    hints.append("free GPUs held by other pods (kubectl describe node shows the requests), or add/uncordon nodes")
    hint = "; ".join(hints)
    findings.append(_finding(ERROR, "GPU_CAPACITY", message, hint[0].upper() + hint[1:] + ".", [n["name"] for n in candidates]))
    return findings


def _exclusion_findings(reasons, capacity_failed):
    severity = ERROR if capacity_failed else WARNING
    findings = []
    if reasons["not_ready"]:
        findings.append(_finding(
            severity, "NODE_NOT_READY",
            "%d node%s with the plan's GPUs %s NotReady: %s." % (
                len(reasons["not_ready"]), "" if len(reasons["not_ready"]) == 1 else "s",
                "is" if len(reasons["not_ready"]) == 1 else "are", _names(reasons["not_ready"])),
            "Check the kubelet and the GPU Operator pods on them (kubectl describe node); a NotReady node gets no new pods.",
            reasons["not_ready"],
        ))
    if reasons["cordoned"]:
        findings.append(_finding(
            severity, "NODE_CORDONED",
            "%d node%s with the plan's GPUs %s cordoned: %s." % (
                len(reasons["cordoned"]), "" if len(reasons["cordoned"]) == 1 else "s",
                "is" if len(reasons["cordoned"]) == 1 else "are", _names(reasons["cordoned"])),
            "kubectl uncordon <node> once maintenance is over, or plan without them.",
            reasons["cordoned"],
        ))
    for text, names in sorted(reasons["taints"].items()):
        key_value, effect = text.rsplit(":", 1)
        key = key_value.split("=", 1)[0]
        value = key_value.split("=", 1)[1] if "=" in key_value else None
        toleration = "{key: %s, operator: %s%s, effect: %s}" % (
            key, "Equal" if value else "Exists", ", value: %s" % value if value else "", effect)
        findings.append(_finding(
            severity, "TAINT_NOT_TOLERATED",
            "%d node%s with the plan's GPUs carr%s the taint %s, which the workload does not tolerate: %s." % (
                len(names), "" if len(names) == 1 else "s", "ies" if len(names) == 1 else "y", text, _names(names)),
            ("Kubernetes sets this taint from the node's condition: fix the node instead of tolerating it."
             if key.startswith("node.kubernetes.io/") else
             "Add the toleration %s to the workload's tolerations (GPU pools are usually tainted on purpose)." % toleration),
            names,
        ))
    if reasons["shared"]:
        findings.append(_finding(
            severity, "GPU_SHARED",
            "%d node%s advertise time-sliced/MPS GPUs (gpu.replicas > 1 or a -SHARED product): %s. Tensor-parallel ranks "
            "could land on the same physical GPU and NCCL fails or deadlocks." % (
                len(reasons["shared"]), "" if len(reasons["shared"]) == 1 else "s", _names(reasons["shared"])),
            "Use nodes without GPU sharing for multi-GPU replicas (device plugin config without timeSlicing/mps), "
            "or a single-GPU plan.",
            reasons["shared"],
        ))
    if reasons["mig"]:
        findings.append(_finding(
            WARNING, "MIG_ENABLED",
            "%d matching node%s expose MIG slices instead of whole GPUs: %s." % (
                len(reasons["mig"]), "" if len(reasons["mig"]) == 1 else "s", _names(reasons["mig"])),
            "NCCL cannot span MIG instances; disable MIG there (nvidia.com/mig.config=all-disabled) for tensor parallelism.",
            reasons["mig"],
        ))
    return findings


def _mixed_products_findings(req, candidates):
    products = sorted(set(n["gpu"].get("base_product") or "unlabelled" for n in candidates))
    if req["mode"] != "multi_node" or len(products) < 2:
        return []
    return [_finding(
        WARNING, "MIXED_GPU_PRODUCTS",
        "The plan accepts %s, and the scheduler may put one replica's pods on different products: pipeline stages then run "
        "at the pace of the slowest GPU and the memory sizing assumed %s." % (", ".join(products), req["gpu"] or products[0]),
        "Pin one product with a nodeSelector nvidia.com/gpu.product=<one of them> (or an LWS exclusive-topology annotation).",
    )]


def _rdma_findings(req, nodes, source):
    if req["mode"] != "multi_node" or req["slots_per_replica"] < 2 or not nodes:
        return []
    without = [n["name"] for n in nodes if not n["rdma"]]
    if not without:
        return []
    nic_only = [n["name"] for n in nodes if not n["rdma"] and n.get("rdma_nic")]
    across = req["tensor_parallel_size"] > req["gpus_per_slot"]
    traffic = (
        "tensor-parallel all-reduces cross nodes (TP=%d > %d GPUs per node), so every layer waits on the network"
        % (req["tensor_parallel_size"], req["gpus_per_slot"])
        if across else
        "pipeline stages hand activations between nodes for every token"
    )
    ports = (
        "open TCP between the group's pods: %d (vLLM --master-port, mp backend) or %d (Ray GCS) and %s (Ray workers) with "
        "Ray, plus NCCL's bootstrap/socket ports, which are ephemeral (net.ipv4.ip_local_port_range, %s by default), so a "
        "NetworkPolicy must allow all TCP inside the group" % (VLLM_MASTER_PORT, RAY_GCS_PORT, RAY_WORKER_PORTS, LINUX_EPHEMERAL_PORTS)
    )
    findings = []
    if nic_only:
        findings.append(_finding(
            WARNING, "RDMA_NOT_ALLOCATABLE",
            "%s %s Mellanox/RDMA NICs (NFD pci-15b3) but %s no rdma/* or nvidia.com/hostdev resource, so pods cannot "
            "open the HCA and NCCL silently falls back to TCP (NCCL_DEBUG=INFO shows NET/Socket instead of NET/IB)." % (
                _names(nic_only), "has" if len(nic_only) == 1 else "have", "advertises" if len(nic_only) == 1 else "advertise"),
            "Deploy the NVIDIA Network Operator (RDMA shared device plugin or SR-IOV), then request rdma/<resource>: 1, "
            "add the IPC_LOCK capability and set NCCL_IB_HCA=mlx5.",
            nic_only,
        ))
    plain = [name for name in without if name not in nic_only]
    if plain:
        findings.append(_finding(
            WARNING, "RDMA_MISSING",
            "Multi-node replicas without RDMA/InfiniBand on %s (per the %s): NCCL runs over TCP sockets and %s; expect much lower "
            "throughput than with InfiniBand/RoCE and NCCL watchdog timeouts under load." % (_names(plain), source, traffic),
            "Prefer nodes with RDMA (rdma/* resources, NCCL_IB_HCA=mlx5, IPC_LOCK). Over TCP: set NCCL_SOCKET_IFNAME and "
            "GLOO_SOCKET_IFNAME to the pod interface (e.g. eth0), NCCL_IB_DISABLE=1, and %s." % ports,
            plain,
        ))
    return findings


def _component_findings(req, components, require_gpu_operator):
    findings = []
    if components is None:
        return findings
    operator = components.get("gpu_operator") or {}
    state = operator.get("state")
    if operator.get("installed"):
        if state == "unknown":
            if require_gpu_operator:
                findings.append(_finding(
                    WARNING, "GPU_OPERATOR_UNKNOWN",
                    "The GPU Operator is installed but its ClusterPolicy could not be read (RBAC), so its readiness is unchecked.",
                    "Grant get/list on clusterpolicies.nvidia.com, or check kubectl get clusterpolicy yourself.",
                ))
        elif state != "ready":
            detail = ": %s" % operator["message"] if operator.get("message") else ""
            findings.append(_finding(
                ERROR if require_gpu_operator else WARNING, "GPU_OPERATOR_NOT_READY",
                "GPU Operator ClusterPolicy %s is %s%s; GPUs are not safe to schedule until it is ready." % (
                    operator.get("cluster_policy") or "(none)", state, detail),
                "kubectl get clusterpolicy -o yaml and kubectl -n gpu-operator get pods: validator pods stuck in Init usually mean "
                "a missing driver or, on NVSwitch (HGX/DGX) systems, a missing fabric manager.",
            ))
    elif require_gpu_operator:
        findings.append(_finding(
            ERROR, "GPU_OPERATOR_MISSING",
            "The GPU Operator is required but the cluster serves no clusterpolicies.nvidia.com API.",
            "Install the gpu-operator Helm chart (namespace gpu-operator, labelled pod-security privileged), or set "
            "require_gpu_operator to false when the driver and device plugin are managed another way.",
        ))
    if req["mode"] == "multi_node" and not (components.get("leaderworkerset") or {}).get("installed"):
        findings.append(_finding(
            ERROR, "LWS_MISSING",
            "Multi-node serving (%d pods per replica) needs the LeaderWorkerSet API (leaderworkerset.x-k8s.io), which the "
            "cluster does not serve." % req["slots_per_replica"],
            "Install LeaderWorkerSet (kubernetes-sigs/lws, v0.8 or later, webhooks included) before deploying.",
        ))
    return findings


def recommended_shm_bytes(req):
    """The /dev/shm the collection's workload roles size for this plan (module_utils/deploy/shm.py), at least the NCCL floor."""
    try:
        if req["mode"] == "single_node":
            size = shm.shm_size_bytes(req["tensor_parallel_size"], req["pipeline_parallel_size"], 1)
        else:
            size = shm.shm_size_bytes(
                req["tensor_parallel_size"], req["pipeline_parallel_size"], req["slots_per_replica"], req["gpus_per_slot"])
    except ValueError:
        size = NCCL_MIN_SHM_BYTES
    return max(size, NCCL_MIN_SHM_BYTES)


def _shm_findings(req, shm_size_bytes, hosts):
    findings = []
    recommended = recommended_shm_bytes(req)
    fix = (
        "Mount an emptyDir {medium: Memory, sizeLimit: %dGi} at /dev/shm; it counts against the container's memory "
        "limit, so raise the limit by the same amount." % (recommended // GIB)
    )
    if shm_size_bytes is not None and shm_size_bytes < NCCL_MIN_SHM_BYTES:
        default = " (the container default)" if shm_size_bytes == DEFAULT_CONTAINER_SHM_BYTES else ""
        if req["nccl"]:
            message = (
                "/dev/shm in the pod is %s%s; NCCL with %d GPUs per pod needs at least %s and dies with 'Bus error' or "
                "'failed to extend /dev/shm' at the first collective." % (
                    _gib(shm_size_bytes), default, req["gpus_per_slot"], _gib(NCCL_MIN_SHM_BYTES)))
        else:
            message = (
                "/dev/shm in the pod is %s%s; vLLM's engine processes exchange batches through shared memory and need "
                "at least %s." % (_gib(shm_size_bytes), default, _gib(NCCL_MIN_SHM_BYTES)))
        findings.append(_finding(ERROR if req["nccl"] else WARNING, "SHM_TOO_SMALL", message, fix))
    elif shm_size_bytes is not None and shm_size_bytes < recommended:
        findings.append(_finding(
            WARNING, "SHM_TOO_SMALL",
            "/dev/shm in the pod is %s, below the %s sized for %d NCCL ranks per pod (channel buffers of ~9 MiB x up to "
            "32 channels per rank when NCCL uses its shared-memory transport); a full /dev/shm shows up as SIGBUS under load." % (
                _gib(shm_size_bytes), _gib(recommended), req["gpus_per_slot"]),
            fix,
        ))
    if not req["nccl"]:
        return findings
    small_hosts = [h["name"] for h in hosts if h.get("shm_bytes") is not None and h["shm_bytes"] < NCCL_MIN_SHM_BYTES]
    if small_hosts:
        findings.append(_finding(
            WARNING, "SHM_TOO_SMALL",
            "/dev/shm on %s is below %s; containers that share the host IPC namespace (or plain docker runs) will hit NCCL "
            "shared-memory errors." % (_names(small_hosts), _gib(NCCL_MIN_SHM_BYTES)),
            "Grow the host tmpfs (mount -o remount,size=%dG /dev/shm) or give pods their own memory-backed /dev/shm." % (
                recommended // GIB),
            small_hosts,
        ))
    return findings


# --------------------------------------------------------------------------------------------- host facts


def normalize_hosts(hosts):
    """gpu_host facts as a list of dicts with a ``name``: accepts {name: facts} or a list (``name``/``hostname`` keys optional)."""
    if not hosts:
        return []
    if isinstance(hosts, dict):
        items = sorted(hosts.items())
    elif isinstance(hosts, list):
        items = []
        for index, facts in enumerate(hosts):
            if not isinstance(facts, dict):
                raise PlanCheckError("hosts[%d] must be a gpu_host facts dict, got %r" % (index, facts))
            name = facts.get("name") or facts.get("inventory_hostname") or facts.get("hostname") or "host%d" % index
            items.append((name, facts))
    else:
        raise PlanCheckError("hosts must be a list of gpu_host facts or a dict of host name -> facts, got %s" % type(hosts).__name__)
    result = []
    for name, facts in items:
        if not isinstance(facts, dict):
            raise PlanCheckError("hosts[%s] must be a gpu_host facts dict, got %r" % (name, facts))
        facts = dict(facts.get("gpu_host", facts))
        facts["name"] = str(name)
        result.append(facts)
    return result


def host_node(host):
    """A host described by gpu_host facts, shaped like a cluster inventory entry (all its whole GPUs free)."""
    gpus = host.get("gpus") or []
    whole = [g for g in gpus if str(g.get("mig_mode") or "").lower() != "enabled"]
    names = sorted(set(sanitize_product(g.get("name")) for g in whole if g.get("name")))
    memories = [g.get("memory_mib") for g in whole if g.get("memory_mib")]
    product = names[0] if len(names) == 1 else (" + ".join(names) if names else None)
    return {
        "name": host["name"],
        "ready": True,
        "schedulable": True,
        "taints": [],
        "gpu": {
            "allocatable": len(whole), "capacity": len(gpus), "free": len(whole), "product": product,
            "base_product": product, "memory_mib": min(memories) if memories else None, "shared": False, "mig": False,
        },
        "rdma": bool(host.get("rdma_devices")),
        "rdma_nic": bool(host.get("rdma_devices")),
        "mixed_products": len(names) > 1,
        "mig_gpus": len(gpus) - len(whole),
    }


def _link_types_between(host, members):
    """Link types (PIX, PHB, SYS...) among ``members`` GPU indices, from the pairwise links list."""
    found = set()
    for link in host.get("links") or []:
        if isinstance(link, dict) and link.get("a") in members and link.get("b") in members:
            found.add(link.get("type"))
    return found


def _allreduce_cost(req, tp):
    """Per decode step all-reduce time over PCIe vs NVLink, when the model's hidden size is known."""
    hidden, layers, seqs = req["hidden_size"], req["num_layers"], req["max_num_seqs"]
    if not (hidden and layers and seqs):
        return ""
    # Two all-reduces per layer (attention and MLP outputs); a ring moves 2(n-1)/n of the buffer per GPU.
    step_bytes = layers * 2 * 2.0 * (tp - 1) / tp * seqs * hidden * req["dtype_bytes"]
    return " At %d sequences per step that is ~%.0f MB of all-reduce traffic per GPU per decode step: ~%.1f ms over PCIe vs ~%.1f ms on NVLink." % (
        seqs, step_bytes / 1e6, step_bytes / (PCIE_GBPS * 1e6), step_bytes / (NVLINK_GBPS * 1e6))


def _host_topology_findings(req, hosts):
    findings = []
    tp_local = req["tp_per_node"]
    per_slot = req["gpus_per_slot"]
    if tp_local < 2:
        return findings
    island_split, pcie, mixed, mig = [], [], [], []
    worst_links = set()
    for host in hosts:
        node = host_node(host)
        if node["mixed_products"]:
            mixed.append(host["name"])
        if node["mig_gpus"]:
            mig.append(host["name"])
        if node["gpu"]["allocatable"] < per_slot:
            continue
        islands = host.get("nvlink_islands") or []
        max_tp = host.get("max_nvlink_tp")
        if max_tp is None:
            max_tp = max([len(i) for i in islands] or [1])
        if max_tp >= tp_local:
            continue
        if max_tp >= 2:
            island_split.append((host["name"], max_tp, islands))
        elif tp_local > 2:
            pcie.append(host["name"])
            indices = [g.get("index") for g in host.get("gpus") or []]
            worst_links |= _link_types_between(host, indices[:tp_local])
    if island_split:
        name, max_tp, islands = island_split[0]
        findings.append(_finding(
            WARNING, "NVLINK_ISLAND",
            "TP=%d does not fit in one NVLink island on %s (largest island %d GPUs, islands %s): the all-reduce ring crosses "
            "PCIe/SMP between islands, and that hop sets the speed of every layer." % (
                tp_local, _names([h[0] for h in island_split]), max_tp, islands),
            "Use TP=%d x PP=%d on these hosts, or hosts whose GPUs are all NVLink-connected (NVSwitch: all_pairs_nvlink)." % (
                max_tp, -(-req["tensor_parallel_size"] // max_tp) * req["pipeline_parallel_size"]),
            [h[0] for h in island_split],
        ))
    if pcie:
        via = ""
        if "SYS" in worst_links:
            via = " Some GPU pairs connect through SYS (across CPU sockets), the slowest path, and NCCL may disable P2P there."
        findings.append(_finding(
            WARNING, "PCIE_TP",
            "TP=%d over PCIe only on %s (no NVLink): every layer does two all-reduces at ~%d GB/s per GPU instead of %d+ GB/s "
            "on NVLink, so past TP=2 communication rather than compute sets the decode speed.%s%s" % (
                tp_local, _names(pcie), PCIE_GBPS, NVLINK_GBPS, via, _allreduce_cost(req, tp_local)),
            "Prefer TP=2 x PP=%d (pipeline stages exchange far less data), or data-parallel replicas of TP<=2 when the model fits." % (
                max(1, req["tensor_parallel_size"] * req["pipeline_parallel_size"] // 2)),
            pcie,
        ))
    if mixed:
        findings.append(_finding(
            WARNING, "MIXED_GPU_PRODUCTS",
            "%s mix%s GPU models; a TP group spanning them runs at the slowest GPU and the plan's memory math assumed one model." % (
                _names(mixed), "es" if len(mixed) == 1 else ""),
            "Expose only one model to the workload (NVIDIA_VISIBLE_DEVICES / device plugin config) or plan for the smaller GPU.",
            mixed,
        ))
    if mig:
        findings.append(_finding(
            WARNING, "MIG_ENABLED",
            "MIG is enabled on some GPUs of %s; those GPUs cannot join a tensor-parallel group." % _names(mig),
            "Disable MIG on the GPUs meant for serving (nvidia-smi -mig 0, or nvidia.com/mig.config=all-disabled with the MIG manager).",
            mig,
        ))
    return findings


def _tp_across_nodes_findings(req):
    if req["mode"] != "multi_node" or req["tensor_parallel_size"] <= req["gpus_per_slot"]:
        return []
    return [_finding(
        WARNING, "TP_ACROSS_NODES",
        "TP=%d is larger than the %d GPUs per node: tensor-parallel all-reduces (two per layer) cross the network." % (
            req["tensor_parallel_size"], req["gpus_per_slot"]),
        "Keep TP within a node (TP = GPUs per node) and use pipeline parallelism across nodes.",
    )]


# --------------------------------------------------------------------------------------------- entry point


def _host_driver_version(host):
    versions = sorted(set(str(g.get("driver_version")) for g in host.get("gpus") or [] if g.get("driver_version")))
    return versions[0] if versions else None


def _driver_findings(engine_image, nodes, version_of):
    """Nodes whose NVIDIA driver is older than the engine image's CUDA needs (unknown versions pass)."""
    need = engines.image_driver_requirement(engine_image)
    if not need:
        return []
    old = []
    for node in nodes:
        version = version_of(node)
        match = re.match(r"^\s*(\d+)", str(version or ""))
        if match and int(match.group(1)) < need["min_driver_major"]:
            old.append("%s (%s)" % (node["name"], version))
    if not old:
        return []
    return [_finding(
        ERROR, "DRIVER_TOO_OLD",
        "%s is built on CUDA %s, which needs NVIDIA driver R%d or newer; these nodes run older drivers: %s."
        % (need["image"], need["cuda"], need["min_driver_major"], ", ".join(old)),
        "Upgrade the driver to R%d+ (with the GPU Operator: driver.version), or pin an engine image built on an "
        "older CUDA." % need["min_driver_major"],
    )]


def check_plan(plan_result, cluster=None, hosts=None, tolerations=None, deployment_mode="auto", replicas=None,
               shm_size_bytes=None, require_gpu_operator=False, engine_image=None):
    """Run every check; returns {ok, error_count, warning_count, findings, candidate_nodes, requirements}."""
    req = requirements(plan_result, replicas, deployment_mode)
    tolerations = normalize_tolerations(tolerations)
    hosts = normalize_hosts(hosts)
    if shm_size_bytes is not None:
        if isinstance(shm_size_bytes, bool) or int(shm_size_bytes) < 0:
            raise PlanCheckError("shm_size_bytes must be a size in bytes (>= 0), got %r" % (shm_size_bytes,))
        shm_size_bytes = int(shm_size_bytes)
    if cluster is not None and not isinstance(cluster, dict):
        raise PlanCheckError("cluster must be the gpu_cluster_info result (a dict with 'nodes'), got %s" % type(cluster).__name__)

    findings = []
    placements = []
    surge_replicas = None
    if req["fits"] is False:
        findings.append(_finding(
            ERROR, "PLAN_DOES_NOT_FIT",
            "gpu_sizing itself says the model does not fit this plan (fits: false): weights plus activations leave no KV cache.",
            "Re-plan: a bigger GPU, more GPUs per replica, a quantized model or a shorter max_model_len.",
        ))

    if cluster is not None:
        nodes = cluster.get("nodes")
        if not isinstance(nodes, list):
            raise PlanCheckError("cluster.nodes must be the list gpu_cluster_info returns, got %r" % (type(nodes).__name__,))
        matching, candidates, reasons = classify_cluster_nodes(req, nodes, tolerations)
        placements, free_after = assign(req, candidates, req["gpu_labels"])
        if placements and all(p["placed"] for p in placements):
            surge_replicas = surge_capacity(req, candidates, free_after, req["gpu_labels"])
        present = {}
        for node in nodes:
            gpu = node.get("gpu") or {}
            if gpu.get("allocatable"):
                key = gpu.get("product") or "unlabelled"
                present[key] = present.get(key, 0) + 1
        capacity = _capacity_findings(req, placements, matching, candidates, present, "node in the cluster")
        findings.extend(capacity)
        findings.extend(_exclusion_findings(reasons, any(f["code"] in ("GPU_CAPACITY",) for f in capacity)))
        findings.extend(_mixed_products_findings(req, [n for n in candidates if n["gpu"].get("free", 0) >= req["gpus_per_slot"]]))
        assigned = set(name for p in placements for name in p["nodes"])
        rdma_scope = [n for n in candidates if n["name"] in assigned] or candidates
        findings.extend(_rdma_findings(req, rdma_scope, "cluster inventory"))
        findings.extend(_component_findings(req, cluster.get("components"), require_gpu_operator))
        findings.extend(_driver_findings(engine_image, [n for n in candidates if n["name"] in assigned] or candidates,
                                         lambda node: (node["gpu"].get("driver_version") or {}).get("full")))
    elif require_gpu_operator:
        findings.append(_finding(
            WARNING, "GPU_OPERATOR_UNKNOWN",
            "The GPU Operator is required but no cluster inventory was given, so its state is unchecked.",
            "Run gpuinfer.serving.gpu_cluster_info first (validate.yml does unless gpuinfer_render_dir is set).",
        ))

    if hosts:
        assigned = set(name for p in placements for name in p["nodes"])
        relevant = [h for h in hosts if h["name"] in assigned] or hosts
        findings.extend(_host_topology_findings(req, relevant))
        findings.extend(_driver_findings(engine_image, relevant, _host_driver_version))
        if cluster is None:
            host_nodes = [host_node(h) for h in hosts]
            matching, candidates, _reasons = classify_cluster_nodes(req, host_nodes, tolerations)
            placements, _free = assign(req, candidates, req["gpu_labels"])
            present = {}
            for node in host_nodes:
                if node["gpu"]["allocatable"]:
                    present[node["gpu"]["product"]] = present.get(node["gpu"]["product"], 0) + 1
            findings.extend(_capacity_findings(req, placements, matching, candidates, present, "host in the facts given"))
            assigned = set(name for p in placements for name in p["nodes"])
            findings.extend(_rdma_findings(req, [n for n in candidates if n["name"] in assigned] or candidates, "host facts"))

    findings.extend(_tp_across_nodes_findings(req))
    findings.extend(_shm_findings(req, shm_size_bytes, hosts))
    if cluster is None and not hosts:
        findings.append(_finding(
            WARNING, "NO_FACTS",
            "Neither a cluster inventory nor GPU host facts were given: capacity, topology and taints are unchecked.",
            "Pass cluster (gpu_cluster_info) and/or hosts (gpu_host_facts).",
        ))

    findings.sort(key=lambda f: (0 if f["severity"] == ERROR else 1))
    errors = len([f for f in findings if f["severity"] == ERROR])
    return {
        "ok": errors == 0,
        # "warnings" is reserved in module results (Ansible prints it as warning messages).
        "error_count": errors,
        "warning_count": len(findings) - errors,
        "findings": findings,
        "candidate_nodes": placements,
        # Replicas that fit beside the planned ones (None: no cluster read, or the plan does not fit); the
        # rollout surges only when one does (workload.rollout_plan).
        "surge_replicas": surge_replicas,
        "spare_gpus": None if surge_replicas is None else surge_replicas * req["gpus_per_slot"] * req["slots_per_replica"],
        "requirements": dict((k, req[k]) for k in (
            "mode", "tensor_parallel_size", "pipeline_parallel_size", "replicas", "slots_per_replica", "gpus_per_slot",
            "gpu", "gpu_labels", "gpu_memory_gib")),
    }


def format_findings(findings):
    """One line per finding, errors first, for a playbook's failure message."""
    return [
        "%s %s: %s Fix: %s" % (f["severity"].upper(), f["code"], f["message"], f["hint"])
        for f in findings
    ]
