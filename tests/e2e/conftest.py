"""End-to-end fixtures: the simulated Kubernetes cluster of tests/cluster/sim.sh.

``sim_cluster`` (session scope) brings the cluster up once per pytest session
with ``tests/cluster/sim.sh up`` and takes it down at the end, but only if it
started it. Point ``GPUINFER_SIM_KUBECONFIG`` at the kubeconfig of a running
cluster to reuse it instead (it is then never torn down); a sim cluster that is
already up is reused the same way.

Environment:
    GPUINFER_SIM_KUBECONFIG   use this cluster; do not start or stop anything
    GPUINFER_SIM_PROFILE      node profile for `up` (default: default)
    GPUINFER_SIM_UP_TIMEOUT   seconds allowed for `up`, a first build included
                              (default 5400)
    GPUINFER_SIM_KEEP=1       leave a cluster this session started running

Run the e2e tier without xdist workers (``-p no:xdist`` or no ``-n``): each
worker would otherwise own its own session fixture.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SIM_SH = REPO_ROOT / "tests" / "cluster" / "sim.sh"
K8S_GO_MOD = REPO_ROOT / "tests" / "cluster" / "build" / "kubernetes" / "go.mod"


def pinned_kubernetes_version() -> str:
    """The Kubernetes release pinned by the wrapper module (e.g. ``v1.37.2``)."""
    text = K8S_GO_MOD.read_text(encoding="utf-8")
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no k8s.io/kubernetes requirement in {K8S_GO_MOD}")
    return match.group(1)


@dataclasses.dataclass
class SimCluster:
    """A running sim cluster as the tests see it."""

    kubeconfig: str
    env: dict[str, str]
    profile: str
    started_here: bool
    kubernetes_version: str

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None):
        """Run the sim's kubectl against the cluster; returns CompletedProcess."""
        return subprocess.run(
            ["kubectl", *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def api_client(self):
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        return client.ApiClient(cfg)


def _sim(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SIM_SH), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
    )


def _sim_path() -> str:
    return _sim("path").stdout.strip()


@pytest.fixture(scope="session")
def sim_cluster():
    """Session-wide sim cluster: yields a SimCluster(kubeconfig, env, ...)."""
    path_prefix = _sim_path()
    env = os.environ.copy()
    env["PATH"] = f"{path_prefix}:{env.get('PATH', '')}"
    version = pinned_kubernetes_version()

    external = os.environ.get("GPUINFER_SIM_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            pytest.fail(f"GPUINFER_SIM_KUBECONFIG={external} is not a file")
        env["KUBECONFIG"] = external
        yield SimCluster(
            kubeconfig=external,
            env=env,
            profile=os.environ.get("GPUINFER_SIM_PROFILE", "default"),
            started_here=False,
            kubernetes_version=version,
        )
        return

    requested = os.environ.get("GPUINFER_SIM_PROFILE")
    timeout = float(os.environ.get("GPUINFER_SIM_UP_TIMEOUT", "5400"))
    # `sim.sh up` is idempotent and serialised by its own lock: when the
    # cluster is already up (any profile, unless GPUINFER_SIM_PROFILE asks
    # for one) it only prints "already up", and this session will not stop it.
    args = ["up"] + (["--profile", requested] if requested else [])
    up = _sim(*args, timeout=timeout)
    if up.returncode != 0:
        pytest.fail(
            f"tests/cluster/sim.sh {' '.join(args)} failed (rc={up.returncode}):\n{up.stdout}\n{up.stderr[-6000:]}",
            pytrace=False,
        )
    already_up = "already up" in up.stderr
    kubeconfig = _sim("kubeconfig").stdout.strip()
    state_profile = Path(kubeconfig).parent / "profile"
    profile = state_profile.read_text(encoding="utf-8").strip() if state_profile.is_file() else (requested or "default")
    env["KUBECONFIG"] = kubeconfig
    cluster = SimCluster(
        kubeconfig=kubeconfig,
        env=env,
        profile=profile,
        started_here=not already_up,
        kubernetes_version=version,
    )
    try:
        yield cluster
    finally:
        if cluster.started_here and os.environ.get("GPUINFER_SIM_KEEP") != "1":
            down = _sim("down", timeout=300)
            if down.returncode != 0:
                print(f"sim.sh down failed:\n{down.stdout}\n{down.stderr}")
