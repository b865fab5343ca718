"""gpuinfer.serving.gpu_cluster_info run by ansible-playbook against the simulated cluster (tests/cluster).

The expected inventory is derived from the sim profile itself (tests/cluster/make_nodes.py), so the
test follows whichever profile the session started (default or large-2000).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(os.environ.get("GPUINFER_ANSIBLE_PLAYBOOK", REPO_ROOT / ".venv" / "bin" / "ansible-playbook"))
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

INFO_PLAYBOOK = """
- name: Inventory the sim cluster
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Read the GPU inventory
      gpuinfer.serving.gpu_cluster_info:
        kubeconfig: "{{ kubeconfig }}"
        page_size: "{{ page_size | default(500) | int }}"
        node_selector: "{{ node_selector | default(omit) }}"
      register: info
    - name: Save it
      ansible.builtin.copy:
        content: "{{ info | ansible.builtin.to_json }}"
        dest: "{{ out }}"
        mode: "0600"
      check_mode: false
"""


def make_nodes_module():
    spec = importlib.util.spec_from_file_location("sim_make_nodes", REPO_ROOT / "tests" / "cluster" / "make_nodes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_info(sim_cluster, tmp_path, kubeconfig=None, check=False, **extra):
    playbook = tmp_path / "info.yml"
    playbook.write_text(INFO_PLAYBOOK)
    out = tmp_path / ("info-%s.json" % uuid.uuid4().hex[:6])
    args = [str(ANSIBLE_PLAYBOOK), str(playbook), "-e", "kubeconfig=%s" % (kubeconfig or sim_cluster.kubeconfig), "-e", "out=%s" % out]
    for key, value in extra.items():
        args += ["-e", "%s=%s" % (key, value)]
    if check:
        args.append("--check")
    proc = subprocess.run(args, cwd=REPO_ROOT, env=sim_cluster.env, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text()) if out.exists() else None
    return proc, result


@pytest.fixture(scope="module")
def expected_nodes(sim_cluster):
    make_nodes = make_nodes_module()
    return dict((n["metadata"]["name"], n) for n in make_nodes.build_nodes(make_nodes.load_profile(sim_cluster.profile)))


@pytest.fixture(scope="module")
def inventory(sim_cluster, tmp_path_factory):
    proc, result = run_info(sim_cluster, tmp_path_factory.mktemp("info"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return result


def test_every_profile_node_is_reported_as_created(inventory, expected_nodes):
    nodes = dict((n["name"], n) for n in inventory["nodes"])
    assert set(expected_nodes) <= set(nodes)
    for name, want in expected_nodes.items():
        got = nodes[name]
        labels = want["metadata"]["labels"]
        allocatable = want["status"]["allocatable"]
        assert got["ready"] and got["schedulable"], name
        assert got["gpu"]["allocatable"] == int(allocatable.get("nvidia.com/gpu", 0)), name
        assert got["gpu"]["capacity"] == int(want["status"]["capacity"].get("nvidia.com/gpu", 0)), name
        assert got["gpu"]["product"] == labels.get("nvidia.com/gpu.product"), name
        if "nvidia.com/gpu.memory" in labels:
            assert got["gpu"]["memory_mib"] == int(labels["nvidia.com/gpu.memory"]), name
            assert got["gpu"]["family"] == labels["nvidia.com/gpu.family"], name
            assert got["gpu"]["driver_version"]["full"] == labels["nvidia.com/cuda.driver-version.full"], name
        want_taints = sorted((t["key"], t.get("value"), t["effect"]) for t in want["spec"].get("taints", []))
        # node.kubernetes.io/* taints come and go with the node lifecycle controller.
        got_taints = sorted((t["key"], t.get("value"), t["effect"]) for t in got["taints"] if not t["key"].startswith("node.kubernetes.io/"))
        assert got_taints == want_taints, name
        want_rdma = dict((k, int(v)) for k, v in allocatable.items() if k.startswith("rdma/") or k == "nvidia.com/hostdev")
        assert got["rdma_resources"] == want_rdma, name
        assert got["rdma_nic"] == (labels.get("feature.node.kubernetes.io/pci-15b3.present") == "true"), name
        assert got["zone"] == labels["topology.kubernetes.io/zone"], name


def test_summary_matches_the_profile(inventory, expected_nodes):
    per_product = {}
    for node in expected_nodes.values():
        product = node["metadata"]["labels"].get("nvidia.com/gpu.product")
        if product:
            entry = per_product.setdefault(product, {"nodes": 0, "total_gpus": 0})
            entry["nodes"] += 1
            entry["total_gpus"] += int(node["status"]["allocatable"]["nvidia.com/gpu"])
    summary = inventory["summary"]
    assert set(per_product) <= set(summary)
    for product, want in per_product.items():
        assert summary[product]["nodes"] == want["nodes"], product
        assert summary[product]["total_gpus"] == want["total_gpus"], product
        assert summary[product]["free_gpus"] <= want["total_gpus"], product


def test_components_and_call_budget(inventory, expected_nodes):
    components = inventory["components"]
    # The sim installs LeaderWorkerSet (CRDs, controller, webhooks) and no GPU Operator.
    assert components["leaderworkerset"]["installed"] is True
    assert components["gpu_operator"]["installed"] is False
    assert inventory["discovery"] == "aggregated"
    node_pages = -(-len(inventory["nodes"]) // 500)
    pod_pages = max(1, -(-inventory["totals"]["pods"] // 500))
    assert inventory["api_calls"] == node_pages + pod_pages + 1, inventory["api_calls"]
    assert inventory["changed"] is False


def test_small_pages_paginate_to_the_same_inventory(sim_cluster, tmp_path, inventory):
    proc, paged = run_info(sim_cluster, tmp_path, page_size=3)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [n["name"] for n in paged["nodes"]] == [n["name"] for n in inventory["nodes"]]
    assert paged["api_calls"] >= -(-len(inventory["nodes"]) // 3)


def test_node_selector_and_check_mode(sim_cluster, tmp_path, expected_nodes):
    proc, result = run_info(sim_cluster, tmp_path, check=True, node_selector="nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")
    assert proc.returncode == 0, proc.stdout[-3000:]
    want = sorted(name for name, n in expected_nodes.items()
                  if n["metadata"]["labels"].get("nvidia.com/gpu.product") == "NVIDIA-H100-80GB-HBM3")
    assert [n["name"] for n in result["nodes"]] == want


def test_pods_bound_to_a_node_are_counted(sim_cluster, tmp_path, expected_nodes):
    from kubernetes import client

    core = client.CoreV1Api(sim_cluster.api_client())
    target = sorted(name for name, n in expected_nodes.items() if n["status"]["allocatable"].get("nvidia.com/gpu"))[0]
    namespace = "e2e-info-%s" % uuid.uuid4().hex[:6]
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        _proc, before = run_info(sim_cluster, tmp_path, node_selector="kubernetes.io/hostname=%s" % target)
        pod = {
            "metadata": {"name": "holds-gpus"},
            "spec": {
                "nodeName": target,
                "tolerations": [GPU_TOLERATION],
                "automountServiceAccountToken": False,
                "initContainers": [{"name": "warm", "image": "registry.invalid/none:0",
                                    "resources": {"limits": {"nvidia.com/gpu": "3"}}}],
                "containers": [{"name": "engine", "image": "registry.invalid/none:0",
                                "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
            },
        }
        core.create_namespaced_pod(namespace, pod)
        _proc, after = run_info(sim_cluster, tmp_path, node_selector="kubernetes.io/hostname=%s" % target)
        # The init container's 3 GPUs dominate the app's 2, as in the scheduler.
        assert after["nodes"][0]["gpu"]["requested"] == before["nodes"][0]["gpu"]["requested"] + 3

        # Once the pod has Succeeded/Failed or is gone, its GPUs are free again.
        core.delete_namespaced_pod("holds-gpus", namespace, grace_period_seconds=0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _proc, gone = run_info(sim_cluster, tmp_path, node_selector="kubernetes.io/hostname=%s" % target)
            if gone["nodes"][0]["gpu"]["requested"] == before["nodes"][0]["gpu"]["requested"]:
                break
            time.sleep(1)
        else:
            pytest.fail("the deleted pod's GPUs are still counted")
    finally:
        core.delete_namespace(namespace)


def test_bad_credentials_fail_cleanly(sim_cluster, tmp_path):
    import yaml

    config = yaml.safe_load(Path(sim_cluster.kubeconfig).read_text())
    for user in config.get("users", []):
        user["user"] = {"token": "not-a-valid-token"}
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(yaml.safe_dump(config))
    proc, _result = run_info(sim_cluster, tmp_path, kubeconfig=str(bad))
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "rejected the credentials (401 Unauthorized)" in output or "forbidden by the API server" in output, output[-3000:]
    assert "Traceback" not in output
