"""Execution environment tier: build the EE (ansible-builder + podman) and run playbooks inside it.

Runs only when selected with ``-m ee`` (``make ee-test``): building an image is minutes of work the
unit and e2e selections must never start by accident. Reuses the e2e tier's ``sim_cluster`` fixture
(tests/e2e/conftest.py) and its deploy helpers (tests/e2e/test_playbooks.py).

When no container engine works here, every test of the tier is skipped with a banner in the summary
(``GPUINFER_EE_REQUIRE=1``, set by CI, turns that into a failure). Never silently.

Environment:
    CONTAINER_ENGINE        podman (default) or docker
    GPUINFER_EE_IMAGE       use this already built image instead of building (tests/ee/build.sh)
    GPUINFER_EE_REQUIRE=1   fail, instead of skip, when no container engine works
    EE_BASE_IMAGE ...       passed through to tests/ee/build.sh (default: a Debian base built here)
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from ee_helpers import REPO_ROOT, BearerCredential, BuiltImage, e2e_conftest

BUILD_SH = REPO_ROOT / "tests" / "ee" / "build.sh"
DEFAULT_TAG = "localhost/gpuinfer-serving-ee:latest"


# The e2e tier's session fixture, shared: one sim cluster for the whole pytest session.
sim_cluster = e2e_conftest.sim_cluster

_SKIP_BANNER: list[str] = []


def pytest_collection_modifyitems(config, items):
    if "ee" in (config.getoption("markexpr") or "") and "not ee" not in config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="EE tier: select it with -m ee (make ee-test)")
    for item in items:
        if item.get_closest_marker("ee"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    for line in _SKIP_BANNER:
        terminalreporter.write_sep("!", line, red=True, bold=True)


def _engine_problem(engine: str) -> str | None:
    path = shutil.which(engine)
    if not path:
        return f"no container engine: `{engine}` is not on PATH (install it as root: tests/ee/install-podman.sh)"
    info = subprocess.run([path, "info", "--format", "json"], capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        return f"`{engine} info` fails (rc={info.returncode}): {info.stderr.strip()[-600:]}"
    return None


@pytest.fixture(scope="session")
def container_engine() -> str:
    engine = os.environ.get("CONTAINER_ENGINE", "podman")
    problem = _engine_problem(engine)
    if problem:
        message = f"EE TIER SKIPPED - {problem}"
        if os.environ.get("GPUINFER_EE_REQUIRE") == "1":
            pytest.fail(message + " (GPUINFER_EE_REQUIRE=1)", pytrace=False)
        if message not in _SKIP_BANNER:
            _SKIP_BANNER.append(message)
        print("\n" + "!" * 20 + " " + message + " " + "!" * 20)
        pytest.skip(message)
    return engine


@pytest.fixture(scope="session")
def ee_image(container_engine) -> BuiltImage:
    """The EE, built by `ansible-builder build` (tests/ee/build.sh), or GPUINFER_EE_IMAGE."""
    prebuilt = os.environ.get("GPUINFER_EE_IMAGE")
    if prebuilt:
        return BuiltImage(prebuilt, container_engine, None, "")
    log = REPO_ROOT / "out" / "ee" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CONTAINER_ENGINE=container_engine, EE_TAG=os.environ.get("EE_TAG", DEFAULT_TAG))
    start = time.monotonic()
    proc = subprocess.run([str(BUILD_SH)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=float(os.environ.get("GPUINFER_EE_BUILD_TIMEOUT", "3600")))
    seconds = time.monotonic() - start
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        pytest.fail(f"tests/ee/build.sh failed (rc={proc.returncode}, log {log}):\n{(proc.stdout + proc.stderr)[-6000:]}",
                    pytrace=False)
    print(f"\nEE built in {seconds:.1f} s ({env['EE_TAG']}; log {log})")
    return BuiltImage(env["EE_TAG"], container_engine, seconds, str(log))


@pytest.fixture(scope="session")
def sim_bearer(sim_cluster) -> BearerCredential:
    """A cluster-admin ServiceAccount token for the sim cluster, plus its API URL and CA."""
    ns, name = "kube-system", "gpuinfer-ee-tier"
    sim_cluster.kubectl("create", "serviceaccount", name, "-n", ns, check=False)
    sim_cluster.kubectl("create", "clusterrolebinding", name, "--clusterrole=cluster-admin",
                        f"--serviceaccount={ns}:{name}", check=False)
    token = sim_cluster.kubectl("create", "token", name, "-n", ns, "--duration=4h").stdout.strip()
    config = yaml.safe_load(Path(sim_cluster.kubeconfig).read_text(encoding="utf-8"))
    cluster = config["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
    else:
        ca_path = Path(cluster["certificate-authority"])
        if not ca_path.is_absolute():
            ca_path = Path(sim_cluster.kubeconfig).parent / ca_path
        ca_pem = ca_path.read_text(encoding="utf-8")
    return BearerCredential(host=cluster["server"], token=token, ca_pem=ca_pem)


