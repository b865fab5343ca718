# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin gpuinfer.serving.gpu_plan_check: the plan check in-process on the controller.

The module of the same name (plugins/modules/gpu_plan_check.py, which holds the documentation) only computes from its
arguments. This plugin validates them against the module's ARGUMENT_SPEC with ArgumentSpecValidator, calls the module's
run() here, and returns what the module would, without shipping and starting a module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.gpuinfer.serving.plugins.action.gpu_sizing import as_data, validate_args
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_plan_check


class ActionModule(ActionBase):
    """Run gpuinfer.serving.gpu_plan_check on the controller without starting a module."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        params, warnings, error = validate_args(self._task.action, self._task.args, gpu_plan_check.ARGUMENT_SPEC)
        if error:
            result.update(failed=True, msg=error)
            return result
        try:
            params = as_data(params)
            result.update(as_data(gpu_plan_check.run(params, check_mode=bool(self._task.check_mode))))
        except gpu_plan_check.PlanCheckFailure as failure:
            result.update(failed=True, msg=failure.msg)
        except Exception as exc:  # pylint: disable=broad-except
            # A module would die with a traceback; say what broke and keep the traceback for -vvv.
            result.update(failed=True, msg="gpu_plan_check failed: %s: %s" % (type(exc).__name__, to_text(exc)),
                          exception=traceback.format_exc())
        result["invocation"] = dict(module_args=params)
        if warnings:
            result["warnings"] = warnings
        return result
