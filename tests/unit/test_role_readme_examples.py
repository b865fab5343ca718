"""The "Example Playbook" of every role README runs exactly as written.

For each role, the first ```yaml block under "## Example Playbook" of roles/<role>/README.md is written to a
file in a temporary working directory and run with ansible-playbook from there, with no inventory (implicit
localhost) and no cluster, in render mode (-e gpuinfer_render_dir=<tmp>). Before that, the plan the examples
load (plan_from_file: out/llama70b/plan.yml) is written there the way a user writes it:
playbooks/plan.yml -i inventories/llama70b-tp8 -e gpuinfer_name=llama70b, run from the working directory.
Only variables the example says the user provides are added (model_cache: vault_hf_token, a vault variable),
and files it names by a repository path are copied to that path (benchmark: a recorded `vllm bench serve` output).

Modes other than render mode, with the reason (nothing is skipped):
- verify: does nothing in render mode (it compares a running engine's log with the plan), so it runs in apply
  mode with the recorded log its example names (verify_log_file: vllm-startup.log, a copy of a real vLLM
  start-up from tests/fixtures/vllm-boot), which needs no cluster. Its plan is the one that start-up was made
  with (tests/fixtures/vllm-boot/verify-llama8b-h200.yml), written by playbooks/plan.yml the same way, so the
  verification must come out "ok".
- gpu_operator: installing the chart needs a cluster and helm; its README documents render mode (values file,
  namespace and the equivalent helm commands), which is how it runs here.
- inference_common: the example is the smoke_test entry point against an in-cluster URL, which the
  controller cannot resolve here; the role reports that and skips the test (checked below). It writes no file.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving" / "roles"
ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
BOOT = ROOT / "tests" / "fixtures" / "vllm-boot"
EXAMPLE = re.compile(r"^## Example Playbook\s*$(.*?)^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def objects_in(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kinds_in(path):
    return [doc.get("kind") for doc in objects_in(path) if isinstance(doc, dict)]


# role -> how its example runs: "render" (-e gpuinfer_render_dir) or "apply"; extra -e variables the example
# says the user provides; what must come out (render: {file: kinds it must hold}; checked below).
EXAMPLES = {
    "inputs": {"mode": "render", "files": {}},
    "plan": {"mode": "render", "files": {"plan.yml": None, "plan.json": None, "plan-report.txt": None}},
    "model_cache": {"mode": "render", "extra": {"vault_hf_token": "hf_example_token_not_written"},
                    "files": {"model-cache.yaml": ["Namespace", "PersistentVolumeClaim"], "model-download.yaml": ["Job"],
                              "llama70b-vllm.yaml": ["Deployment"]}},
    "deploy": {"mode": "render", "files": {"model-cache.yaml": ["Namespace", "PersistentVolumeClaim"], "model-download.yaml": ["Job"],
                                           "llama70b-vllm.yaml": ["Deployment"], "llama70b-service.yaml": ["Service"]}},
    "vllm": {"mode": "render", "files": {"model-cache.yaml": None, "model-download.yaml": ["Job"],
                                         "llama70b-vllm.yaml": ["Deployment"], "llama70b-service.yaml": ["Service"]}},
    "inference_service": {"mode": "render", "files": {"llama70b-vllm.yaml": ["Deployment"],
                                                      "llama70b-service.yaml": ["Service", "ScaledObject"]}},
    "nim": {"mode": "render", "files": {"model-cache.yaml": None, "nim-llama70b-nim.yaml": ["Deployment"],
                                        "nim-llama70b-service.yaml": ["Service"]}},
    "sglang": {"mode": "render", "files": {"model-cache.yaml": None, "llama70b-sglang.yaml": ["Deployment"],
                                           "llama70b-service.yaml": ["Service"]}},
    "gpu_operator": {"mode": "render", "files": {"gpu-operator-values.yaml": None, "gpu-operator-namespace.yaml": None,
                                                 "gpu-operator-helm.txt": None}},
    "inference_common": {"mode": "render", "files": {}, "output": "Smoke test skipped"},
    "manifests": {"mode": "render", "files": {"example.yaml": ["Namespace", "ConfigMap"]}},
    # Its example names a recorded `vllm bench serve` output by its path in the repository; the same file is
    # copied to that path under the working directory.
    "benchmark": {"mode": "render", "copy": ["tests/fixtures/vllm-perf/bench/bench-c1.txt"], "files": {}},
    "verify": {"mode": "apply", "plan_vars": BOOT / "verify-llama8b-h200.yml",
               "log": BOOT / "logs" / "llama8b-u092-mml131k-seq1024-bt8192.log", "files": {}},
}
# role -> why its example is not run. Empty: every role's example runs.
SKIPPED = {}


def env():
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def run(args, cwd):
    return subprocess.run([str(ANSIBLE_PLAYBOOK), *args], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=600, check=False)


def example_of(role):
    text = (ROLES / role / "README.md").read_text(encoding="utf-8")
    match = EXAMPLE.search(text)
    assert match, "roles/%s/README.md has no ```yaml block under '## Example Playbook'" % role
    assert "\n## " not in match.group(1), "roles/%s/README.md: the first ```yaml block is not in 'Example Playbook'" % role
    return match.group(2)


def write_plan(workdir, *how):
    """The plan the examples load, written as the user writes it: playbooks/plan.yml from the working directory."""
    result = run([str(ROOT / "playbooks" / "plan.yml"), *how, "-e", "gpuinfer_name=llama70b"], cwd=workdir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert (workdir / "out" / "llama70b" / "plan.yml").is_file()


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A working directory holding out/llama70b/plan.yml for inventories/llama70b-tp8."""
    workdir = tmp_path_factory.mktemp("planned")
    write_plan(workdir, "-i", str(ROOT / "inventories" / "llama70b-tp8"))
    return workdir


def test_every_role_has_a_runnable_example_or_a_reason():
    roles = sorted(path.name for path in ROLES.iterdir() if path.is_dir())
    assert sorted(set(EXAMPLES) | set(SKIPPED)) == roles
    assert not set(EXAMPLES) & set(SKIPPED)
    for role in EXAMPLES:
        yaml.safe_load(example_of(role))


@pytest.mark.parametrize("role", sorted(EXAMPLES) + sorted(SKIPPED))
def test_readme_example_runs_as_written(role, planned, tmp_path):
    if role in SKIPPED:
        pytest.skip(SKIPPED[role])
    spec = EXAMPLES[role]
    if "plan_vars" in spec:
        workdir = tmp_path / "work"
        workdir.mkdir()
        write_plan(workdir, "-e", "@%s" % spec["plan_vars"])
    else:
        workdir = tmp_path / "work"
        shutil.copytree(planned, workdir)
    for relative in spec.get("copy", []):
        (workdir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, workdir / relative)
    if "log" in spec:
        shutil.copy(spec["log"], workdir / "vllm-startup.log")
    playbook = workdir / ("example-%s.yml" % role)
    playbook.write_text(example_of(role), encoding="utf-8")
    render_dir = tmp_path / "render"
    args = [playbook.name]
    if spec["mode"] == "render":
        args += ["-e", "gpuinfer_render_dir=%s" % render_dir]
    for name, value in spec.get("extra", {}).items():
        args += ["-e", json.dumps({name: value})]

    result = run(args, cwd=workdir)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Traceback" not in output

    for name, kinds in spec["files"].items():
        path = render_dir / name
        assert path.is_file(), "%s not rendered; the render dir holds %s" % (
            name, sorted(p.name for p in render_dir.iterdir()) if render_dir.exists() else "nothing")
        if kinds:
            assert set(kinds) <= set(kinds_in(path)), (name, kinds_in(path))
    if spec.get("output"):
        assert spec["output"] in output, output[-4000:]
    if render_dir.exists():
        # Render mode never writes a Secret, nor a token the user gave.
        for path in render_dir.iterdir():
            text = path.read_text()
            assert "hf_example_token_not_written" not in text, path.name
            if path.suffix == ".yaml":
                assert "Secret" not in kinds_in(path), path.name

    if role == "verify":
        verified = json.loads((workdir / "out" / "llama70b" / "verify.json").read_text())
        assert verified["status"] == "ok", verified
        assert "Verified against vllm-startup.log: ok" in output, output[-4000:]
    if role == "gpu_operator":
        values = yaml.safe_load((render_dir / "gpu-operator-values.yaml").read_text())
        assert values["driver"]["enabled"] is False, values["driver"]
        assert values["devicePlugin"]["config"]["name"] == "time-slicing-config"
    if role == "plan":
        plan = yaml.safe_load((render_dir / "plan.yml").read_text())
        assert plan["model"]["hf_id"] == "Qwen/Qwen3-30B-A3B", plan["model"]
