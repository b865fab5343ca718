# -*- coding: utf-8 -*-
"""The gpu_cluster_info action plugin: the cluster read in the controller's worker over the local connection with the
controller's Python, the module anywhere else; the same answers as the module; and no kubernetes client imported
when ansible-playbook's main process loads the plugin (it loads every task's action plugin before forking)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from unittest.mock import MagicMock

from ansible.playbook.task import Task
from ansible_collections.gpuinfer.serving.plugins.action import gpu_cluster_info as cluster_info_action
from ansible_collections.gpuinfer.serving.tests.unit.plugins.action.test_plan_actions import COLLECTIONS, comparable
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_cluster_info


def plugin_for(args, transport="local", interpreter=None):
    task = MagicMock(Task)
    task.args = dict(args)
    task.action = "gpuinfer.serving.gpu_cluster_info"
    task.check_mode = False
    task.diff = False
    task.async_val = 0
    connection = MagicMock()
    connection.transport = transport
    templar = MagicMock()
    templar.template.side_effect = lambda value: value
    plugin = cluster_info_action.ActionModule(task, connection=connection, play_context=MagicMock(), loader=MagicMock(),
                                              templar=templar, shared_loader_obj=MagicMock())
    task_vars = {"ansible_python_interpreter": interpreter if interpreter is not None else sys.executable}
    return plugin, task_vars


def module_result(args):
    """The module run as Ansible runs it: a new Python, the arguments in a file, the JSON result on stdout."""
    args = dict(args, _ansible_module_name="gpuinfer.serving.gpu_cluster_info")
    proc = subprocess.run([sys.executable, "-m", gpu_cluster_info.__name__],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True, timeout=120,
                          check=False, env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    return json.loads(proc.stdout)


def test_loading_the_plugin_imports_no_kubernetes_client():
    code = ("import sys; import ansible_collections.gpuinfer.serving.plugins.action.gpu_cluster_info; "
            "print(sorted(name for name in sys.modules if name.split('.')[0] in ('kubernetes', 'urllib3')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("transport, interpreter, expected", [
    ("local", None, True),
    ("ansible.builtin.local", None, True),
    ("ssh", None, False),                          # a remote host reads the cluster with its own kubeconfig
    ("local", "/usr/bin/python3.6", False),        # another Python: it may not have the same kubernetes client
    ("local", "auto_silent", False),               # discovery may find another Python
])
def test_in_process_only_over_the_local_connection_with_this_python(transport, interpreter, expected):
    if interpreter == "/usr/bin/python3.6" and sys.executable == interpreter:
        pytest.skip("this Python is the other one")
    plugin, task_vars = plugin_for({}, transport, interpreter)
    assert plugin._in_process(task_vars) is expected


def test_other_hosts_get_the_module(monkeypatch):
    plugin, task_vars = plugin_for({"page_size": 10}, transport="ssh")
    shipped = {}

    def execute_module(module_name=None, task_vars=None, **kwargs):
        shipped["module"] = module_name
        return {"changed": False, "nodes": []}

    monkeypatch.setattr(plugin, "_execute_module", execute_module)
    result = plugin.run(task_vars=task_vars)
    assert shipped["module"] == "gpuinfer.serving.gpu_cluster_info" and result["nodes"] == []


@pytest.mark.parametrize("args", [
    {"kubeconfig": "/nonexistent/kubeconfig"},
    {"page_size": 0},
    {"page_size": "many"},
    {"bogus": 1},
])
def test_in_process_answers_as_the_module(args):
    plugin, task_vars = plugin_for(args)
    from_action = plugin.run(task_vars=task_vars)
    from_module = module_result(args)
    assert from_action["failed"] and from_module["failed"]
    assert comparable(from_action) == comparable(from_module)
