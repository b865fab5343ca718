# -*- coding: utf-8 -*-
"""The gpu_sizing and gpu_plan_check action plugins (the computation in-process on the controller) and gpu_sizing's
output_dir: the same results, failures, check mode and diff as the modules, and the plan files byte for byte as the
plan role's filters wrote them (to_nice_yaml, to_nice_json, plan_report)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import subprocess
import sys
import tempfile

import pytest

from unittest.mock import MagicMock

from ansible.playbook.task import Task
from ansible.plugins.filter.core import to_nice_json, to_nice_yaml
from ansible_collections.gpuinfer.serving.plugins.action import gpu_plan_check as plan_check_action
from ansible_collections.gpuinfer.serving.plugins.action import gpu_sizing as sizing_action
from ansible_collections.gpuinfer.serving.plugins.filter.plan_report import plan_report
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_plan_check, gpu_sizing

# collections/ (tests/unit/plugins/action -> the collection -> ansible_collections -> collections)
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 7))
SMALL = {"model": "llama-3.1-8b", "gpu": "L4"}
TWO_NODES = {"model": "llama-3.1-405b", "gpu": "H100-80GB"}  # fits on TP8 x PP2, with a warning


def run_action(plugin_module, args, check_mode=False, diff=False, action="gpuinfer.serving.gpu_sizing"):
    task = MagicMock(Task)
    task.args = dict(args)
    task.action = action
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = 0
    plugin = plugin_module.ActionModule(task, connection=MagicMock(), play_context=MagicMock(), loader=MagicMock(),
                                        templar=MagicMock(), shared_loader_obj=MagicMock())
    return plugin.run(task_vars={})


def run_module(module, args, check_mode=False, diff=False, tmp_path=None):
    """The module run as Ansible runs it: a new Python, the arguments in a file, the JSON result on stdout."""
    name = module.__name__.rsplit(".", 1)[1]
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_module_name="gpuinfer.serving.%s" % name)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        proc = subprocess.run([sys.executable, "-m", module.__name__, handle.name], capture_output=True, text=True, timeout=120,
                              check=False, env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    finally:
        os.unlink(handle.name)
    return json.loads(proc.stdout)


def comparable(result):
    """A module's or an action's result without what only one of them carries (warnings as their messages)."""
    result = dict(result)
    result.pop("invocation", None)
    result["warnings"] = [warning["event"]["msg"] if isinstance(warning, dict) else warning for warning in result.get("warnings", [])]
    return result


# --- The action plugins answer as the modules do ---------------------------------------------------------------


@pytest.mark.parametrize("args", [
    SMALL,
    TWO_NODES,
    dict(TWO_NODES, max_nodes=1),  # no fit: fails with the reasons and the layout
    dict(TWO_NODES, max_nodes=1, fail_on_no_fit=False),
    {"model": "llama-3-70b-instruct", "gpu": "A100-80GB"},
    {"model": "llama-3.1-70b", "gpu": "V100"},
    {"model": "llama-3.1-70b", "gpu": "A100-80GB", "tensor_parallel_size": 6},
    {"model": "llama-3.1-70b"},
    {"model": "llama-3.1-70b", "gpu": "A100-80GB", "bogus": 1},
    {"model": "llama-3.1-70b", "gpu": "A100-80GB", "max_nodes": "many"},
    {"model": "llama-3.1-70b", "gpu": "A100-80GB", "dtype": "int2"},
])
def test_gpu_sizing_action_matches_the_module(args):
    from_module = run_module(gpu_sizing, args)
    from_action = run_action(sizing_action, args)
    assert comparable(from_action) == comparable(from_module)
    assert "Traceback" not in from_action.get("msg", "")


def test_gpu_sizing_action_checks_mode_like_the_module():
    from_module = run_module(gpu_sizing, SMALL, check_mode=True, diff=True)
    from_action = run_action(sizing_action, SMALL, check_mode=True, diff=True)
    assert comparable(from_action) == comparable(from_module)
    assert from_action["changed"] is False and "diff" not in from_action


def test_gpu_sizing_action_never_tracebacks_on_a_bug(monkeypatch):
    def broken(params):
        raise KeyError("boom")

    monkeypatch.setattr(gpu_sizing, "size", broken)
    result = run_action(sizing_action, SMALL)
    assert result["failed"] and result["msg"] == "gpu_sizing failed: KeyError: 'boom'"


@pytest.mark.parametrize("args", [
    {"plan": {"plan": {"tensor_parallel_size": 8, "pipeline_parallel_size": 1, "nodes": 1, "gpus_per_node": 8, "replicas": 1,
                       "gpu_labels": ["NVIDIA-A100-SXM4-80GB"], "gpu_memory_gib": 79.15}},
     "hosts": [{"name": "a", "gpus": []}], "shm_size": "1Gi", "shm_size_bytes": "1Gi"},
    {"plan": {"plan": {}}, "shm_size_bytes": "lots"},
    {"plan": {"plan": {}}, "deployment_mode": "sideways"},
    {"plan": "not a plan"},
])
def test_gpu_plan_check_action_matches_the_module(args):
    from_module = run_module(gpu_plan_check, args)
    from_action = run_action(plan_check_action, args, action="gpuinfer.serving.gpu_plan_check")
    assert comparable(from_action) == comparable(from_module)


# --- output_dir ------------------------------------------------------------------------------------------------


def role_files(result):
    """What the plan role's copy tasks wrote for a registered result (before output_dir)."""
    plan = dict((key, value) for key, value in result.items() if key not in ("changed", "failed", "invocation", "files", "diff"))
    return {
        "plan.yml": to_nice_yaml(plan, indent=2, sort_keys=False),
        "plan.json": to_nice_json(plan) + "\n",
        "plan-report.txt": "\n".join(plan_report(plan)) + "\n",
    }


@pytest.mark.parametrize("args", [SMALL, TWO_NODES, dict(TWO_NODES, max_nodes=1, fail_on_no_fit=False)])
def test_output_dir_writes_what_the_role_wrote(tmp_path, args):
    out = tmp_path / "a" / "b"
    result = run_action(sizing_action, dict(args, output_dir=str(out)))
    assert result["changed"] is True
    assert result["files"] == [str(out / name) for name in ("plan.yml", "plan.json", "plan-report.txt")]
    for name, text in role_files(result).items():
        assert (out / name).read_text() == text, name
        assert stat.S_IMODE(os.stat(str(out / name)).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(out)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(str(out.parent)).st_mode) == 0o755
    if result.get("warnings"):
        assert "warnings:" in (out / "plan.yml").read_text()


def test_output_dir_is_idempotent_and_fixes_content_and_modes(tmp_path):
    args = dict(SMALL, output_dir=str(tmp_path))
    assert run_action(sizing_action, args)["changed"] is True
    again = run_action(sizing_action, args, diff=True)
    assert again["changed"] is False and "diff" not in again
    before = os.stat(str(tmp_path / "plan.yml")).st_mtime_ns

    (tmp_path / "plan-report.txt").write_text("stale\n")
    os.chmod(str(tmp_path / "plan.json"), 0o600)
    fixed = run_action(sizing_action, args, diff=True)
    assert fixed["changed"] is True
    assert [entry.get("after_header") or entry["after"]["path"] for entry in fixed["diff"]] == [
        str(tmp_path / "plan.json"), str(tmp_path / "plan-report.txt")]
    assert fixed["diff"][0] == {"before": {"path": str(tmp_path / "plan.json"), "mode": "0600"},
                                "after": {"path": str(tmp_path / "plan.json"), "mode": "0644"}}
    assert fixed["diff"][1]["before"] == "stale\n" and fixed["diff"][1]["after"].startswith("GPU plan for ")
    assert os.stat(str(tmp_path / "plan.yml")).st_mtime_ns == before  # unchanged files are not rewritten
    assert stat.S_IMODE(os.stat(str(tmp_path / "plan.json")).st_mode) == 0o644
    assert run_action(sizing_action, args)["changed"] is False


def test_output_dir_in_check_mode_writes_nothing(tmp_path):
    out = tmp_path / "plans"
    result = run_action(sizing_action, dict(SMALL, output_dir=str(out)), check_mode=True, diff=True)
    assert result["changed"] is True and not out.exists()
    assert result["diff"][0] == {"before": {"path": str(out), "state": "absent"}, "after": {"path": str(out), "state": "directory"}}
    assert [entry["after_header"] for entry in result["diff"][1:]] == result["files"]
    assert all(entry["before"] == "" and "before_header" not in entry for entry in result["diff"][1:])


def test_output_dir_not_written_when_the_task_fails(tmp_path):
    out = tmp_path / "plans"
    result = run_action(sizing_action, dict(TWO_NODES, max_nodes=1, output_dir=str(out)))
    assert result["failed"] and "no plan fits" in result["msg"] and not out.exists()


def test_output_dir_failures_name_the_field(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_action(sizing_action, dict(SMALL, output_dir=str(tmp_path / "file")))
    assert result["failed"] and result["field"] == "output_dir" and "is not a folder" in result["msg"]
    result = run_action(sizing_action, dict(SMALL, output_dir=str(tmp_path / "file" / "plans")))
    assert result["failed"] and result["field"] == "output_dir"
    assert result["msg"].startswith("cannot write the plan files into %s: " % (tmp_path / "file" / "plans"))


def test_module_writes_the_same_files(tmp_path):
    module_dir, action_dir = tmp_path / "module", tmp_path / "action"
    from_module = run_module(gpu_sizing, dict(TWO_NODES, output_dir=str(module_dir)))
    run_action(sizing_action, dict(TWO_NODES, output_dir=str(action_dir)))
    assert from_module["changed"] is True
    for name in ("plan.yml", "plan.json", "plan-report.txt"):
        assert (module_dir / name).read_bytes() == (action_dir / name).read_bytes()
