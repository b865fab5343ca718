"""Every option the collection passes to a kubernetes.core module exists in the release requirements.txt pins.

The judge is the installed kubernetes.core (the `ansible` package of requirements.txt bundles it): its modules'
DOCUMENTATION, with the doc fragments they extend. A task's option, and the sub-option of a literal dict such as
``server_side_apply: {field_manager, force_conflicts}``, must be declared there, or the module would refuse the task
at run time, on a cluster, after the run has started.
"""

import ast
import json
import pathlib

import ansible
import pytest
import yaml

from test_one_path import COLLECTION, PLAYBOOKS, ROLES, tasks_in

KUBERNETES_CORE = pathlib.Path(ansible.__file__).resolve().parents[1] / "ansible_collections" / "kubernetes" / "core"
TASK_FILES = sorted(ROLES.glob("*/tasks/*.yml")) + sorted(ROLES.glob("*/handlers/*.yml")) + PLAYBOOKS
# Task keywords that are not module options.
KEYWORDS = {"name", "vars", "when", "register", "loop", "loop_control", "no_log", "check_mode", "changed_when",
            "failed_when", "until", "retries", "delay", "tags", "become", "environment", "ignore_errors",
            "delegate_to", "run_once", "notify", "module_defaults", "diff", "args", "block", "rescue", "always"}


def _documentation(path, attribute="DOCUMENTATION"):
    for node in ast.parse(path.read_text()).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attribute for t in item.targets):
                    return yaml.safe_load(item.value.value) or {}
        if attribute in targets:
            return yaml.safe_load(node.value.value) or {}
    raise AssertionError("%s has no %s" % (path, attribute))


def module_options(module):
    """The options of kubernetes.core.<module> and their aliases, doc fragments merged."""
    doc = _documentation(KUBERNETES_CORE / "plugins" / "modules" / ("%s.py" % module))
    options = dict(doc.get("options") or {})
    fragments = doc.get("extends_documentation_fragment") or []
    for fragment in [fragments] if isinstance(fragments, str) else fragments:
        name = fragment.split(".", 2)[2] if fragment.startswith("kubernetes.core.") else fragment
        if not fragment.startswith("kubernetes.core."):
            continue  # ansible.builtin fragments (action_common_attributes) declare no options
        file_name, _, attribute = name.partition(".")
        options.update(_documentation(KUBERNETES_CORE / "plugins" / "doc_fragments" / ("%s.py" % file_name),
                                      attribute.upper() or "DOCUMENTATION").get("options") or {})
    # An alias (definition for resource_definition) is as good as the option's own name.
    for spec in list(options.values()):
        for alias in (spec or {}).get("aliases") or []:
            options.setdefault(alias, spec)
    return options


def kubernetes_core_tasks():
    for path in TASK_FILES:
        for task in tasks_in(yaml.safe_load(path.read_text()) or []):
            for key, args in task.items():
                if key.startswith("kubernetes.core.") and isinstance(args, dict):
                    yield path, task.get("name", key), key.split(".")[2], args


def test_the_installed_kubernetes_core_is_the_one_requirements_pins():
    version = json.loads((KUBERNETES_CORE / "MANIFEST.json").read_text())["collection_info"]["version"]
    assert int(version.split(".")[0]) >= 6, "kubernetes.core %s: server_side_apply and state=patched need 2.3 or later" % version


def test_the_collection_applies_server_side_under_one_field_manager():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import rollout
    appliers = [(path, name, args) for path, name, module, args in kubernetes_core_tasks() if args.get("apply")]
    assert {(path.name, name) for path, name, _args in appliers} >= {
        ("main.yml", "Make the cluster match the objects of {{ manifests_name }}"),
        ("rollback.yml", "Apply the revision's workload, Service, autoscaling and monitoring objects")}
    for path, name, args in appliers:
        assert args.get("server_side_apply") == {"field_manager": rollout.FIELD_MANAGER, "force_conflicts": True}, (path, name)


@pytest.mark.parametrize("path,name,module,args", list(kubernetes_core_tasks()),
                         ids=lambda value: value.name if isinstance(value, pathlib.Path) else None)
def test_every_option_passed_to_kubernetes_core_exists_in_the_pinned_release(path, name, module, args):
    options = module_options(module)
    unknown = sorted(set(args) - set(options) - KEYWORDS)
    assert not unknown, "%s, task %r: kubernetes.core.%s has no option %s" % (path.relative_to(COLLECTION.parents[2]), name, module, unknown)
    for option, value in args.items():
        suboptions = (options.get(option) or {}).get("suboptions")
        if suboptions and isinstance(value, dict):
            assert set(value) <= set(suboptions), "%s, task %r: %s.%s" % (path.name, name, option, sorted(set(value) - set(suboptions)))
