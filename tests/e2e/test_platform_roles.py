"""The GPU Operator role against the simulated cluster, with a local chart standing in for NVIDIA's.

The stand-in chart (tests/fixtures/charts/gpu-operator) installs the ClusterPolicy CRD and a
`cluster-policy` object rendered from the values; nothing reconciles it here, so the test plays the
operator's part and sets `status.state: ready` while the role waits.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO_ROOT / ".venv" / "bin" / "ansible-playbook"
CHART = REPO_ROOT / "tests" / "fixtures" / "charts" / "gpu-operator"
NAMESPACE = "e2e-gpu-operator"


def install(sim, *extra, check=False, state="present"):
    variables = {
        "gpuinfer_kubeconfig": sim.kubeconfig,
        "gpu_operator_chart_ref": str(CHART),
        "gpu_operator_namespace": NAMESPACE,
        "gpu_operator_state": state,
        "gpu_operator_wait_timeout": 120,
        "gpu_operator_wait_delay": 2,
    }
    args = [str(ANSIBLE_PLAYBOOK), "-i", "inventories/sim", "playbooks/install_gpu_operator.yml", "-e", json.dumps(variables), *extra]
    if check:
        args.append("--check")
    return subprocess.run(args, cwd=REPO_ROOT, env=dict(sim.env, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, timeout=600)


def remove_everything(sim):
    """Uninstall, and drop the CRD Helm leaves behind, so later tests see a cluster without the operator."""
    removed = install(sim, state="absent")
    sim.kubectl("delete", "crd", "clusterpolicies.nvidia.com", "--ignore-not-found", check=False)
    sim.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    return removed


def changed_count(stdout):
    recap = [line for line in stdout.splitlines() if line.startswith("localhost")][-1]
    return int(recap.split("changed=")[1].split()[0])


def mark_ready_when_created(sim, stop):
    """Act as the operator: once the chart has created the ClusterPolicy, report it ready."""
    while not stop.is_set():
        found = sim.kubectl("get", "clusterpolicies.nvidia.com", "cluster-policy", "-o", "json", check=False)
        if found.returncode == 0:
            state = json.loads(found.stdout).get("status", {}).get("state")
            if state != "ready":
                patch = {"status": {"state": "ready", "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                                                                       "message": "", "lastTransitionTime": "2026-11-29T00:00:00Z"}]}}
                sim.kubectl("patch", "clusterpolicies.nvidia.com", "cluster-policy", "--subresource=status", "--type=merge",
                            "-p", json.dumps(patch), check=False)
        time.sleep(1)


def test_gpu_operator_installs_waits_for_ready_and_is_idempotent(sim_cluster):
    # Check mode first: nothing may exist afterwards.
    proc = install(sim_cluster, check=True)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert sim_cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0
    assert sim_cluster.kubectl("get", "crd", "clusterpolicies.nvidia.com", check=False).returncode != 0

    stop = threading.Event()
    operator = threading.Thread(target=mark_ready_when_created, args=(sim_cluster, stop), daemon=True)
    operator.start()
    try:
        proc = install(sim_cluster)
        assert proc.returncode == 0, proc.stdout[-6000:]
        assert changed_count(proc.stdout) > 0

        policy = json.loads(sim_cluster.kubectl("get", "clusterpolicies.nvidia.com", "cluster-policy", "-o", "json").stdout)
        assert policy["status"]["state"] == "ready"
        # The simulated DGX nodes are labelled nvidia.com/gpu.deploy.driver=pre-installed: the role must not ship a driver.
        assert policy["spec"]["driver"]["enabled"] is False
        namespace = json.loads(sim_cluster.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"

        again = install(sim_cluster)
        assert again.returncode == 0, again.stdout[-6000:]
        assert changed_count(again.stdout) == 0, again.stdout[-6000:]
    finally:
        stop.set()
        operator.join(timeout=5)
        removed = remove_everything(sim_cluster)
    assert removed.returncode == 0, removed.stdout[-5000:]
    assert sim_cluster.kubectl("get", "clusterpolicies.nvidia.com", "cluster-policy", check=False).returncode != 0


def test_gpu_operator_times_out_with_what_is_not_ready(sim_cluster):
    variables_timeout = json.dumps({"gpu_operator_wait_timeout": 6})
    try:
        proc = install(sim_cluster, "-e", variables_timeout)
        assert proc.returncode != 0
        # Nobody marks the policy ready: the failure must say which object is not ready and its state.
        assert "cluster-policy" in proc.stdout
    finally:
        remove_everything(sim_cluster)


def test_driver_decision_reads_the_cluster_read_of_site_yml(sim_cluster, tmp_path):
    """After gpu_cluster_info (as site.yml runs it), the role decides from its nodes and asks the cluster nothing."""
    playbook = tmp_path / "driver.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            {"name": "Read the cluster", "gpuinfer.serving.gpu_cluster_info": {"kubeconfig": sim_cluster.kubeconfig},
             "register": "read"},
            {"name": "Keep it", "ansible.builtin.set_fact": {"gpuinfer_cluster_facts": "{{ read }}"}},
            {"name": "Decide", "ansible.builtin.include_role": {"name": "gpuinfer.serving.gpu_operator", "tasks_from": "detect_driver"}},
        ],
    }]))
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), str(playbook)], cwd=REPO_ROOT, env=dict(sim_cluster.env, ANSIBLE_NOCOLOR="1"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:]
    lookup = proc.stdout.split("List nodes where the operator found a host driver", 1)[1].split("TASK [", 1)[0]
    assert "skipping" in lookup
    labelled = sorted(sim_cluster.kubectl("get", "nodes", "-l", "nvidia.com/gpu.deploy.driver=pre-installed",
                                          "-o", "jsonpath={.items[*].metadata.name}").stdout.split())
    assert labelled
    assert "driver.enabled=False (nodes labelled pre-installed: %s;" % ", ".join(labelled) in " ".join(proc.stdout.split())
