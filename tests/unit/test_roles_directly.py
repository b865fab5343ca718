"""tests/e2e/playbooks/roles_directly.yml in render mode: a playbook of the user's own that calls the roles.

The e2e tier (tests/e2e/test_bad_inputs.py) runs every bad input through this playbook against the simulated
cluster; here, with no cluster, it must render a deploy from good inputs and refuse a misspelled variable before
the first file is written (the refusal comes from gpuinfer.serving.inputs, a dependency of every role, since the
playbook has no input check of its own).
"""

import os
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = "tests/e2e/playbooks/roles_directly.yml"


def run(*extra):
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "inventories/llama70b-tp8", PLAYBOOK, *extra]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, env=env)


def test_the_playbook_has_no_input_check_of_its_own():
    (play,) = yaml.safe_load((ROOT / PLAYBOOK).read_text())
    names = [task.get("ansible.builtin.include_role", {}).get("name") for task in play["tasks"]]
    assert names == ["gpuinfer.serving.plan", "gpuinfer.serving.model_cache",
                     "gpuinfer.serving.{{ gpuinfer_engine | default('vllm') }}", "gpuinfer.serving.inference_service",
                     "gpuinfer.serving.deploy"]
    # No check_inputs task, no inputs role, no pre_tasks: the roles must refuse bad inputs by themselves.
    assert set(play) & {"roles", "pre_tasks", "post_tasks", "handlers"} == set()
    assert all(set(task) <= {"name", "ansible.builtin.include_role"} for task in play["tasks"]), play["tasks"]


def test_good_inputs_render_the_deploy(tmp_path):
    render_dir = tmp_path / "render"
    result = run("-e", "gpuinfer_render_dir=%s" % render_dir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The inventory's instance name is llama-3-1-70b; its plan (TP8 on one node) is a vLLM Deployment.
    workload = render_dir / "llama-3-1-70b-vllm.yaml"
    assert workload.is_file(), sorted(p.name for p in render_dir.iterdir())
    kinds = [doc["kind"] for doc in yaml.safe_load_all(workload.read_text()) if doc]
    assert "Deployment" in kinds, kinds
    for name in ("plan.yml", "model-cache.yaml", "model-download.yaml", "llama-3-1-70b-service.yaml"):
        assert (render_dir / name).is_file(), name
    # The input check ran once, as the first role's dependency, not once per role.
    assert result.stdout.count("TASK [gpuinfer.serving.inputs : Check every input") == 1, result.stdout[-4000:]


def test_a_misspelled_variable_is_refused_before_any_file(tmp_path):
    render_dir = tmp_path / "render"
    result = run("-e", "gpuinfer_render_dir=%s" % render_dir, "-e", "plan_modle=x")
    output = " ".join((result.stdout + result.stderr).replace("''", "'").split())
    assert result.returncode != 0, output[-4000:]
    assert "Traceback" not in output
    assert "Bad input, nothing was created:" in output, output[-4000:]
    assert "plan_modle: no role of gpuinfer.serving declares this variable (did you mean plan_model?)" in output, output[-4000:]
    assert not render_dir.exists() or not any(render_dir.iterdir()), sorted(render_dir.iterdir())
    assert "changed=0" in output and "failed=1" in output, output[-2000:]
