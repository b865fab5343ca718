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

from ansible_collections.gpuinfer.serving.plugins.action.gpu_sizing import InProcessModuleAction, as_data
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_plan_check


class ActionModule(InProcessModuleAction):
    """Run gpuinfer.serving.gpu_plan_check on the controller without starting a module."""

    MODULE = gpu_plan_check

    def run_module(self, params, result, warnings):
        try:
            result.update(as_data(gpu_plan_check.run(params, check_mode=bool(self._task.check_mode))))
        except gpu_plan_check.PlanCheckFailure as failure:
            result.update(failed=True, msg=failure.msg)
