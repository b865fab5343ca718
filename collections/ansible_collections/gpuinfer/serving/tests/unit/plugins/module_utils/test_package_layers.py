# -*- coding: utf-8 -*-
"""module_utils is grouped by concern, and the packages import one another in one direction only:

    inputs.py (the shared input checks)  <-  plan/  <-  deploy/ (with deploy/engines/)  <-  kube/, cluster/

plan/ (the planner) never imports deploy/: what it needs of the engines is in plan/engine_facts.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import json
import os
import subprocess
import sys

import pytest

PREFIX = "ansible_collections.gpuinfer.serving.plugins.module_utils"
MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "plugins", "module_utils"))

# What each package may import (besides itself).
ALLOWED = {
    "": set(),
    "plan": {""},
    "deploy": {"", "plan"},
    "kube": {"", "deploy"},
    "cluster": {"", "plan", "deploy"},
}


def _package(dotted):
    """The top package ('' for inputs.py) of a module_utils module or package name."""
    parts = dotted.split(".")
    return parts[0] if len(parts) > 1 and parts[0] in ALLOWED else ""


def _imports(path):
    """The module_utils names a file imports, relative to module_utils ('plan.layout', 'deploy.engines.registry')."""
    names = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
            module = node.module[len(PREFIX):].lstrip(".")
            names.extend(".".join(filter(None, (module, alias.name))) for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name[len(PREFIX):].lstrip(".") for alias in node.names if alias.name.startswith(PREFIX + "."))
    return names


FILES = sorted(glob.glob(os.path.join(MODULE_UTILS, "**", "*.py"), recursive=True))


def test_every_package_is_a_package_and_nothing_is_left_at_the_top_but_inputs():
    assert [os.path.basename(path) for path in glob.glob(os.path.join(MODULE_UTILS, "*.py"))] == ["inputs.py"]
    for package in ("plan", "deploy", "deploy/engines", "kube", "cluster"):
        init = os.path.join(MODULE_UTILS, package, "__init__.py")
        assert os.path.isfile(init) and open(init).read() == ""


@pytest.mark.parametrize("path", FILES, ids=lambda path: os.path.relpath(path, MODULE_UTILS))
def test_imports_go_one_way(path):
    here = _package(os.path.relpath(path, MODULE_UTILS)[:-3].replace(os.sep, "."))
    wrong = [name for name in _imports(path) if _package(name) not in ALLOWED[here] | {here}]
    assert wrong == [], "%s imports %s" % (os.path.relpath(path, MODULE_UTILS), wrong)


def test_the_planner_module_and_its_report_load_no_deploy_code():
    code = ("import json, sys\n"
            "import ansible_collections.gpuinfer.serving.plugins.modules.gpu_sizing\n"
            "print(json.dumps(sorted(name for name in sys.modules if name.startswith('%s.'))))" % PREFIX)
    collections = os.path.abspath(os.path.join(MODULE_UTILS, *[os.pardir] * 5))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=dict(os.environ, PYTHONPATH=collections))
    loaded = [name[len(PREFIX) + 1:] for name in json.loads(proc.stdout)]
    assert "plan.sizing" in loaded and "plan.plan_report" in loaded
    assert [name for name in loaded if _package(name) not in ("", "plan")] == []
