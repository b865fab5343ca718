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
    """(validated parameters, warnings, error message or None), as AnsibleModule validates a module's arguments."""
    validator = ArgumentSpecValidator(copy.deepcopy(argument_spec), **constraints)
    validation = validator.validate(dict(args))
    params = validation.validated_parameters
    warnings = ["Both option %s and its alias %s are set." % (item["option"], item["alias"]) for item in validation._warnings]
    if validation.error_messages:
        msg = validation.errors.msg
        if isinstance(validation.errors[0], UnsupportedError):
            msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
        return params, warnings, msg
    return params, warnings, None


def _json_default(value):
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return to_text(value)


def as_data(value):
    """The value as JSON would carry it to and from a module: plain dicts, lists, str, numbers, no Ansible tags."""
    return json.loads(json.dumps(value, default=_json_default))


class ActionModule(ActionBase):
    """Run gpuinfer.serving.gpu_sizing on the controller without starting a module."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        params, warnings, error = validate_args(self._task.action, self._task.args, gpu_sizing.ARGUMENT_SPEC,
                                                required_one_of=gpu_sizing.REQUIRED_ONE_OF)
        if error:
            result.update(failed=True, msg=error)
            return result
        try:
            params = as_data(params)
            answer = gpu_sizing.run(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        except gpu_sizing.GpuSizingFailure as failure:
            result.update(as_data(failure.result))
            result.update(failed=True, msg=failure.msg)
            warnings.extend(failure.warnings)
        except Exception as exc:  # pylint: disable=broad-except
            # A module would die with a traceback; say what broke and keep the traceback for -vvv.
            result.update(failed=True, msg="gpu_sizing failed: %s: %s" % (type(exc).__name__, to_text(exc)), exception=traceback.format_exc())
        else:
            warnings.extend(answer.pop("warnings", []))
            result.update(as_data(answer))
        result["invocation"] = dict(module_args=params)
        if warnings:
            result["warnings"] = [to_text(warning) for warning in warnings]
        return result
