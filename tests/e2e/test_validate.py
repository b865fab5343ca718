"""playbooks/validate.yml against the simulated cluster: plans that fit pass, plans that cannot are refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(os.environ.get("GPUINFER_ANSIBLE_PLAYBOOK", REPO_ROOT / ".venv" / "bin" / "ansible-playbook"))
PLANS = REPO_ROOT / "tests" / "fixtures" / "plans"


def validate(sim_cluster, *extra):
    args = [str(ANSIBLE_PLAYBOOK), "playbooks/validate.yml", "-e", "gpuinfer_kubeconfig=%s" % sim_cluster.kubeconfig, *extra]
    return subprocess.run(args, cwd=REPO_ROOT, env=sim_cluster.env, capture_output=True, text=True, timeout=600)


def write_plan(tmp_path, source, **changes):
    document = yaml.safe_load((PLANS / source).read_text())
    document["gpuinfer_plan"]["plan"].update(changes)
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_plan_that_fits_passes(sim_cluster):
    # Llama-3.1-70B TP=8 on one 8 x A100-80GB node: the default profile has four.
    proc = validate(sim_cluster, "-e", "gpuinfer_plan_file=%s" % (PLANS / "llama70b-tp8-a100.yml"), "-e", "gpuinfer_shm_size=16Gi")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "GPU_CAPACITY" not in proc.stdout


def test_multi_node_plan_fits_on_the_rdma_h100_pair(sim_cluster):
    proc = validate(sim_cluster, "-e", "gpuinfer_plan_file=%s" % (PLANS / "llama405b-tp8-pp2-h100.yml"), "-e", "gpuinfer_shm_size=16Gi")
    assert proc.returncode == 0, proc.stdout[-4000:]
    # LeaderWorkerSet is installed and both DGX nodes have RDMA: nothing to say about either.
    assert "LWS_MISSING" not in proc.stdout and "RDMA_MISSING" not in proc.stdout


def h100_node_count(sim_cluster):
    from kubernetes import client

    core = client.CoreV1Api(sim_cluster.api_client())
    return len(core.list_node(label_selector="nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3").items)


def test_a_plan_that_cannot_fit_is_refused_with_every_finding(sim_cluster, tmp_path):
    # One more 8 x H100 replica than there are 8-GPU H100 nodes (whatever the profile), and a 64 MiB /dev/shm.
    replicas = h100_node_count(sim_cluster) + 1
    plan = write_plan(tmp_path, "llama70b-tp8-a100.yml", gpu="H100-80GB", gpu_labels=["NVIDIA-H100-80GB-HBM3"], replicas=replicas)
    proc = validate(sim_cluster, "-e", "gpuinfer_plan_file=%s" % plan, "-e", "gpuinfer_shm_size=64Mi")
    assert proc.returncode != 0
    assert "GPU_CAPACITY" in proc.stdout and "replicas fit (replica" in proc.stdout and "of %d replicas" % replicas in proc.stdout
    assert "SHM_TOO_SMALL" in proc.stdout  # all findings are listed, not only the first
    assert "The plan cannot run here (2 error(s)" in proc.stdout


def test_untolerated_gpu_taint_is_refused(sim_cluster):
    proc = validate(sim_cluster, "-e", "gpuinfer_plan_file=%s" % (PLANS / "llama70b-tp8-a100.yml"),
                    "-e", '{"gpuinfer_tolerations": []}')
    assert proc.returncode != 0
    assert "TAINT_NOT_TOLERATED" in proc.stdout and "nvidia.com/gpu=present:NoSchedule" in proc.stdout


def test_required_gpu_operator_missing_is_refused(sim_cluster):
    proc = validate(sim_cluster, "-e", "gpuinfer_plan_file=%s" % (PLANS / "llama70b-tp8-a100.yml"),
                    "-e", "gpuinfer_require_gpu_operator=true")
    assert proc.returncode != 0 and "GPU_OPERATOR_MISSING" in proc.stdout


def test_render_mode_does_not_touch_the_cluster(sim_cluster, tmp_path):
    # A kubeconfig pointing nowhere proves the cluster is not read.
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "playbooks/validate.yml", "-e", "gpuinfer_kubeconfig=/nonexistent",
         "-e", "gpuinfer_render_dir=%s" % tmp_path, "-e", "gpuinfer_plan_file=%s" % (PLANS / "llama70b-tp8-a100.yml")],
        cwd=REPO_ROOT, env=sim_cluster.env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "NO_FACTS" in proc.stdout
