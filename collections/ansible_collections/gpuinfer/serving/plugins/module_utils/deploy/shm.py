# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Size of the /dev/shm memory-backed emptyDir an inference pod needs.

Container runtimes give a pod 64 MiB of /dev/shm, which NCCL and vLLM's
multiprocessing executor outgrow as soon as more than one GPU works on a model:
NCCL falls back to (or fails in) its shared-memory transport and vLLM's worker
message queues cannot be allocated. The estimate below is deliberately generous
on the NCCL side because running out of /dev/shm is a crash (SIGBUS) while unused
sizeLimit costs nothing: a memory-medium emptyDir only consumes the pages that are
written. It is still bounded, because whatever is written there counts against
the pod's memory and, at worst, the node's.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import layout as replica

MIB = 1024 ** 2
GIB = 1024 ** 3

# Every vLLM/NIM pod, single GPU included: tokenizer and engine-core processes
# exchange requests through shared memory and Python multiprocessing needs room
# for its semaphores and queues. 1 GiB is the floor that ends the 64 MiB default.
BASE_BYTES = 1 * GIB

# NCCL, per rank that shares the pod (= the node) with other ranks.
# A ring/tree connection keeps one receive buffer per channel and per protocol:
# SIMPLE uses NCCL_BUFFSIZE (4 MiB), LL128 about 4.6 MiB, LL 256 KiB, so ~9 MiB per
# channel. NCCL opens up to 32 channels on NVLink/NVSwitch systems (MAXCHANNELS),
# so ~290 MiB per rank when the SHM transport carries the collectives (no P2P, e.g.
# PCIe GPUs across sockets or P2P disabled). Rounded up to 512 MiB to also cover
# the proxy-thread buffers and vLLM's shared-memory broadcast queue that sends every
# scheduled batch from the driver process to each worker.
NCCL_COLLECTIVE_BYTES_PER_RANK = 512 * MIB

# Pipeline parallelism adds point-to-point send/recv connections between the
# stages (activations of every micro-batch), each with its own channel buffers.
NCCL_P2P_BYTES_PER_RANK = 256 * MIB

# Whatever the plan says, never ask for more than this fraction of the node's
# memory: the pages written to /dev/shm are charged to the pod, and the serving
# process itself needs host memory to load weights and pin KV-cache swap space.
DEFAULT_MAX_NODE_FRACTION = 0.25


def _bytes_for(layout, node_memory_bytes, max_node_fraction):
    ranks = layout["gpus_per_pod"]
    size = BASE_BYTES
    if ranks > 1:
        size += ranks * NCCL_COLLECTIVE_BYTES_PER_RANK
        # More than one stage in this pod: stage-to-stage traffic stays on the node.
        if layout["stages_per_pod"] > 1:
            size += ranks * NCCL_P2P_BYTES_PER_RANK

    if node_memory_bytes is not None:
        if isinstance(node_memory_bytes, float) and node_memory_bytes >= 1:
            node_memory_bytes = int(node_memory_bytes)
        memory = inputs.whole_number(node_memory_bytes, name="node_memory_bytes", error=ValueError)
        try:
            fraction = float(max_node_fraction)
        except (TypeError, ValueError):
            raise ValueError("max_node_fraction must be a number in (0, 1], got %r" % (max_node_fraction,))
        if not 0 < fraction <= 1:
            raise ValueError("max_node_fraction must be a number in (0, 1], got %r" % (max_node_fraction,))
        cap = int(memory * fraction) // GIB * GIB
        size = min(size, max(cap, GIB))

    return int(math.ceil(size / float(GIB))) * GIB


def shm_size_bytes(tensor_parallel_size, pipeline_parallel_size=1, nodes=1, gpus_per_node=None,
                   node_memory_bytes=None, max_node_fraction=DEFAULT_MAX_NODE_FRACTION):
    """Bytes of /dev/shm for one serving pod, a whole number of GiB.

    base + ranks x NCCL collective buffers (+ ranks x P2P buffers when the pod
    hosts more than one pipeline stage), at least 1 GiB, never more than
    ``max_node_fraction`` of ``node_memory_bytes`` when the node size is known
    (still at least 1 GiB: below that vLLM does not start at all).
    """
    try:
        layout = replica.replica_layout(tensor_parallel_size, pipeline_parallel_size, nodes, gpus_per_node)
    except replica.LayoutError as exc:
        raise ValueError(str(exc))
    return _bytes_for(layout, node_memory_bytes, max_node_fraction)


def format_gib(size_bytes):
    """Kubernetes quantity in whole GiB, rounded up: 17179869184 -> '16Gi'."""
    value = inputs.whole_number(size_bytes, name="size_bytes", error=ValueError)
    return "%dGi" % int(math.ceil(value / float(GIB)))


def shm_size_for_plan(plan, node_memory_bytes=None, max_node_fraction=DEFAULT_MAX_NODE_FRACTION):
    """'<n>Gi' for a gpuinfer plan.

    Accepts the full gpu_sizing result (with a ``plan`` key) or its inner ``plan``
    dict: its ``layout`` (plan/layout.py) says how many GPUs share a pod.
    """
    try:
        layout = replica.of_plan(plan)
    except replica.LayoutError as exc:
        raise ValueError(str(exc))
    return format_gib(_bytes_for(layout, node_memory_bytes, max_node_fraction))
