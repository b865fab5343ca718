# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin gpuinfer.serving.gpu_cluster_info: the cluster read in the controller's own process when it can be.

Shipping the module costs an AnsiballZ payload, a new Python and the kubernetes client's imports on every run,
about 1.1 s of the 1.8 s a small cluster's read took through site.yml. When the task runs over the local
connection with the controller's own Python (site.yml's plays do), and that Python has the kubernetes client, this
plugin calls the module's run() here with the same arguments, validated against the module's ARGUMENT_SPEC. Any
other host or interpreter gets the module as usual, so a remote target or a separate virtualenv keeps working.

The kubernetes client is imported inside run(), never when this file is loaded: ansible-playbook's main process
loads every task's action plugin before forking the task's worker, and a client imported there would make it
pay the import (about 0.5 s) and fork a bigger process for every later task.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import sys
import traceback

from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.gpuinfer.serving.plugins.action.gpu_sizing import as_data, validate_args

LOCAL_TRANSPORTS = ("local", "ansible.builtin.local")


class ModuleExit(Exception):
    """What exit_json or fail_json ended the module with."""

    def __init__(self, result):
        super(ModuleExit, self).__init__(result.get("msg", ""))
        self.result = result


class InProcessModule(object):
    """The part of AnsibleModule that gpu_cluster_info.run() uses: params, check_mode, warn, exit/fail_json."""

    def __init__(self, params, check_mode):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)

    def exit_json(self, **result):
        raise ModuleExit(result)

    def fail_json(self, msg, **result):
        result.update(failed=True, msg=msg)
        raise ModuleExit(result)


def same_python(interpreter):
    """True when ``interpreter`` (the host's ansible_python_interpreter, templated) is this process's Python."""
    if not interpreter or interpreter.startswith("auto"):
        # Discovery on the local host finds a system Python, not necessarily this one: stay safe, ship the module.
        return False
    return interpreter == sys.executable


class ActionModule(ActionBase):
    """Read the cluster in-process over the local connection with the controller's Python; otherwise run the module."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def _in_process(self, task_vars):
        if self._connection.transport not in LOCAL_TRANSPORTS or importlib.util.find_spec("kubernetes") is None:
            return False
        interpreter = task_vars.get("ansible_python_interpreter")
        if interpreter:
            interpreter = self._templar.template(interpreter)
        return same_python(to_text(interpreter) if interpreter else "")

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        if not self._in_process(task_vars):
            result.update(self._execute_module(module_name="gpuinfer.serving.gpu_cluster_info", task_vars=task_vars))
            return result

        # Here, in the task's worker process: see the module docstring.
        from ansible_collections.gpuinfer.serving.plugins.modules import gpu_cluster_info

        params, warnings, error, no_log_values = validate_args(self._task.action, self._task.args, gpu_cluster_info.ARGUMENT_SPEC)
        if error:
            result.update(failed=True, msg=error)
            return result
        module = InProcessModule(as_data(params), bool(self._task.check_mode))
        try:
            gpu_cluster_info.run(module)
            answer = dict(failed=True, msg="gpu_cluster_info ended without a result")
        except ModuleExit as ended:
            answer = ended.result
        except Exception as exc:  # pylint: disable=broad-except
            # A module would die with a traceback; say what broke and keep the traceback for -vvv.
            answer = dict(failed=True, msg="gpu_cluster_info failed: %s: %s" % (type(exc).__name__, to_text(exc)),
                          exception=traceback.format_exc())
        result.update(remove_values(as_data(answer), no_log_values))
        result["invocation"] = dict(module_args=remove_values(module.params, no_log_values))
        warnings.extend(module.warnings)
        if warnings:
            result["warnings"] = [to_text(warning) for warning in warnings]
        return result
