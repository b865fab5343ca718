"""The Molecule scenario (molecule/model_cache): converge, idempotence, verify, cleanup on the sim cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"


def test_model_cache_scenario_converges_idempotently(sim_cluster):
    kubeconfig_copy = REPO_ROOT / "inventories" / "sim" / "kubeconfig"
    if Path(sim_cluster.kubeconfig) != kubeconfig_copy:
        # The scenario reads the copy `sim.sh up` writes; an external cluster gets one too.
        shutil.copyfile(sim_cluster.kubeconfig, kubeconfig_copy)
    env = dict(sim_cluster.env, PATH="%s%s%s" % (VENV_BIN, os.pathsep, sim_cluster.env["PATH"]), ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    proc = subprocess.run([str(VENV_BIN / "molecule"), "test", "-s", "model_cache"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for step in ("converge", "idempotence", "verify", "cleanup"):
        assert "%s: Executed: Successful" % step in output.replace("\u279c ", "").replace("model_cache ", ""), output[-3000:]
