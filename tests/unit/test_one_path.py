"""One path through the roles.

- The deploy playbooks run one role, gpuinfer.serving.deploy; no playbook includes task files or reaches into a
  role's task file that is not a declared entry point (meta/argument_specs.yml).
- The build roles' main entry points create nothing: only the deploy role (and the separate workflows: gpu_operator,
  benchmark, model_cache's removal) apply objects.
- The deploy role reads the other roles' documented outputs (facts their tasks set), and the variables it passes to
  their entry points; never another role's input variable, which a playbook may have set on that role alone.
"""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving"
ROLES = COLLECTION / "roles"
PLAYBOOKS = sorted((COLLECTION / "playbooks").glob("*.yml")) + sorted((ROOT / "playbooks").glob("*.yml"))
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role")
TASK_FILES = ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks")
# The roles whose main entry point builds objects for the deploy and must apply none.
BUILD_ROLES = ("plan", "model_cache", "vllm", "nim", "sglang", "inference_common", "inference_service")
APPLIERS = ("kubernetes.core.k8s", "kubernetes.core.helm", "gpuinfer.serving.manifests")
# Read by the cluster check before the engine role runs, so they can only come from the play (inventory, play vars,
# extra vars); roles/deploy/README.md says so.
READ_BEFORE_THE_ENGINE_ROLE = {"inference_common_tolerate_gpu_taint", "inference_common_extra_tolerations"}
OTHER_ROLE_PREFIXES = ("model_cache_", "inference_common_", "inference_service_", "vllm_", "nim_", "sglang_",
                       "plan_", "verify_", "benchmark_")


def tasks_in(node):
    """Every task dict in a play or task list, blocks included."""
    if isinstance(node, list):
        for item in node:
            yield from tasks_in(item)
    elif isinstance(node, dict):
        if any(key in node for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks")):
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks"):
                yield from tasks_in(node.get(key) or [])
        if "hosts" not in node and "block" not in node:
            yield node


def entry_points(role):
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return set(specs)


def test_the_deploy_playbooks_run_the_deploy_role_only():
    for name in ("site.yml", "scale.yml"):
        plays = yaml.safe_load((COLLECTION / "playbooks" / name).read_text())
        deploy_play = plays[-1]
        assert [role["role"] if isinstance(role, dict) else role for role in deploy_play["roles"]] == ["gpuinfer.serving.deploy"]
        assert not deploy_play.get("tasks"), (name, deploy_play.get("tasks"))
    for name in ("deploy_vllm.yml", "deploy_nim.yml"):
        (play,) = yaml.safe_load((COLLECTION / "playbooks" / name).read_text())
        assert play["ansible.builtin.import_playbook"] == "site.yml", name


def test_no_playbook_includes_task_files_or_undeclared_entry_points():
    assert not (COLLECTION / "playbooks" / "tasks").exists()
    for path in PLAYBOOKS:
        for task in tasks_in(yaml.safe_load(path.read_text()) or []):
            assert not set(task) & set(TASK_FILES), (path.name, task.get("name"))
            for key in INCLUDES:
                if key in task and "tasks_from" in task[key]:
                    role = task[key]["name"].split(".")[-1]
                    assert task[key]["tasks_from"] in entry_points(role), (path.name, task[key])


def test_every_tasks_from_in_the_roles_names_a_declared_entry_point():
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        for task in tasks_in(yaml.safe_load(path.read_text()) or []):
            for key in INCLUDES:
                if key in task and "tasks_from" in task[key]:
                    role = task[key]["name"].split(".")[-1]
                    assert task[key]["tasks_from"] in entry_points(role), (str(path.relative_to(ROLES)), task[key])


def task_files_of_main(role):
    """The task files a role's main entry point runs (static and dynamic includes of its own files)."""
    seen, queue = [], ["main.yml"]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.append(name)
        for task in tasks_in(yaml.safe_load((ROLES / role / "tasks" / name).read_text()) or []):
            for key in TASK_FILES:
                if key in task:
                    target = task[key] if isinstance(task[key], str) else task[key].get("file")
                    queue.extend(part for part in re.findall(r"[a-z_]+\.yml", target) if part != "absent.yml")
    return seen


def test_the_build_roles_create_nothing():
    for role in BUILD_ROLES:
        for name in task_files_of_main(role):
            for task in tasks_in(yaml.safe_load((ROLES / role / "tasks" / name).read_text()) or []):
                assert not set(task) & set(APPLIERS), (role, name, task.get("name"))
                for key in INCLUDES:
                    if key in task:
                        assert task[key]["name"] != "gpuinfer.serving.manifests", (role, name, task.get("name"))


def facts_set_by(role):
    names = set()
    for path in (ROLES / role / "tasks").glob("*.yml"):
        for task in tasks_in(yaml.safe_load(path.read_text()) or []):
            facts = task.get("ansible.builtin.set_fact") or {}
            names |= {key for key in facts if key != "cacheable"}
            if task.get("register"):
                names.add(task["register"])
    return names


def test_the_deploy_role_reads_outputs_not_other_roles_inputs():
    outputs = set()
    for role in BUILD_ROLES:
        outputs |= facts_set_by(role)
    # Comments left out: they may name what a published fact was made from.
    text = "\n".join(re.sub(r"(^|\s)#.*", "", path.read_text()) for path in sorted((ROLES / "deploy").glob("*/*.yml")))
    passed = set()
    for path in (ROLES / "deploy" / "tasks").glob("*.yml"):
        for task in tasks_in(yaml.safe_load(path.read_text()) or []):
            if set(task) & set(INCLUDES):
                passed |= set(task.get("vars") or {})
    # The manifests role's own inputs and its result are the deploy's to set and read.
    read = {name for name in re.findall(r"\b[a-z][a-z0-9_]*\b", text)
            if name.startswith(OTHER_ROLE_PREFIXES) and not name.startswith("manifests_")}
    # Filters and lookups named like variables (gpuinfer.serving.model_cache_existing_problems).
    read -= {name for name in read if re.search(r"gpuinfer\.serving\.%s\b" % name, text)}
    unexpected = read - outputs - passed - READ_BEFORE_THE_ENGINE_ROLE
    assert not unexpected, "the deploy role reads another role's input variables: %s" % sorted(unexpected)
    # And what it does read are real outputs: the producers set each one.
    assert {"model_cache_resolved", "model_cache_files", "model_cache_wait", "inference_common_built",
            "inference_common_wait_settings", "inference_service_resolved", "inference_service_endpoint"} <= read


def test_the_outputs_the_deploy_reads_are_documented():
    readmes = {role: (ROLES / role / "README.md").read_text() for role in ("model_cache", "inference_common", "inference_service")}
    for role, facts in {"model_cache": ("model_cache_resolved", "model_cache_files", "model_cache_wait",
                                        "model_cache_secret_objects", "model_cache_job_name"),
                        "inference_common": ("inference_common_built", "inference_common_wait_settings"),
                        "inference_service": ("inference_service_resolved", "inference_service_endpoint")}.items():
        outputs = readmes[role].split("## Outputs", 1)[1].split("\n## ", 1)[0]
        for fact in facts:
            assert "`%s`" % fact in outputs, (role, fact)
