# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: shm_size
short_description: Size of the /dev/shm emptyDir an inference pod needs
version_added: 0.1.0
author: gpuinfer.serving maintainers
description:
  - Computes the C(sizeLimit) of the memory-backed C(emptyDir) mounted at C(/dev/shm) in vLLM and NIM pods
    from a gpuinfer plan, as a Kubernetes quantity in whole GiB (for example C(16Gi)).
  - 1 GiB base for every pod, plus 512 MiB of NCCL collective buffers per GPU rank sharing the pod when there is
    more than one, plus 256 MiB per rank for pipeline send/recv buffers when the pod hosts more than one
    pipeline stage.
  - When the node memory is known the result never exceeds O(max_node_fraction) of it (and is never below 1 GiB),
    because pages written to C(/dev/shm) are charged to the pod's memory.
positional: node_memory_bytes, max_node_fraction
options:
  _input:
    description:
      - The plan, either the whole result of M(gpuinfer.serving.gpu_sizing) (the C(gpuinfer_plan) variable)
        or its C(plan) key.
      - Reads C(tensor_parallel_size), C(pipeline_parallel_size), C(nodes) and C(gpus_per_node).
    type: dict
    required: true
  node_memory_bytes:
    description: Memory of the node the pod runs on, in bytes. Omit when unknown.
    type: int
  max_node_fraction:
    description: Largest fraction of O(node_memory_bytes) the shared memory may take.
    type: float
    default: 0.25
"""

EXAMPLES = r"""
- name: Size /dev/shm for the planned deployment
  ansible.builtin.set_fact:
    model_cache_shm_size: "{{ gpuinfer_plan | gpuinfer.serving.shm_size }}"

- name: Bounded by a 512 GiB node, at most 10% of it
  ansible.builtin.set_fact:
    shm: "{{ gpuinfer_plan | gpuinfer.serving.shm_size(549755813888, 0.1) }}"
"""

RETURN = r"""
_value:
  description: Kubernetes quantity in whole GiB, for example C(5Gi).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.shm import (
    DEFAULT_MAX_NODE_FRACTION,
    shm_size_for_plan,
)


def shm_size(plan, node_memory_bytes=None, max_node_fraction=DEFAULT_MAX_NODE_FRACTION):
    """Jinja entry point: raise a filter error naming the bad field instead of a traceback."""
    try:
        return shm_size_for_plan(plan, node_memory_bytes=node_memory_bytes, max_node_fraction=max_node_fraction)
    except ValueError as exc:
        raise AnsibleFilterError("gpuinfer.serving.shm_size: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"shm_size": shm_size}
