# -*- coding: utf-8 -*-
# Copyright: contributors to gpuinfer.serving
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin gpuinfer.serving.gpu_sizing: the planner in-process on the controller.

The module of the same name (plugins/modules/gpu_sizing.py, which holds the documentation) is pure computation; run
as a module it would cost an AnsiballZ payload and a new Python per task. This plugin validates the task's arguments
against the module's ARGUMENT_SPEC with ArgumentSpecValidator, calls the module's run() here, and returns what the
module would: the same result, warnings, failure messages, check mode and diff behaviour. With output_dir, the plan
files are written on the controller.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import traceback

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase

from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing


def validate_args(name, args, argument_spec, **constraints):
    """(validated parameters, warnings, error message or None, values of no_log options), as AnsibleModule validates
    a module's arguments."""
    validator = ArgumentSpecValidator(copy.deepcopy(argument_spec), **constraints)
    validation = validator.validate(dict(args))
    params = validation.validated_parameters
    warnings = ["Both option %s and its alias %s are set." % (item["option"], item["alias"]) for item in validation._warnings]
    if validation.error_messages:
        msg = validation.errors.msg
        if isinstance(validation.errors[0], UnsupportedError):
            msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
        return params, warnings, msg, validation._no_log_values
    return params, warnings, None, validation._no_log_values


def _json_default(value):
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return to_text(value)


def as_data(value):
    """The value as JSON would carry it to and from a module: plain dicts, lists, str, numbers, no Ansible tags."""
    return json.loads(json.dumps(value, default=_json_default))


class InProcessModuleAction(ActionBase):
    """Base of the action plugins that run a pure computation module's run() on the controller.

    Subclasses set MODULE (the module under plugins/modules, with ARGUMENT_SPEC) and CONSTRAINTS (more
    ArgumentSpecValidator keywords), and implement run_module(params, result, warnings): call the module, add its
    answer to ``result`` (failures as the module would report them) and its warnings to ``warnings``. Arguments are
    validated as AnsibleModule would; any other exception fails the task with "<module> failed: ..." and keeps the
    traceback for -vvv instead of a crash.
    """

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    MODULE = None
    CONSTRAINTS = {}

    def run_module(self, params, result, warnings):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super(InProcessModuleAction, self).run(tmp, task_vars)
        del tmp

        # The planner's and the plan check's options hold no secrets: nothing to mask.
        params, warnings, error, dummy = validate_args(self._task.action, self._task.args, self.MODULE.ARGUMENT_SPEC,
                                                       **self.CONSTRAINTS)
        if error:
            result.update(failed=True, msg=error)
            return result
        try:
            params = as_data(params)
            self.run_module(params, result, warnings)
        except Exception as exc:  # pylint: disable=broad-except
            # A module would die with a traceback; say what broke and keep the traceback for -vvv.
            name = self.MODULE.__name__.rsplit(".", 1)[-1]
            result.update(failed=True, msg="%s failed: %s: %s" % (name, type(exc).__name__, to_text(exc)), exception=traceback.format_exc())
        result["invocation"] = dict(module_args=params)
        if warnings:
            result["warnings"] = [to_text(warning) for warning in warnings]
        return result


class ActionModule(InProcessModuleAction):
    """Run gpuinfer.serving.gpu_sizing on the controller without starting a module."""

    MODULE = gpu_sizing
    CONSTRAINTS = dict(required_one_of=gpu_sizing.REQUIRED_ONE_OF)

    def run_module(self, params, result, warnings):
        try:
            answer = gpu_sizing.run(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        except gpu_sizing.GpuSizingFailure as failure:
            result.update(as_data(failure.result))
            result.update(failed=True, msg=failure.msg)
            warnings.extend(failure.warnings)
        else:
            warnings.extend(answer.pop("warnings", []))
            result.update(as_data(answer))
