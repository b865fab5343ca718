#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_host_facts
short_description: Gather NVIDIA GPU, NVLink, NUMA, /dev/shm and RDMA facts from a GPU host
version_added: "0.1.0"
description:
  - Runs C(nvidia-smi --query-gpu=... --format=csv), C(nvidia-smi topo -m) and the plain C(nvidia-smi) banner on the
    target and returns what decides where tensor-parallel ranks can go, as C(ansible_facts.gpu_host).
  - Derives NVLink islands (groups of GPUs where every pair is joined by NVLink), the largest power-of-two tensor
    parallel size that stays inside one island, whether every GPU pair has NVLink, and which RDMA NICs sit on the
    same PCIe switch tree (PIX/PXB) as each GPU, the candidates for C(NCCL_IB_HCA).
  - Reads the size of the shared-memory file system (NCCL and vLLM workers exchange data through it) and the
    RDMA devices listed under C(/sys/class/infiniband) with their port state, rate and link layer.
  - Only reads; nothing on the host changes, so check mode returns the same facts.
author:
  - gpuinfer.serving contributors (!UNKNOWN)
options:
  nvidia_smi_path:
    description:
      - The C(nvidia-smi) executable. A bare name is looked up on E(PATH) (and the usual sbin folders); a path
        containing C(/) is used as is.
    type: str
    default: nvidia-smi
  optional:
    description:
      - When C(nvidia-smi) is missing or fails, return RV(ansible_facts.gpu_host.gpu_count=0) with a note instead of failing.
      - For hosts that may legitimately have no GPU (mixed inventories); keep it V(false) on GPU nodes so a broken
        driver is reported instead of hidden.
    type: bool
    default: false
  shm_path:
    description:
      - Mount point whose size is reported as RV(ansible_facts.gpu_host.shm_bytes).
    type: path
    default: /dev/shm
  infiniband_path:
    description:
      - Folder that lists the RDMA devices, one subfolder per device with C(ports/<n>/state), C(rate) and
        C(link_layer). A missing folder means no RDMA devices.
    type: path
    default: /sys/class/infiniband
notes:
  - GPUs in MIG mode are left out of RV(ansible_facts.gpu_host.nvlink_islands) because MIG disables peer-to-peer
    traffic between GPUs (NVLink and PCIe), so they cannot host the ranks of one tensor-parallel group.
  - Requires the NVIDIA driver on the target (it ships C(nvidia-smi)); no Python library beyond the standard one.
attributes:
  check_mode:
    description: Can run in check_mode and return the same facts, since it only reads.
    support: full
  diff_mode:
    description: Nothing changes on the host, so there is no diff.
    support: none
  facts:
    description: Returns its result under RV(ansible_facts.gpu_host).
    support: full
"""

EXAMPLES = r"""
- name: Gather GPU facts on the GPU nodes
  gpuinfer.serving.gpu_host_facts:

- name: Show the NVLink islands and the largest tensor parallel size inside one
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpu_host.nvlink_islands }} -> TP up to {{ ansible_facts.gpu_host.max_nvlink_tp }}"

- name: Gather facts on a mixed inventory where some hosts have no GPU
  gpuinfer.serving.gpu_host_facts:
    optional: true

- name: Use nvidia-smi from a driver container install
  gpuinfer.serving.gpu_host_facts:
    nvidia_smi_path: /run/nvidia/driver/usr/bin/nvidia-smi

- name: Refuse to go on when tensor parallel 8 would leave one NVLink island
  ansible.builtin.assert:
    that:
      - ansible_facts.gpu_host.max_nvlink_tp >= 8
    fail_msg: "Only {{ ansible_facts.gpu_host.max_nvlink_tp }} GPUs share NVLink on {{ inventory_hostname }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    gpu_host:
      description: What the host has, as seen by nvidia-smi, /dev/shm and sysfs.
      returned: always
      type: dict
      contains:
        gpus:
          description: One entry per GPU, sorted by index.
          returned: always
          type: list
          elements: dict
          sample:
            - index: 0
              uuid: GPU-c3a13d1d-449f-2b65-8cc7-9b3d1b9fb079
              name: NVIDIA H200
              memory_mib: 143771
              memory_used_mib: 0
              memory_free_mib: 143156
              compute_capability: "9.0"
              pci_bus_id: "00000000:00:06.0"
              driver_version: 580.159.04
              mig_mode: Disabled
              mig_devices: 0
        gpu_count:
          description: Number of GPUs; V(0) when O(optional=true) and nvidia-smi is missing or failed.
          returned: always
          type: int
          sample: 2
        gpu_products:
          description: Distinct GPU names.
          returned: always
          type: list
          elements: str
          sample: [NVIDIA H200]
        driver_version:
          description: NVIDIA driver version.
          returned: always
          type: str
          sample: 580.159.04
        cuda_version:
          description: Highest CUDA version the driver supports, from the nvidia-smi banner; null when not printed.
          returned: always
          type: str
          sample: "13.0"
        links:
          description:
            - One entry per unordered GPU pair (C(a) < C(b)) with the connection type C(NVLINK), C(PIX), C(PXB),
              C(PHB), C(NODE) or C(SYS), the number of bonded NVLinks (0 when not NVLink) and the raw matrix cell.
          returned: always
          type: list
          elements: dict
          sample:
            - {a: 0, b: 1, type: NVLINK, nvlinks: 18, raw: NV18}
        nvlink_islands:
          description:
            - Maximal groups of at least two GPUs where every pair is joined by NVLink, largest first. Empty when no
              GPU pair has NVLink. GPUs in MIG mode are left out.
          returned: always
          type: list
          elements: list
          sample: [[0, 1]]
        max_nvlink_tp:
          description:
            - Largest power of two not above the size of the largest NVLink island; V(1) when there is no NVLink,
              V(0) when no GPU was found.
          returned: always
          type: int
          sample: 2
        all_pairs_nvlink:
          description: True when the host has at least two GPUs and every pair is joined by NVLink.
          returned: always
          type: bool
          sample: true
        mig_enabled_gpus:
          description: Indices of the GPUs in MIG mode.
          returned: always
          type: list
          elements: int
          sample: []
        mig_devices:
          description: MIG instances listed by nvidia-smi (C(gpu), C(gi_id), C(ci_id), C(mig_dev), C(memory_mib), C(memory_used_mib)).
          returned: always
          type: list
          elements: dict
          sample: []
        nics:
          description:
            - NICs from the topology matrix with their RDMA device name, the GPUs reached through PIX or PXB
              (C(near_gpus)), the link type to every GPU, and from sysfs whether a port is active and the link layers.
          returned: always
          type: list
          elements: dict
          sample:
            - {label: NIC0, name: mlx5_0, near_gpus: [0], links: [{gpu: 0, type: PXB}, {gpu: 1, type: NODE}], active: true, link_layer: [InfiniBand]}
        nccl_ib_hca:
          description: RDMA devices close (PIX/PXB) to at least one GPU and not known to be down, the candidates for C(NCCL_IB_HCA).
          returned: always
          type: list
          elements: str
          sample: [mlx5_0, mlx5_1]
        numa:
          description: Per GPU, the CPU affinity list, NUMA node, GPU NUMA id and the names of the NICs close to it.
          returned: always
          type: list
          elements: dict
          sample:
            - {gpu: 0, cpu_affinity: "0-31", numa_node: 0, gpu_numa_id: null, near_nics: []}
        numa_nodes:
          description: NUMA nodes the GPUs are attached to.
          returned: always
          type: list
          elements: int
          sample: [0]
        shm_bytes:
          description: Size of O(shm_path) in bytes; null when it does not exist.
          returned: always
          type: int
          sample: 274877906944
        shm_path:
          description: The path measured for RV(ansible_facts.gpu_host.shm_bytes).
          returned: always
          type: str
          sample: /dev/shm
        rdma_devices:
          description:
            - RDMA devices under O(infiniband_path) with C(name), C(node_guid), C(fw_ver), C(hca_type), C(numa_node),
              C(active) and C(ports) (C(port), C(state), C(phys_state), C(rate), C(rate_gbps), C(link_layer)).
          returned: always
          type: list
          elements: dict
          sample:
            - name: mlx5_0
              node_guid: a088:c203:003e:01a2
              fw_ver: 28.39.1002
              hca_type: MT4129
              numa_node: 0
              active: true
              ports:
                - {port: 1, state: ACTIVE, phys_state: LinkUp, rate: 400 Gb/sec (4X NDR), rate_gbps: 400.0, link_layer: InfiniBand}
        rdma_active:
          description: True when at least one RDMA device has an active port.
          returned: always
          type: bool
          sample: false
        infiniband_active:
          description: True when at least one active port has the InfiniBand link layer (RoCE ports are Ethernet).
          returned: always
          type: bool
          sample: false
        nvidia_smi_path:
          description: The nvidia-smi executable that was run; null when none was found.
          returned: always
          type: str
          sample: /usr/bin/nvidia-smi
        notes:
          description: Why facts are missing, for example nvidia-smi not found on a host gathered with O(optional=true).
          returned: always
          type: list
          elements: str
          sample: []
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster.gpu_topology import (
    QUERY_GPU_FIELDS,
    GpuTopologyParseError,
    build_host_facts,
    merge_rdma,
    read_infiniband_sysfs,
)


class NvidiaSmiUnavailable(Exception):
    """nvidia-smi is missing or failed: fatal unless optional=true."""


def _no_gpu_facts():
    return {
        "gpus": [],
        "gpu_count": 0,
        "gpu_products": [],
        "driver_version": None,
        "cuda_version": None,
        "links": [],
        "nvlink_islands": [],
        "max_nvlink_tp": 0,
        "all_pairs_nvlink": False,
        "mig_enabled_gpus": [],
        "mig_devices": [],
        "nics": [],
        "nccl_ib_hca": [],
        "numa": [],
        "numa_nodes": [],
    }


def resolve_nvidia_smi(module, configured):
    if os.sep in configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        where = configured
    else:
        found = module.get_bin_path(configured)
        if found:
            return found
        where = "%r on PATH (%s)" % (configured, os.environ.get("PATH", ""))
    raise NvidiaSmiUnavailable("nvidia-smi not found at %s; install the NVIDIA driver or set nvidia_smi_path, or optional=true" % where)


def run_nvidia_smi(module, command):
    rc, stdout, stderr = module.run_command(command)
    if rc != 0:
        # The driver-not-loaded message goes to stdout, so fall back to it when stderr is empty.
        output = (stderr or "").strip() or (stdout or "").strip() or "no output"
        raise NvidiaSmiUnavailable("%s failed with exit status %d: %s" % (" ".join(command), rc, output))
    return stdout


def shm_size(path):
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_frsize * stats.f_blocks


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nvidia_smi_path=dict(type="str", default="nvidia-smi"),
            optional=dict(type="bool", default=False),
            shm_path=dict(type="path", default="/dev/shm"),
            infiniband_path=dict(type="path", default="/sys/class/infiniband"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    notes = []
    nvidia_smi = None

    try:
        nvidia_smi = resolve_nvidia_smi(module, params["nvidia_smi_path"])
        query_text = run_nvidia_smi(module, [nvidia_smi, "--query-gpu=" + ",".join(QUERY_GPU_FIELDS), "--format=csv"])
        topo_text = run_nvidia_smi(module, [nvidia_smi, "topo", "-m"])
        banner_text = run_nvidia_smi(module, [nvidia_smi])
    except NvidiaSmiUnavailable as error:
        if not params["optional"]:
            module.fail_json(msg=str(error))
        notes.append("%s; reporting no GPUs because optional=true" % error)
        facts = _no_gpu_facts()
    else:
        try:
            facts = build_host_facts(query_text, topo_text, banner_text)
        except GpuTopologyParseError as error:
            # Unexpected output on a host that does have GPUs is a real problem even when optional=true.
            module.fail_json(msg="could not read the output of %s: %s" % (nvidia_smi, error))

    try:
        rdma_devices = read_infiniband_sysfs(params["infiniband_path"])
    except OSError as error:
        module.fail_json(msg="could not list RDMA devices under infiniband_path=%s: %s" % (params["infiniband_path"], error))
    merge_rdma(facts, rdma_devices)

    facts["shm_bytes"] = shm_size(params["shm_path"])
    facts["shm_path"] = params["shm_path"]
    if facts["shm_bytes"] is None:
        notes.append("shm_path %s does not exist; NCCL and vLLM need a shared-memory mount there" % params["shm_path"])
    facts["nvidia_smi_path"] = nvidia_smi
    facts["notes"] = notes

    module.exit_json(changed=False, ansible_facts={"gpu_host": facts})


if __name__ == "__main__":
    main()
