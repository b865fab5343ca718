# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""The replica layout: how one engine replica maps onto pods, nodes and a controller.

The one place that decides it. gpu_sizing puts the result in ``plan.layout``; plan
validation, /dev/shm sizing and the workload builder read it from there (``of_plan``)
and never work it out again.

A replica is TP x PP GPU ranks. On one node it is one pod holding every rank, run by a
Deployment. Across nodes it is one pod per node, each holding an equal share of the
ranks, run as a LeaderWorkerSet group (the leader is pod 0).

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

GPU_RESOURCE = "nvidia.com/gpu"
# The GPU Operator and most clouds taint GPU nodes with this key; the engine pods tolerate it.
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

DEPLOYMENT = "Deployment"
LEADER_WORKER_SET = "LeaderWorkerSet"
CONTROLLER_API_VERSIONS = {DEPLOYMENT: "apps/v1", LEADER_WORKER_SET: "leaderworkerset.x-k8s.io/v1"}


class LayoutError(ValueError):
    """Raised for parallel sizes that cannot be laid out on pods."""


def replica_layout(tensor_parallel_size, pipeline_parallel_size=1, nodes=1, gpus_per_node=None):
    """The layout of one replica.

    ``nodes`` is how many nodes the replica spans; ``gpus_per_node`` (optional) is the node
    size, which a pod may not exceed.
    """
    tp = inputs.whole_number(tensor_parallel_size, name="tensor_parallel_size", error=LayoutError)
    pp = inputs.whole_number(pipeline_parallel_size, name="pipeline_parallel_size", error=LayoutError)
    pods = inputs.whole_number(nodes, name="nodes", error=LayoutError)
    gpus_per_replica = tp * pp
    if gpus_per_replica % pods:
        raise LayoutError("tensor_parallel_size x pipeline_parallel_size = %d GPUs do not split evenly over %d nodes"
                          % (gpus_per_replica, pods))
    gpus_per_pod = gpus_per_replica // pods
    if gpus_per_node is not None and gpus_per_pod > inputs.whole_number(gpus_per_node, name="gpus_per_node", error=LayoutError):
        raise LayoutError("one pod would need %d GPUs but a node has %d: plan more nodes (TP x PP = %d)"
                          % (gpus_per_pod, int(gpus_per_node), gpus_per_replica))
    controller = DEPLOYMENT if pods == 1 else LEADER_WORKER_SET
    return {
        "gpus_per_replica": gpus_per_replica,
        "pods_per_replica": pods,
        "gpus_per_pod": gpus_per_pod,
        # Pipeline stages that share one pod (their send/recv stays on the node).
        "stages_per_pod": pp if pods == 1 else max(1, pp // pods),
        # Tensor-parallel ranks that share one pod's NVLink/PCIe fabric.
        "tp_per_pod": min(tp, gpus_per_pod),
        "controller": controller,
        "controller_api_version": CONTROLLER_API_VERSIONS[controller],
        "multi_node": pods > 1,
        "gpu_tolerations": [dict(GPU_TOLERATION)],
    }


def of_plan(plan_result):
    """The layout of a gpu_sizing result (or of its inner ``plan``): plan.layout, which every plan carries."""
    if not isinstance(plan_result, dict):
        raise LayoutError("the plan must be a dict (the gpu_sizing result), got %s" % type(plan_result).__name__)
    inner = plan_result.get("plan", plan_result)
    if not isinstance(inner, dict):
        raise LayoutError("plan.plan must be a dict, got %s" % type(inner).__name__)
    layout = inner.get("layout")
    if not isinstance(layout, dict) or not layout.get("controller"):
        raise LayoutError("the plan has no plan.layout (a plan written by gpuinfer.serving 0.1.0?): plan again with "
                          "playbooks/plan.yml (gpuinfer.serving.gpu_sizing) and pass its plan")
    # A plan edited by hand after gpu_sizing: the layout no longer holds the ranks the engine flags start.
    tp = inputs.whole_number(inner.get("tensor_parallel_size"), name="plan.tensor_parallel_size", error=LayoutError)
    pp = inputs.whole_number(inner.get("pipeline_parallel_size", 1), name="plan.pipeline_parallel_size", error=LayoutError)
    if layout.get("gpus_per_replica") != tp * pp:
        raise LayoutError("plan.layout holds %s GPUs per replica but tensor_parallel_size x pipeline_parallel_size = %d: plan "
                          "again with playbooks/plan.yml rather than editing the plan" % (layout.get("gpus_per_replica"), tp * pp))
    return layout


def tolerations(layout, tolerate_gpu_taint=True, extra=None):
    """The engine pods' tolerations: the layout's GPU toleration (unless turned off) plus the user's."""
    result = [dict(item) for item in layout.get("gpu_tolerations") or []] if tolerate_gpu_taint else []
    result.extend(dict(item) for item in extra or [])
    return result
