# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes workload objects shared by the vLLM and NIM roles.

The engine roles describe their containers (image, command, env, probes); this
module wraps them into the pod rules both engines share (GPU scheduling, the
memory-backed /dev/shm, the model cache volume, NCCL and RDMA settings) and into
the right controller: a Deployment for one node, a LeaderWorkerSet group for
several, plus a PodDisruptionBudget.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

MANAGED_BY = "gpuinfer.serving"
PART_OF = "gpuinfer-serving"
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_EXCLUSIVE_TOPOLOGY_ANNOTATION = "leaderworkerset.sigs.k8s.io/exclusive-topology"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"
SHM_VOLUME = "dshm"
CACHE_VOLUME = "model-cache"

ROLLOUT_CHOICES = ("auto", "Recreate", "RollingUpdate")
LWS_RESTART_POLICIES = ("RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None")
LWS_STARTUP_POLICIES = ("LeaderCreated", "LeaderReady")


class WorkloadError(ValueError):
    """Raised for a workload description that cannot be turned into objects."""


def standard_labels(name, instance):
    """The labels every gpuinfer.serving object carries (teardown selects on them)."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
    }


def selector_labels(name, instance):
    """Labels a Deployment selects its pods by: stable, since a selector is immutable."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}


def _whole(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise WorkloadError("%s must be a whole number, got %r" % (name, value))
        if as_float != int(as_float):
            raise WorkloadError("%s must be a whole number, got %r" % (name, value))
        value = int(as_float)
    if value < minimum:
        raise WorkloadError("%s must be at least %d, got %d" % (name, minimum, value))
    return value


def gpu_scheduling(gpu_labels, tolerate_gpu_taint=True, extra_tolerations=None,
                   node_selector=None, gpu_label_key=GPU_PRODUCT_LABEL):
    """Affinity, tolerations and node selector that pin a pod to the plan's GPU product.

    All tensor-parallel ranks of a pod share one node, so pinning the product
    keeps them in one NVLink domain of the GPU the plan was sized for.
    """
    pod = {}
    labels = [str(label) for label in (gpu_labels or []) if str(label)]
    if labels:
        pod["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": gpu_label_key, "operator": "In", "values": labels}]}
                    ]
                }
            }
        }
    tolerations = []
    if tolerate_gpu_taint:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    tolerations.extend(copy.deepcopy(extra_tolerations or []))
    if tolerations:
        pod["tolerations"] = tolerations
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    return pod


def shm_volume(size):
    """/dev/shm backed by memory: the container default (64 MiB) breaks NCCL."""
    if not size:
        raise WorkloadError("shm_size must be set (e.g. 16Gi): NCCL needs more than the 64 MiB default /dev/shm")
    return {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": str(size)}}


def cache_volume(pvc_name):
    """The model cache: a PVC when named, else an emptyDir (weights fetched on every start)."""
    if pvc_name:
        return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": str(pvc_name)}}
    return {"name": CACHE_VOLUME, "emptyDir": {}}


def nccl_env(socket_ifname="", ib_hca="", debug="", rdma_enabled=False):
    """NCCL settings: interface for bootstrap/socket traffic, IB adapters when RDMA is on."""
    env = []
    if socket_ifname:
        env.append({"name": "NCCL_SOCKET_IFNAME", "value": str(socket_ifname)})
    if rdma_enabled and ib_hca:
        env.append({"name": "NCCL_IB_HCA", "value": str(ib_hca)})
    if debug:
        env.append({"name": "NCCL_DEBUG", "value": str(debug)})
    return env


def rollout_plan(choice, replicas, gpus_per_replica, spare_gpus):
    """Pick update strategies that cannot deadlock on scarce GPUs.

    A surge pod needs a whole replica's GPUs free; without them it stays Pending
    while the old pod keeps its GPUs, and the rollout never finishes. So surge
    only when the cluster has that many spare GPUs; otherwise replace in place.
    Returns the Deployment strategy, the LWS rolling update configuration and why.
    """
    if choice not in ROLLOUT_CHOICES:
        raise WorkloadError("rollout strategy must be one of %s, got %r" % (", ".join(ROLLOUT_CHOICES), choice))
    replicas = _whole("replicas", replicas, 0)
    gpus_per_replica = _whole("gpus_per_replica", gpus_per_replica, 1)
    spare = _whole("spare_gpus", spare_gpus or 0, 0)
    can_surge = spare >= gpus_per_replica
    surge = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    in_place = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    if choice == "Recreate":
        deployment, reason = {"type": "Recreate"}, "Recreate requested"
    elif choice == "RollingUpdate":
        deployment = surge if can_surge else in_place
        reason = "RollingUpdate requested; %s" % (
            "%d spare GPUs cover a surge replica of %d" % (spare, gpus_per_replica) if can_surge
            else "%d spare GPUs < %d per replica, so no surge (maxSurge 0)" % (spare, gpus_per_replica))
    elif can_surge:
        deployment = surge
        reason = "%d spare GPUs cover a surge replica of %d GPUs: RollingUpdate with maxSurge 1" % (spare, gpus_per_replica)
    elif replicas > 1:
        deployment = in_place
        reason = "%d spare GPUs < %d per replica: RollingUpdate maxSurge 0 / maxUnavailable 1" % (spare, gpus_per_replica)
    else:
        deployment = {"type": "Recreate"}
        reason = "%d spare GPUs < %d per replica and one replica: Recreate" % (spare, gpus_per_replica)
    lws = {"maxUnavailable": 1, "maxSurge": 1 if can_surge and choice != "Recreate" else 0}
    return {"deployment": deployment, "lws": lws, "reason": reason, "can_surge": can_surge}


def _container(base, gpus, volume_mounts, extra_env, rdma, resources):
    container = copy.deepcopy(base)
    if not container.get("name") or not container.get("image"):
        raise WorkloadError("each container needs a name and an image, got %r" % (sorted(container),))
    env = list(container.get("env") or [])
    names = set(item.get("name") for item in env)
    env.extend(item for item in extra_env if item["name"] not in names)
    if env:
        container["env"] = env
    limits = {GPU_RESOURCE: str(gpus)}
    requests = {GPU_RESOURCE: str(gpus)}
    if rdma.get("enabled"):
        rdma_resource = rdma.get("resource")
        if not rdma_resource:
            raise WorkloadError("rdma.resource must name the RDMA device resource (e.g. rdma/rdma_shared_device_a) when RDMA is enabled")
        limits[rdma_resource] = str(rdma.get("count", 1))
        requests[rdma_resource] = str(rdma.get("count", 1))
        security = container.setdefault("securityContext", {})
        capabilities = security.setdefault("capabilities", {})
        added = capabilities.setdefault("add", [])
        if "IPC_LOCK" not in added:
            added.append("IPC_LOCK")
    for key in ("cpu", "memory"):
        if resources.get(key + "_request"):
            requests[key] = str(resources[key + "_request"])
        if resources.get(key + "_limit"):
            limits[key] = str(resources[key + "_limit"])
    container["resources"] = {"limits": limits, "requests": requests}
    container["volumeMounts"] = list(container.get("volumeMounts") or []) + volume_mounts
    return container


def _pod_spec(spec, container, pod_extra):
    # No Docker-link env: a Service named "vllm" would inject VLLM_PORT=tcp://..., which vLLM reads as its
    # own setting and refuses (vllm/envs.py in v0.29.0).
    pod = {"containers": [container], "enableServiceLinks": False}
    pod.update(gpu_scheduling(spec.get("gpu_labels"), spec.get("tolerate_gpu_taint", True),
                              spec.get("tolerations"), spec.get("node_selector")))
    pod["volumes"] = [shm_volume(spec.get("shm_size")), cache_volume((spec.get("cache") or {}).get("pvc_name"))]
    if spec.get("image_pull_secrets"):
        pod["imagePullSecrets"] = [{"name": str(name)} for name in spec["image_pull_secrets"]]
    if spec.get("pod_security_context"):
        pod["securityContext"] = copy.deepcopy(spec["pod_security_context"])
    if spec.get("service_account"):
        pod["serviceAccountName"] = spec["service_account"]
    if spec.get("termination_grace_period_seconds") is not None:
        pod["terminationGracePeriodSeconds"] = _whole("termination_grace_period_seconds",
                                                      spec["termination_grace_period_seconds"], 0)
    if spec.get("priority_class"):
        pod["priorityClassName"] = spec["priority_class"]
    pod.update(pod_extra)
    return pod


def build_workload(spec):
    """Return [workload, PodDisruptionBudget] for an engine.

    spec keys: name, namespace, instance, engine, replicas, nodes, gpus_per_node,
    gpu_labels, leader_container, worker_container (nodes > 1), shm_size,
    cache {pvc_name, mount_path}, nccl {socket_ifname, ib_hca, debug},
    rdma {enabled, resource, count}, rollout {strategy, spare_gpus},
    lws {startup_policy, restart_policy, exclusive_topology}, pdb {enabled, max_unavailable},
    and optional tolerations, node_selector, tolerate_gpu_taint, image_pull_secrets,
    pod_security_context, service_account, leader_annotations, labels, resources,
    termination_grace_period_seconds, priority_class.
    """
    for key in ("name", "namespace", "instance", "engine", "leader_container"):
        if not spec.get(key):
            raise WorkloadError("workload description is missing %r" % key)
    nodes = _whole("nodes", spec.get("nodes", 1), 1)
    gpus_per_node = _whole("gpus_per_node", spec.get("gpus_per_node"), 1)
    replicas = _whole("replicas", spec.get("replicas", 1), 0)
    if nodes > 1 and not spec.get("worker_container"):
        raise WorkloadError("a %d-node group needs worker_container (the command run on non-leader pods)" % nodes)
    cache = spec.get("cache") or {}
    mount_path = cache.get("mount_path")
    if not mount_path:
        raise WorkloadError("cache.mount_path must be set (where the model cache is mounted)")
    rdma = spec.get("rdma") or {}
    nccl = spec.get("nccl") or {}
    extra_env = nccl_env(nccl.get("socket_ifname"), nccl.get("ib_hca"), nccl.get("debug"), rdma.get("enabled"))
    mounts = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"},
              {"name": CACHE_VOLUME, "mountPath": str(mount_path)}]
    resources = spec.get("resources") or {}
    rollout_spec = spec.get("rollout") or {}
    rollout = rollout_plan(rollout_spec.get("strategy", "auto"), replicas, gpus_per_node * nodes,
                           rollout_spec.get("spare_gpus", 0))

    name, namespace, instance, engine = spec["name"], spec["namespace"], spec["instance"], spec["engine"]
    labels = standard_labels(engine, instance)
    labels.update(spec.get("labels") or {})
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    leader = _container(spec["leader_container"], gpus_per_node, mounts, extra_env, rdma, resources)
    leader_meta = {"labels": dict(labels)}
    if spec.get("leader_annotations"):
        leader_meta["annotations"] = dict(spec["leader_annotations"])

    if nodes == 1:
        workload = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector_labels(engine, instance)},
                "strategy": rollout["deployment"],
                "template": {"metadata": leader_meta, "spec": _pod_spec(spec, leader, {})},
            },
        }
        pdb_selector = selector_labels(engine, instance)
    else:
        lws_spec = spec.get("lws") or {}
        restart_policy = lws_spec.get("restart_policy", "RecreateGroupOnPodRestart")
        if restart_policy not in LWS_RESTART_POLICIES:
            raise WorkloadError("lws.restart_policy must be one of %s, got %r" % (", ".join(LWS_RESTART_POLICIES), restart_policy))
        startup_policy = lws_spec.get("startup_policy", "LeaderCreated")
        if startup_policy not in LWS_STARTUP_POLICIES:
            raise WorkloadError("lws.startup_policy must be one of %s, got %r" % (", ".join(LWS_STARTUP_POLICIES), startup_policy))
        worker = _container(spec["worker_container"], gpus_per_node, mounts, extra_env, rdma, resources)
        if lws_spec.get("exclusive_topology"):
            metadata["annotations"] = {LWS_EXCLUSIVE_TOPOLOGY_ANNOTATION: str(lws_spec["exclusive_topology"])}
        workload = {
            "apiVersion": LWS_API_VERSION,
            "kind": "LeaderWorkerSet",
            "metadata": metadata,
            "spec": {
                "replicas": replicas,
                "startupPolicy": startup_policy,
                "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": rollout["lws"]},
                "leaderWorkerTemplate": {
                    "size": nodes,
                    "restartPolicy": restart_policy,
                    "leaderTemplate": {"metadata": leader_meta, "spec": _pod_spec(spec, leader, {})},
                    "workerTemplate": {"metadata": {"labels": dict(labels)}, "spec": _pod_spec(spec, worker, {})},
                },
            },
        }
        pdb_selector = selector_labels(engine, instance)

    objects = [workload]
    pdb = spec.get("pdb") or {}
    if pdb.get("enabled", True):
        objects.append({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"maxUnavailable": _whole("pdb.max_unavailable", pdb.get("max_unavailable", 1), 0),
                     "selector": {"matchLabels": pdb_selector}},
        })
    return objects


def rollout_reason(spec):
    """The sentence explaining the chosen rollout strategy, for the role's output."""
    rollout_spec = spec.get("rollout") or {}
    nodes = _whole("nodes", spec.get("nodes", 1), 1)
    gpus_per_node = _whole("gpus_per_node", spec.get("gpus_per_node"), 1)
    return rollout_plan(rollout_spec.get("strategy", "auto"), spec.get("replicas", 1), gpus_per_node * nodes,
                        rollout_spec.get("spare_gpus", 0))["reason"]
