"""Helpers of the EE tier (tests/ee): shared by conftest.py and the tests.

The e2e tier's modules are loaded from their files (tests/ e2e has no package): its conftest for the
``sim_cluster`` fixture, test_playbooks.py for the deploy assertions (pods, snapshot, gpu_request ...).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
# What AWX puts on ANSIBLE_COLLECTIONS_PATH for a job: the project's own collections (none here) and
# the EE's, so the EE's installed gpuinfer.serving is what runs, not the checkout's.
AWX_COLLECTIONS_PATH = "/runner/requirements_collections:/usr/share/ansible/collections"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


e2e_conftest = _load("gpuinfer_e2e_conftest", REPO_ROOT / "tests" / "e2e" / "conftest.py")
e2e = _load("gpuinfer_e2e_playbooks", REPO_ROOT / "tests" / "e2e" / "test_playbooks.py")


@dataclasses.dataclass
class BuiltImage:
    tag: str
    engine: str
    build_seconds: float | None
    build_log: str


@dataclasses.dataclass
class BearerCredential:
    """What AWX's "OpenShift or Kubernetes API Bearer Token" credential holds."""

    host: str
    token: str
    ca_pem: str


@dataclasses.dataclass
class RunResult:
    rc: int
    stdout: str
    recap: dict | None
    seconds: float


def make_private_data_dir(root: Path, *, inventory: dict | Path, playbook_dirs=("playbooks", "awx/playbooks")) -> Path:
    """An ansible-runner private data dir the way AWX lays one out: project/ (the checkout's
    playbooks and ansible.cfg, no collections: those come from the EE), inventory/, env/."""
    pdd = root
    project = pdd / "project"
    project.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "ansible.cfg", project / "ansible.cfg")
    for rel in playbook_dirs:
        shutil.copytree(REPO_ROOT / rel, project / rel)
    inv = pdd / "inventory"
    if isinstance(inventory, Path):
        shutil.copytree(inventory, inv)
    else:
        inv.mkdir()
        (inv / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    (pdd / "env").mkdir()
    # The image runs as uid 1000 (AWX's default); it writes artifacts/ and the playbooks' files here.
    subprocess.run(["chmod", "-R", "a+rwX", str(pdd)], check=True)
    return pdd


def run_in_ee(image: BuiltImage, pdd: Path, playbook: str, *, extravars: dict, env: dict,
              files: dict[str, str] | None = None, ident: str = "run", timeout: float = 900) -> RunResult:
    """`ansible-runner run` inside the EE, as AWX launches a job: --network=host, the private data dir
    mounted at /runner, credentials as environment variables and files under /runner/env."""
    written = {"extravars": json.dumps(extravars), **(files or {})}
    for name, content in written.items():
        path = pdd / "env" / name
        path.write_text(content, encoding="utf-8")
        path.chmod(0o644)
    full_env = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_COLLECTIONS_PATH": AWX_COLLECTIONS_PATH,
                **env}
    cmd = [image.engine, "run", "--rm", "--network=host", "-v", f"{pdd}:/runner"]
    for key, value in full_env.items():
        cmd += ["-e", f"{key}={value}"]
    cmd += [image.tag, "ansible-runner", "run", "/runner", "-p", playbook, "--ident", ident]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - start
    stdout = proc.stdout + proc.stderr
    recaps = RECAP.findall(stdout)
    recap = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recaps[-1]))) if recaps else None
    return RunResult(proc.returncode, stdout, recap, seconds)


def changed_tasks(stdout: str) -> list[str]:
    """Names of the tasks that reported a change ("TASK [role : name]" headers before "changed:")."""
    names, current = [], None
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            current = line[len("TASK ["):line.rfind("]")]
        elif line.startswith("changed:") and current and current not in names:
            names.append(current)
    return names


def assert_ok(result: RunResult) -> None:
    assert result.rc == 0, f"rc={result.rc}\n{result.stdout[-8000:]}"
