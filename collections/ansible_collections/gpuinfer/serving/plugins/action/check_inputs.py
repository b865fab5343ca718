# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin gpuinfer.serving.check_inputs: type- and range-check every user-facing variable on the controller.

Runs in-process (no module is sent anywhere). Checks the variables of
module_utils.inputs.SHARED_INPUTS (+ the engine description's inputs, + the caller's ``extra`` table) that are
defined, after templating them; then, for every option of every role argument spec of the collection
that is defined, refuses a list/dict option whose value is not a real list/dict (Ansible's own
validation would split a string such as ``-e vllm_extra_args=notalist`` into a list) and a value
outside the option's ``choices``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
from collections.abc import Mapping

from ansible.errors import AnsibleUndefinedVariable
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

try:
    import yaml
    # libyaml's parser when PyYAML has it: the pure-Python one takes about 0.1 s over the roles' specs.
    _SAFE_LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

# plugins/action/check_inputs.py -> the collection root.
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESSAGE_PREFIX = "Bad input, nothing was created: "

_SPEC_CACHE = {}


def role_option_specs(collection_root=COLLECTION_ROOT):
    """{option name: [(role, option spec), ...]} from every roles/*/meta/argument_specs.yml of the collection."""
    paths = sorted(glob.glob(os.path.join(collection_root, "roles", "*", "meta", "argument_specs.yml")))
    key = tuple((path, os.path.getmtime(path)) for path in paths)
    if key in _SPEC_CACHE:
        return _SPEC_CACHE[key]
    options = {}
    for path in paths:
        role = os.path.basename(os.path.dirname(os.path.dirname(path)))
        try:
            with open(path) as handle:
                document = yaml.load(handle, Loader=_SAFE_LOADER) or {}
        except Exception:  # pylint: disable=broad-except
            continue
        entry_points = document.get("argument_specs") if isinstance(document, Mapping) else None
        for entry in (entry_points or {}).values():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("options"), Mapping):
                continue
            for name, spec in entry["options"].items():
                if not isinstance(spec, Mapping):
                    continue
                seen = options.setdefault(name, [])
                if not any(dict(spec) == dict(other) for _role, other in seen):
                    seen.append((role, spec))
    _SPEC_CACHE.clear()
    _SPEC_CACHE[key] = options
    return options


def _load_yaml(path):
    try:
        with open(path) as handle:
            return yaml.load(handle, Loader=_SAFE_LOADER)
    except Exception:  # pylint: disable=broad-except
        return None


def declared_names(collection_root=COLLECTION_ROOT):
    """Every variable name the collection declares or sets itself.

    The options of every role argument spec, the keys of every role's vars/main.yml, and what the collection's
    own task files and playbooks register, set as facts or pass as task and play vars (the steps that hand
    one role's result to the next).
    """
    vars_files = glob.glob(os.path.join(collection_root, "roles", "*", "vars", "*.yml"))
    task_files = (glob.glob(os.path.join(collection_root, "roles", "*", "tasks", "*.yml"))
                  + glob.glob(os.path.join(collection_root, "roles", "*", "handlers", "*.yml"))
                  + glob.glob(os.path.join(collection_root, "playbooks", "*.yml")))
    key = ("declared",) + tuple(sorted((path, os.path.getmtime(path)) for path in vars_files + task_files))
    if key not in _SPEC_CACHE:
        names = set(role_option_specs(collection_root))
        for path in vars_files:
            names |= inputs.names_set_by(_load_yaml(path), vars_file=True)
        for path in task_files:
            names |= inputs.names_set_by(_load_yaml(path))
        _SPEC_CACHE[key] = names
    return _SPEC_CACHE[key]


def _is_template(raw):
    return isinstance(raw, str) and "{{" in raw


def spec_from_option(option):
    """The inputs validator spec that enforces an argument-spec option's container type and choices (or None)."""
    option_type = option.get("type", "str")
    choices = option.get("choices")
    spec = None
    if option_type == "list":
        elements = option.get("elements")
        spec = {"check": {"dict": "list_of_dicts", "str": "list_of_str"}.get(elements, "list")}
    elif option_type == "dict":
        spec = {"check": "dict"}
    elif choices and isinstance(choices, (list, tuple)):
        spec = {"check": "choices", "choices": list(choices)}
    if spec is not None and option.get("no_log"):
        spec["secret"] = True
    return spec


class ActionModule(ActionBase):
    """Check the user-facing variables before anything is created."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def _resolve(self, task_vars, name):
        """(True, templated value) or (False, reason) when the variable cannot be resolved yet."""
        try:
            return True, inputs.plain(self._templar.template(task_vars[name]))
        except AnsibleUndefinedVariable as exc:
            return False, "undefined: %s" % to_text(exc).splitlines()[0]
        except Exception as exc:  # pylint: disable=broad-except
            return False, "%s: %s" % (type(exc).__name__, to_text(exc).splitlines()[0] if to_text(exc) else "")

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        dummy, args = self.validate_argument_spec(
            argument_spec=dict(
                engine=dict(type="str"),
                extra=dict(type="dict", default={}),
            ),
        )
        engine = args.get("engine") or ""
        table = dict(inputs.SHARED_INPUTS)
        for name in engines.names():
            # Each engine role's own variables, from the engine's description (their names never overlap).
            table.update(engines.get(name).inputs)
        extra = args.get("extra") or {}
        for name, spec in extra.items():
            if not isinstance(spec, Mapping) or spec.get("check") not in inputs.VALIDATORS:
                result.update(failed=True, msg="check_inputs: extra.%s must be a spec such as {check: dns_label}; checks: %s"
                              % (name, ", ".join(sorted(inputs.VALIDATORS))))
                return result
            table[name] = dict(spec)

        problems = []
        if engine and engine not in engines.ENGINES:
            problems.append("gpuinfer_engine=%s: allowed %s (registered in module_utils/deploy/engines/registry.py)"
                            % (engine, ", ".join(engines.names())))
        unresolved = {}
        checked = set()
        values = {}

        def resolved(name):
            if name not in values:
                ok, value = self._resolve(task_vars, name)
                if ok:
                    values[name] = value
                else:
                    unresolved[name] = value
            return name in values

        # 1. The tables: type, format and range of each known variable.
        bad = set()
        for name in sorted(table):
            if name not in task_vars or not resolved(name):
                continue
            checked.add(name)
            if values[name] is None and _is_template(task_vars[name]):
                # A default computed from a plan value the plan leaves empty: not given. The role's own check says
                # what is missing, in its terms. (A null the user gives is checked.)
                continue
            for message in inputs.check({name: values[name]}, {name: table[name]}):
                problems.append(message)
                bad.add(name)

        # 2. Every role option: lists are real lists, dicts real dicts, choices respected.
        try:
            options = role_option_specs()
        except Exception as exc:  # pylint: disable=broad-except
            options = {}
            result.setdefault("warnings", []).append("check_inputs could not read the role argument specs: %s" % to_text(exc))
        for name in sorted(options):
            if name in bad or name not in task_vars:
                continue
            for role, option in options[name]:
                spec = spec_from_option(option)
                if spec is None or not resolved(name):
                    continue
                checked.add(name)
                if values[name] is None:
                    continue  # not given: the role's default applies
                found = inputs.check({name: values[name]}, {name: spec})
                if found:
                    if spec["check"] == "choices":
                        declared = "choices"
                    else:
                        declared = "type %s%s" % (option.get("type"), ", elements %s" % option["elements"] if option.get("elements") else "")
                    problems.append("%s (role gpuinfer.serving.%s declares %s)" % (found[0], role, declared))
                    bad.add(name)
                    break

        # 3. Names: a variable with one of the collection's prefixes that nothing declares is a misspelling,
        #    unless the user keeps variables of their own under those prefixes.
        #    (A policy outside its choices was refused above, from the inputs role's argument spec.)
        policy = values.get("gpuinfer_unknown_variables") or "fail"
        if policy != "ignore":
            try:
                declared = declared_names()
            except Exception as exc:  # pylint: disable=broad-except
                declared = None
                result.setdefault("warnings", []).append("check_inputs could not read the collection's declarations: %s"
                                                         % to_text(exc))
            unknown = inputs.unknown_variables(task_vars, declared) if declared else []
            if unknown:
                result["unknown"] = [name for name, _closest in unknown]
            messages = [inputs.unknown_variable_message(name, closest) for name, closest in unknown]
            if messages and policy == "fail":
                problems.extend(messages + [inputs.UNKNOWN_VARIABLES_HINT])
            elif messages:
                result.setdefault("warnings", []).extend(messages)

        result["changed"] = False
        result["checked"] = len(checked)
        if unresolved:
            result["unresolved"] = unresolved
        if problems:
            result["failed"] = True
            result["problems"] = problems
            result["msg"] = MESSAGE_PREFIX + "; ".join(problems)
        else:
            result["msg"] = "%d inputs checked" % len(checked)
        return result
