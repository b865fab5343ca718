#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_plan_check
short_description: Check a gpu_sizing plan against the cluster and GPU hosts before deploying it
version_added: "0.1.0"
description:
  - Takes the plan from M(gpuinfer.serving.gpu_sizing) and the facts from M(gpuinfer.serving.gpu_cluster_info)
    and/or M(gpuinfer.serving.gpu_host_facts), and returns a verdict (RV(ok)) with findings, each with a
    severity, a stable code, a message and a fix.
  - Places every replica greedily on Ready, uncordoned nodes whose GPU product matches the plan, whose taints the
    workload tolerates and that have enough free GPUs (one node per pod; the pods of a multi-node replica on
    distinct nodes of one product).
  - Also checks NVLink islands and PCIe-only tensor parallelism on the hosts, RDMA for multi-node replicas,
    C(/dev/shm) for NCCL, GPU sharing and MIG, the GPU Operator ClusterPolicy and LeaderWorkerSet.
  - Never fails because of findings; the calling play decides (C(playbooks/validate.yml) fails on any error).
    It fails only on unusable input, naming the field.
  - An action plugin of the same name runs it in-process on the controller (no module is shipped or started); the module
    file itself still works when run directly, like any module, with the collection's module_utils.
author:
  - gpuinfer.serving contributors (!UNKNOWN)
options:
  plan:
    description:
      - The gpu_sizing result (C(gpuinfer_plan)), with C(plan.tensor_parallel_size), C(plan.pipeline_parallel_size),
        C(plan.nodes), C(plan.gpus_per_node), C(plan.replicas), C(plan.gpu_labels) and C(plan.gpu_memory_gib).
    type: dict
    required: true
  cluster:
    description:
      - The registered result of M(gpuinfer.serving.gpu_cluster_info) (C(nodes) and C(components) are used).
    type: dict
  hosts:
    description:
      - GPU host facts (C(ansible_facts.gpu_host) of M(gpuinfer.serving.gpu_host_facts)), as a list (an optional
        C(name) key names each host) or a dict of host name to facts. Names matching node names tie them to
        the cluster placement.
    type: raw
  tolerations:
    description:
      - The workload's tolerations (Kubernetes fields C(key), C(operator) Exists/Equal, C(value), C(effect)).
    type: list
    elements: dict
    default: []
  deployment_mode:
    description:
      - C(single_node) puts a whole replica in one pod; C(multi_node) spreads it over C(plan.nodes) pods
        (LeaderWorkerSet), each with C(gpus_per_replica / nodes) GPUs; C(auto) picks multi-node when
        C(plan.nodes) is above 1, as the workload roles do (pipeline stages that fit one node share its pod).
    type: str
    choices: [auto, single_node, multi_node]
    default: auto
  replicas:
    description:
      - Replicas to place; defaults to C(plan.replicas).
    type: int
  shm_size_bytes:
    description:
      - Size of the C(/dev/shm) the workload's pods get, in bytes or as a Kubernetes quantity (C(16Gi)).
        Checked against what NCCL needs when given.
    type: raw
    aliases: [shm_size]
  require_gpu_operator:
    description:
      - Treat a missing or not-ready GPU Operator ClusterPolicy as an error rather than a warning.
    type: bool
    default: false
  engine_image:
    description:
      - The engine image the workload will run, such as C(vllm/vllm-openai:v0.34.0). When the CUDA release it is built
        on is known, nodes (or hosts) whose NVIDIA driver is older than that CUDA needs are an error (C(DRIVER_TOO_OLD)).
    type: str
attributes:
  check_mode:
    support: full
    description: Computes only; nothing is changed.
seealso:
  - module: gpuinfer.serving.gpu_cluster_info
"""

EXAMPLES = r"""
- name: Inventory the cluster
  gpuinfer.serving.gpu_cluster_info:
  register: cluster

- name: Check the plan
  gpuinfer.serving.gpu_plan_check:
    plan: "{{ gpuinfer_plan }}"
    cluster: "{{ cluster }}"
    tolerations:
      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    shm_size_bytes: "{{ 2 * 1024 ** 3 }}"
    require_gpu_operator: true
  register: verdict

- name: Stop on errors
  ansible.builtin.assert:
    that: verdict.ok
    fail_msg: "{{ verdict.findings | map(attribute='message') | list }}"
"""

RETURN = r"""
ok:
  description: No finding is an error.
  returned: always
  type: bool
error_count:
  description: Number of error findings.
  returned: always
  type: int
warning_count:
  description: Number of warning findings (not C(warnings), which Ansible reserves for warning messages).
  returned: always
  type: int
findings:
  description: Findings, errors first.
  returned: always
  type: list
  elements: dict
  contains:
    severity:
      description: C(error) (the deployment cannot work) or C(warning) (it works, badly or at risk).
      type: str
    code:
      description:
        - Stable identifier - GPU_CAPACITY, GPU_PRODUCT_NOT_FOUND, NODE_NOT_READY, NODE_CORDONED, TAINT_NOT_TOLERATED,
          GPU_SHARED, MIG_ENABLED, MIXED_GPU_PRODUCTS, NVLINK_ISLAND, PCIE_TP, TP_ACROSS_NODES, RDMA_MISSING,
          RDMA_NOT_ALLOCATABLE, SHM_TOO_SMALL, GPU_OPERATOR_NOT_READY, GPU_OPERATOR_MISSING, GPU_OPERATOR_UNKNOWN,
          LWS_MISSING, PLAN_DOES_NOT_FIT, NO_FACTS.
      type: str
    message:
      description: What is wrong, with the numbers.
      type: str
    hint:
      description: How to fix it.
      type: str
    nodes:
      description: Nodes or hosts concerned (at most 50).
      type: list
      elements: str
    nodes_total:
      description: How many nodes or hosts are concerned.
      type: int
  sample:
    - severity: error
      code: TAINT_NOT_TOLERATED
      message: "2 nodes with the plan's GPUs carry the taint nvidia.com/gpu=present:NoSchedule, which the workload does not tolerate: a, b."
      hint: "Add the toleration {key: nvidia.com/gpu, operator: Equal, value: present, effect: NoSchedule} to the workload's tolerations."
      nodes: [a, b]
      nodes_total: 2
candidate_nodes:
  description: Per replica, the nodes the greedy placement chose (C(placed) false when it found none).
  returned: always
  type: list
  elements: dict
  sample:
    - {replica: 1, placed: true, product: NVIDIA-H100-80GB-HBM3, nodes: [dgx-h100-0, dgx-h100-1], gpus_per_node: 8}
surge_replicas:
  description:
    - Whole replicas that still fit in the GPUs left free once every planned replica is placed (this instance's own
      engine pods count as free, as for the placement); V(null) without a cluster inventory or when the plan does not
      fit. A rolling update surges only when it is at least 1.
  returned: always
  type: int
  sample: 1
spare_gpus:
  description: The GPUs of RV(surge_replicas), the spare capacity the rollout strategy is chosen from (V(null) when unknown).
  returned: always
  type: int
  sample: 8
requirements:
  description: What the plan asks for as checked (mode, TP, PP, replicas, pods per replica, GPUs per pod, GPU).
  returned: always
  type: dict
messages:
  description: One line per finding (severity, code, message, fix), for printing or a failure message.
  returned: always
  type: list
  elements: str
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster.cluster_inventory import InventoryError, parse_quantity
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster.plan_validation import (
    DEPLOYMENT_MODES,
    PlanCheckError,
    check_plan,
    format_findings,
)

# The options, shared by the module (main()) and the action plugin of the same name (plugins/action/gpu_plan_check.py),
# which runs run() in-process on the controller.
ARGUMENT_SPEC = dict(
    plan=dict(type="dict", required=True),
    cluster=dict(type="dict"),
    hosts=dict(type="raw"),
    tolerations=dict(type="list", elements="dict", default=[]),
    deployment_mode=dict(type="str", choices=list(DEPLOYMENT_MODES), default="auto"),
    replicas=dict(type="int"),
    shm_size_bytes=dict(type="raw", aliases=["shm_size"]),
    require_gpu_operator=dict(type="bool", default=False),
    engine_image=dict(type="str"),
)


class PlanCheckFailure(Exception):
    """The task fails with ``msg`` (unusable input)."""

    def __init__(self, msg):
        super(PlanCheckFailure, self).__init__(msg)
        self.msg = msg


def run(params, check_mode=False):
    """The task's result for validated parameters: changed, messages and the verdict. Raises PlanCheckFailure.

    Only reads its input, so check mode changes nothing.
    """
    if not params["plan"] or "plan" not in params["plan"]:
        raise PlanCheckFailure(
            "No plan: pass the gpuinfer.serving.gpu_sizing result as plan (in the playbooks: gpuinfer_plan, or "
            "gpuinfer_plan_file=<dir>/plan.yml written by playbooks/plan.yml)."
        )
    shm_size = params.get("shm_size_bytes")
    if shm_size is not None and shm_size != "":
        try:
            shm_size = int(parse_quantity(shm_size))
        except InventoryError as exc:
            raise PlanCheckFailure("gpu_plan_check: shm_size_bytes: %s" % exc)
    else:
        shm_size = None
    try:
        verdict = check_plan(
            params["plan"],
            cluster=params.get("cluster"),
            hosts=params.get("hosts"),
            tolerations=params.get("tolerations"),
            deployment_mode=params.get("deployment_mode") or "auto",
            replicas=params.get("replicas"),
            shm_size_bytes=shm_size,
            require_gpu_operator=params.get("require_gpu_operator") or False,
            engine_image=params.get("engine_image"),
        )
    except PlanCheckError as exc:
        raise PlanCheckFailure("gpu_plan_check: %s" % exc)
    result = dict(changed=False, messages=format_findings(verdict["findings"]))
    result.update(verdict)
    return result


def run_module():
    module = AnsibleModule(
        argument_spec=copy.deepcopy(ARGUMENT_SPEC),
        supports_check_mode=True,
    )
    try:
        result = run(module.params, check_mode=module.check_mode)
    except PlanCheckFailure as failure:
        module.fail_json(msg=failure.msg)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
