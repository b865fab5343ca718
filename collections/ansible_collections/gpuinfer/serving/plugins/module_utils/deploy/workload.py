# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes workload objects for every engine.

``build_engine_objects`` is the one call a deploy makes: plan + engine name + settings
in, every workload object out. The engine description (registry.get) builds the
containers; this module adds the pod rules all engines share (GPU scheduling, the
memory-backed /dev/shm, the model cache volume, NCCL and RDMA settings) and wraps them
into the controller the replica layout (plan/layout.py) names: a Deployment for one node, a
LeaderWorkerSet group for several, plus a PodDisruptionBudget.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import probes, rollout as day2
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import layout as replica

MANAGED_BY = "gpuinfer.serving"
PART_OF = "gpuinfer-serving"
LWS_API_VERSION = replica.CONTROLLER_API_VERSIONS[replica.LEADER_WORKER_SET]
LWS_EXCLUSIVE_TOPOLOGY_ANNOTATION = "leaderworkerset.sigs.k8s.io/exclusive-topology"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = replica.GPU_RESOURCE
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


def gpu_scheduling(gpu_labels, tolerate_gpu_taint=True, extra_tolerations=None,
                   node_selector=None, gpu_label_key=GPU_PRODUCT_LABEL, layout=None):
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
    tolerations = replica.tolerations(layout or {"gpu_tolerations": [replica.GPU_TOLERATION]}, tolerate_gpu_taint,
                                      copy.deepcopy(extra_tolerations or []))
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
    Returns the Deployment strategy, the LWS rolling update configuration and why, for each
    (a LeaderWorkerSet has no Recreate: where a Deployment is recreated, it rolls one group at a time).
    """
    if choice not in ROLLOUT_CHOICES:
        raise WorkloadError("rollout strategy must be one of %s, got %r" % (", ".join(ROLLOUT_CHOICES), choice))
    replicas = inputs.whole_number(replicas, 0, "replicas", WorkloadError)
    gpus_per_replica = inputs.whole_number(gpus_per_replica, 1, "gpus_per_replica", WorkloadError)
    spare = inputs.whole_number(spare_gpus or 0, 0, "spare_gpus", WorkloadError)
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
    lws_reason = reason
    if deployment["type"] == "Recreate":
        lws_reason = "%s; a LeaderWorkerSet has no Recreate: RollingUpdate maxSurge 0 / maxUnavailable 1" % (
            "Recreate requested" if choice == "Recreate"
            else "%d spare GPUs < %d per replica and one replica" % (spare, gpus_per_replica))
    return {"deployment": deployment, "lws": lws, "reason": reason, "lws_reason": lws_reason, "can_surge": can_surge}


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
                              spec.get("tolerations"), spec.get("node_selector"), layout=spec.get("layout")))
    pod["volumes"] = [shm_volume(spec.get("shm_size")), cache_volume((spec.get("cache") or {}).get("pvc_name"))]
    if spec.get("image_pull_secrets"):
        pod["imagePullSecrets"] = [{"name": str(name)} for name in spec["image_pull_secrets"]]
    if spec.get("pod_security_context"):
        pod["securityContext"] = copy.deepcopy(spec["pod_security_context"])
    if spec.get("service_account"):
        pod["serviceAccountName"] = spec["service_account"]
    if spec.get("termination_grace_period_seconds") is not None:
        pod["terminationGracePeriodSeconds"] = inputs.whole_number(spec["termination_grace_period_seconds"], 0,
                                                                   "termination_grace_period_seconds", WorkloadError)
    if spec.get("priority_class"):
        pod["priorityClassName"] = spec["priority_class"]
    pod.update(pod_extra)
    return pod


def build_workload(spec):
    """Return [workload, PodDisruptionBudget] for an engine.

    spec keys: name, namespace, instance, engine, replicas, layout (plan/layout.py replica_layout),
    gpu_labels, leader_container, worker_container (multi-node),
    shm_size, cache {pvc_name, mount_path}, nccl {socket_ifname, ib_hca, debug},
    rdma {enabled, resource, count}, rollout {strategy, spare_gpus},
    lws {startup_policy, restart_policy, exclusive_topology}, pdb {enabled, max_unavailable},
    and optional tolerations, node_selector, tolerate_gpu_taint, image_pull_secrets,
    pod_security_context, service_account, leader_annotations, labels, resources,
    termination_grace_period_seconds, priority_class.
    """
    for key in ("name", "namespace", "instance", "engine", "leader_container", "layout"):
        if not spec.get(key):
            raise WorkloadError("workload description is missing %r" % key)
    layout = spec["layout"]
    nodes = layout["pods_per_replica"]
    gpus_per_pod = inputs.whole_number(layout["gpus_per_pod"], 1, "gpus_per_pod", WorkloadError)
    replicas = inputs.whole_number(spec.get("replicas", 1), 0, "replicas", WorkloadError)
    if layout["multi_node"] and not spec.get("worker_container"):
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
    rollout = rollout_plan(rollout_spec.get("strategy", "auto"), replicas, layout["gpus_per_replica"],
                           rollout_spec.get("spare_gpus", 0))

    name, namespace, instance, engine = spec["name"], spec["namespace"], spec["instance"], spec["engine"]
    labels = standard_labels(engine, instance)
    labels.update(spec.get("labels") or {})
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    leader = _container(spec["leader_container"], gpus_per_pod, mounts, extra_env, rdma, resources)
    leader_meta = {"labels": dict(labels)}
    if spec.get("leader_annotations"):
        leader_meta["annotations"] = dict(spec["leader_annotations"])

    if layout["controller"] == replica.DEPLOYMENT:
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
        if spec.get("progress_deadline_seconds"):
            # Kubernetes' 600 s default would call a model still loading a failed rollout.
            workload["spec"]["progressDeadlineSeconds"] = inputs.whole_number(spec["progress_deadline_seconds"], 1,
                                                                              "progress_deadline_seconds", WorkloadError)
        pdb_selector = selector_labels(engine, instance)
    else:
        lws_spec = spec.get("lws") or {}
        restart_policy = lws_spec.get("restart_policy", "RecreateGroupOnPodRestart")
        if restart_policy not in LWS_RESTART_POLICIES:
            raise WorkloadError("lws.restart_policy must be one of %s, got %r" % (", ".join(LWS_RESTART_POLICIES), restart_policy))
        startup_policy = lws_spec.get("startup_policy", "LeaderCreated")
        if startup_policy not in LWS_STARTUP_POLICIES:
            raise WorkloadError("lws.startup_policy must be one of %s, got %r" % (", ".join(LWS_STARTUP_POLICIES), startup_policy))
        worker = _container(spec["worker_container"], gpus_per_pod, mounts, extra_env, rdma, resources)
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
            "spec": {"maxUnavailable": inputs.whole_number(pdb.get("max_unavailable", 1), 0, "pdb.max_unavailable", WorkloadError),
                     "selector": {"matchLabels": pdb_selector}},
        })
    return objects


def rollout_reason(spec):
    """The sentence explaining the chosen rollout strategy of the controller the spec gets, for the role's output."""
    rollout_spec = spec.get("rollout") or {}
    layout = spec["layout"]
    plan = rollout_plan(rollout_spec.get("strategy", "auto"), spec.get("replicas", 1), layout["gpus_per_replica"],
                        rollout_spec.get("spare_gpus", 0))
    return plan["lws_reason"] if layout["controller"] == replica.LEADER_WORKER_SET else plan["reason"]


def check_plan(plan):
    """Refuse a plan the workload cannot be built from, in the words the user can act on."""
    if not isinstance(plan, dict) or not isinstance(plan.get("plan"), dict):
        raise WorkloadError("gpuinfer_plan is missing or incomplete (it needs plan.* and weights_bytes): run playbooks/plan.yml "
                            "(gpuinfer.serving.gpu_sizing) and pass its plan.yml, e.g. -e @<dir>/plan.yml")
    try:
        weights = float(plan.get("weights_bytes") or 0)
    except (TypeError, ValueError):
        weights = 0
    if weights <= 0:
        raise WorkloadError("gpuinfer_plan.weights_bytes=%r must be a positive number of bytes: pass the whole gpu_sizing "
                            "result" % (plan.get("weights_bytes"),))
    inner = plan["plan"]
    if not plan.get("fits"):
        raise WorkloadError(
            "gpuinfer_plan.fits is false: the model does not fit on %s node(s) x %s %s with TP=%s PP=%s. Advice: %s. Change the "
            "GPU type, the parallel sizes, max_model_len or quantization and plan again."
            % (inner.get("nodes", "?"), inner.get("gpus_per_node", "?"), inner.get("gpu", "unknown GPU"),
               inner.get("tensor_parallel_size", "?"), inner.get("pipeline_parallel_size", "?"),
               "; ".join(plan.get("advice") or []) or "none"))
    try:
        return replica.of_plan(plan)
    except replica.LayoutError as exc:
        raise WorkloadError("gpuinfer_plan: %s" % exc)


def build_engine_objects(plan, engine_name, settings):
    """Every workload object of one deploy: plan + engine + settings in, objects out.

    settings: {"engine": the engine role's settings (engine description's containers()),
    "workload": name, namespace, instance, replicas and the shared pod settings of build_workload,
    "probe": download_mb_s, disk_read_mb_s, margin_seconds, period_seconds, weights_cached,
    "scrape_annotations": bool}.
    Returns objects, controller, layout, engine_args, startup_probe, rollout_reason and the engine's info.
    """
    engine = engines.get(engine_name)
    layout = check_plan(plan)
    image = str((settings.get("engine") or {}).get("image") or "")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    if not tag or tag == "latest":
        raise WorkloadError("the %s image %r must name a pinned release (repository:tag, not latest): set %s_image_tag"
                            % (engine.title, image, engine.name))
    probe_settings = dict(settings.get("probe") or {})
    startup_probe = probes.startup_probe_budget(plan["weights_bytes"], nodes=layout["pods_per_replica"], **probe_settings)
    spec = copy.deepcopy(settings.get("workload") or {})
    engine_settings = dict(settings.get("engine") or {})
    cache = spec.setdefault("cache", {})
    # The engine may mount the cache elsewhere (NIM_CACHE_PATH); the volume follows it.
    if engine_settings.get("cache_mount_path"):
        cache["mount_path"] = engine_settings["cache_mount_path"]
    engine_settings["cache_mount_path"] = cache.get("mount_path")
    if not engine_settings["cache_mount_path"]:
        raise WorkloadError("the model cache mount path is empty: set inference_common_cache_mount_path")
    engine_settings["probe"] = startup_probe
    built = engine.containers(plan, layout, engine_settings)
    rollout_deadline = startup_probe["budget_seconds"] + day2.ROLLOUT_SLACK_SECONDS
    spec.update(engine=engine.name, layout=layout, progress_deadline_seconds=rollout_deadline, gpu_labels=(plan.get("plan") or {}).get("gpu_labels") or [],
                leader_container=built["leader"], worker_container=built["worker"])
    pod = engine.pod(engine_settings)
    if pod.get("imagePullSecrets"):
        spec["image_pull_secrets"] = [item["name"] for item in pod["imagePullSecrets"]]
    if pod.get("securityContext"):
        spec["pod_security_context"] = pod["securityContext"]
    if settings.get("scrape_annotations"):
        spec["leader_annotations"] = {"prometheus.io/scrape": "true", "prometheus.io/port": str(engine_settings.get("port") or engines.API_PORT),
                                      "prometheus.io/path": engine.metrics_path}
    return {
        "objects": build_workload(spec),
        "controller": layout["controller"],
        "layout": layout,
        "engine_args": built["engine_args"],
        "startup_probe": startup_probe,
        "rollout_reason": rollout_reason(spec),
        "rollout_deadline_seconds": rollout_deadline,
        "pod_selector": selector_labels(engine.name, spec["instance"]),
        "engine": engine.info(),
        "workload_name": spec["name"],
        "namespace": spec.get("namespace"),
        "image": built["leader"]["image"],
        "served_model_name": engine_settings.get("served_model_name") or "",
    }
