"""One declaration per variable: where a variable is declared more than once, the declarations agree.

A role variable is declared in its role's meta/argument_specs.yml (type, choices, default, description). It may
also appear in the role's defaults/main.yml (the value Ansible uses), in module_utils/inputs.py (the format and
range checks a spec cannot say) and in an engine description's input table (engine_<name>.py). This test lists
every variable found in more than one of those places and fails on any disagreement: a default that differs from
the spec's, a defaults entry no spec declares, two specs giving one variable different types or choices, a choice
list repeated in inputs.py, or an inputs.py check whose kind contradicts the spec's type.
"""

import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving"
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs  # noqa: E402

# inputs.py check -> the argument-spec types it may sit beside.
CHECK_TYPES = {
    "bool": {"bool"}, "auto_or_bool": {"raw", "str"},
    "int_range": {"int"}, "port": {"int"}, "number_range": {"float", "int", "raw"},
    "list": {"list"}, "list_of_str": {"list"}, "list_of_dicts": {"list"},
    "dict": {"dict"}, "dict_of_str": {"dict"},
    "quantity": {"raw", "str"}, "str": {"str", "raw"}, "dns_label": {"str"}, "dns_subdomain": {"str"},
    "absolute_path": {"str"}, "http_url": {"str"}, "duration": {"str"}, "regex": {"str"},
    "choices": {"str", "raw"},
}


def _specs():
    declared = {}
    for path in sorted(COLLECTION.glob("roles/*/meta/argument_specs.yml")):
        role = path.parts[-3]
        for entry, spec in yaml.safe_load(path.read_text())["argument_specs"].items():
            for name, option in (spec.get("options") or {}).items():
                declared.setdefault(name, []).append((role, entry, option))
    return declared


def _defaults():
    found = {}
    for path in sorted(COLLECTION.glob("roles/*/defaults/main.yml")):
        for name, value in (yaml.safe_load(path.read_text()) or {}).items():
            found.setdefault(name, []).append((path.parts[-3], value))
    return found


def _tables():
    tables = {"module_utils/inputs.py": inputs.SHARED_INPUTS}
    for name in engines.names():
        tables["module_utils/deploy/engines/engine_%s.py" % name] = engines.get(name).inputs
    return tables


SPECS = _specs()
DEFAULTS = _defaults()
TABLES = _tables()


def _templated(value):
    return isinstance(value, str) and "{{" in value


def test_print_the_variables_declared_in_more_than_one_place():
    rows = []
    for name in sorted(set(SPECS) | set(DEFAULTS) | set().union(*TABLES.values())):
        places = sorted({"%s spec" % role for role, _entry, _option in SPECS.get(name, [])}
                        | {"%s defaults" % role for role, _value in DEFAULTS.get(name, [])}
                        | {table for table, entries in TABLES.items() if name in entries})
        if len(places) > 1:
            rows.append("%-55s %s" % (name, ", ".join(places)))
    print("\n%d variables declared in more than one place:\n%s" % (len(rows), "\n".join(rows)))
    assert rows


def test_every_default_is_declared_by_its_role_spec_with_the_same_value():
    problems = []
    for name, entries in DEFAULTS.items():
        for role, value in entries:
            options = [option for spec_role, _entry, option in SPECS.get(name, []) if spec_role == role]
            if not options:
                problems.append("%s: in roles/%s/defaults/main.yml but no entry point of its spec declares it" % (name, role))
                continue
            for option in options:
                if _templated(value):
                    if "default" in option:
                        problems.append("%s: the spec says default %r, defaults/main.yml computes %r"
                                        % (name, option["default"], value))
                elif option.get("default", value) != value or "default" not in option:
                    problems.append("%s: the spec says default %r, roles/%s/defaults/main.yml %r"
                                    % (name, option.get("default", "(none)"), role, value))
    assert not problems, "\n".join(sorted(set(problems)))


def test_a_spec_default_is_in_defaults_too():
    """A default only the spec states is documentation Ansible never applies."""
    problems = []
    for name, declarations in SPECS.items():
        for role, entry, option in declarations:
            if "default" in option and role not in {r for r, _value in DEFAULTS.get(name, [])}:
                problems.append("%s (%s %s): spec default %r, no defaults/main.yml entry" % (name, role, entry, option["default"]))
    assert not problems, "\n".join(problems)


def test_every_declaration_of_a_variable_agrees_on_type_and_choices():
    problems = []
    for name, declarations in SPECS.items():
        shapes = {(option.get("type", "str"), option.get("elements"), tuple(option.get("choices") or ()))
                  for _role, _entry, option in declarations}
        if len(shapes) > 1:
            problems.append("%s: %s" % (name, sorted(shapes, key=str)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_input_tables_hold_only_what_a_spec_cannot_say(table):
    problems = []
    for name, check in TABLES[table].items():
        declarations = SPECS.get(name)
        if not declarations:
            problems.append("%s: checked in %s but declared by no role spec" % (name, table))
            continue
        for role, entry, option in declarations:
            option_type = option.get("type", "str")
            if check["check"] == "choices" and option.get("choices"):
                problems.append("%s: choices %s repeated in %s (role %s declares %s)"
                                % (name, check["choices"], table, role, option.get("choices")))
            elif option_type not in CHECK_TYPES.get(check["check"], {option_type}):
                problems.append("%s: %s checks %s, roles/%s (%s) declares type %s"
                                % (name, table, check["check"], role, entry, option_type))
    assert not problems, "\n".join(sorted(set(problems)))


def test_no_role_entry_point_skips_argument_validation():
    task_files = (list(COLLECTION.glob("roles/*/tasks/*.yml")) + list(COLLECTION.rglob("playbooks/**/*.yml"))
                  + list((ROOT / "playbooks").rglob("*.yml")) + list((ROOT / "molecule").rglob("*.yml")))
    offenders = [str(path.relative_to(ROOT)) for path in task_files if "rolespec_validate: false" in path.read_text()]
    assert not offenders
