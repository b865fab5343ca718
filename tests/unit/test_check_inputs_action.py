"""The gpuinfer.serving.check_inputs action plugin, run by ansible-playbook (ansible-core 2.19 data tagging included):
`-e k=v` strings stay strings, JSON lists stay lists, bad values fail with a message naming the variable,
role argument specs close the string-to-list hole for options the table does not list, and nothing tracebacks."""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"

PLAYBOOK = """\
- name: Check inputs
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Check every input
      gpuinfer.serving.check_inputs:
        engine: "{{ engine | default('vllm') }}"
        extra: "{{ extra_table | default({}) }}"
      register: checked
      ignore_errors: "{{ tolerate | default(true) | bool }}"

    - name: Keep the result
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/result.json"
        content: "{{ {'result': checked, 'extra_args_type': vllm_extra_args | default(none) | type_debug} | to_json }}"
        mode: "0644"
      check_mode: false

    - name: Fail like the real play would
      ansible.builtin.fail:
        msg: "{{ checked.msg }}"
      when: checked is failed
"""


def run(tmp_path, *args, tolerate=True):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    command = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "play.yml", "-e", "tolerate=%s" % tolerate] + list(args)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_CONFIG=str(tmp_path / "none.cfg"))
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    result_file = tmp_path / "result.json"
    data = json.loads(result_file.read_text()) if result_file.exists() else None
    output = " ".join((proc.stdout + proc.stderr).split())
    assert "Traceback" not in proc.stdout + proc.stderr, output[-4000:]
    return proc, data, output


def test_a_string_for_a_list_is_refused_and_arrives_as_a_string(tmp_path):
    proc, data, output = run(tmp_path, "-e", "vllm_extra_args=notalist")
    assert proc.returncode != 0
    assert data["extra_args_type"] == "str"
    result = data["result"]
    assert result["failed"] is True and result["changed"] is False
    assert result["problems"] == [
        "vllm_extra_args=notalist: must be a list such as ['--flag'], got the string 'notalist' "
        "(pass lists as JSON: -e '{\"vllm_extra_args\": [...]}')"]
    assert result["msg"] == "Bad input, nothing was created: " + result["problems"][0]
    assert "vllm_extra_args=notalist" in output


def test_a_json_list_arrives_as_a_list_and_passes(tmp_path):
    proc, data, _output = run(tmp_path, "-e", '{"vllm_extra_args": ["--x"], "inference_service_port": "8080"}')
    assert proc.returncode == 0, _output[-3000:]
    assert data["extra_args_type"] == "list"
    result = data["result"]
    assert result.get("failed") is not True
    assert result["changed"] is False
    assert result["checked"] >= 2


def test_the_real_failure_names_the_variable_and_says_nothing_was_created(tmp_path):
    proc, data, output = run(tmp_path, "-e", "inference_service_port=70000", tolerate=False)
    assert proc.returncode == 2
    assert data is None  # the play stopped at the check
    assert "Bad input, nothing was created: inference_service_port=70000: must be a port number 1-65535" in output


def test_the_issue_holes_are_closed_together(tmp_path):
    proc, data, _output = run(
        tmp_path, "-e", "vllm_extra_args=notalist", "-e", "gpuinfer_namespace=LLM-Serving",
        "-e", "inference_service_port=70000", "-e", "model_cache_storage_class=Bad_SC")
    assert proc.returncode != 0
    problems = data["result"]["problems"]
    assert sorted(p.split("=", 1)[0] for p in problems) == [
        "gpuinfer_namespace", "inference_service_port", "model_cache_storage_class", "vllm_extra_args"]
    assert data["result"]["msg"] == "Bad input, nothing was created: " + "; ".join(problems)


def _options_outside_the_tables():
    """(list or dict option, choices option) that some role declares and no table of module_utils/inputs.py lists."""
    from ansible_collections.gpuinfer.serving.plugins.action import check_inputs
    from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

    table = dict(inputs.SHARED_INPUTS)
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
    for engine_table in [engine.inputs for engine in engines.ENGINES.values()]:
        table.update(engine_table)
    container = choices = None
    for name, specs in sorted(check_inputs.role_option_specs().items()):
        for role, option in specs:
            spec = check_inputs.spec_from_option(option)
            if name in table or spec is None:
                continue
            if spec["check"] == "choices":
                choices = choices or (name, role, option)
            else:
                container = container or (name, role, option)
    return container, choices


def test_argument_spec_list_dict_and_choices_options_outside_the_tables_are_checked(tmp_path):
    container, choices = _options_outside_the_tables()
    if not container or not choices:
        pytest.skip("every list/dict/choices option of the roles is in the tables")
    name, role, option = container
    proc, data, _output = run(tmp_path, "-e", "%s=notacontainer" % name, "-e", "%s=not-a-choice" % choices[0])
    assert proc.returncode != 0
    problems = data["result"]["problems"]
    assert len(problems) == 2, problems
    container_problem = [p for p in problems if p.startswith(name + "=")][0]
    choices_problem = [p for p in problems if p.startswith(choices[0] + "=")][0]
    kind = "list" if option["type"] == "list" else "dict"
    assert container_problem.startswith("%s=notacontainer: must be a %s such as" % (name, kind)), problems
    assert "got the string 'notacontainer'" in container_problem
    assert "(role gpuinfer.serving.%s declares type %s" % (role, option["type"]) in container_problem
    assert choices_problem == "%s=not-a-choice: must be one of: %s (role gpuinfer.serving.%s declares choices)" % (
        choices[0], ", ".join(json.dumps(c) if c == "" else str(c) for c in choices[2]["choices"]), choices[1])


def test_a_new_roles_list_options_are_covered_without_editing_the_table(tmp_path):
    from ansible_collections.gpuinfer.serving.plugins.action import check_inputs

    meta = tmp_path / "roles" / "newrole" / "meta"
    meta.mkdir(parents=True)
    (meta / "argument_specs.yml").write_text(
        "argument_specs:\n"
        "  main:\n"
        "    options: &opts\n"
        "      newrole_flags: {type: list, elements: str, default: []}\n"
        "      newrole_labels: {type: dict, default: {}}\n"
        "      newrole_mode: {type: str, choices: [a, b], default: a}\n"
        "      newrole_count: {type: int, default: 1}\n"
        "      newrole_keys: {type: list, no_log: true}\n"
        "  other:\n"
        "    options:\n"
        "      <<: *opts\n")
    (tmp_path / "roles" / "broken" / "meta").mkdir(parents=True)
    (tmp_path / "roles" / "broken" / "meta" / "argument_specs.yml").write_text("argument_specs: [: not yaml")
    options = check_inputs.role_option_specs(str(tmp_path))
    assert sorted(options) == ["newrole_count", "newrole_flags", "newrole_keys", "newrole_labels", "newrole_mode"]
    assert len(options["newrole_flags"]) == 1  # the same option in two entry points counts once
    assert check_inputs.spec_from_option(options["newrole_flags"][0][1]) == {"check": "list_of_str"}
    assert check_inputs.spec_from_option(options["newrole_labels"][0][1]) == {"check": "dict"}
    assert check_inputs.spec_from_option(options["newrole_mode"][0][1]) == {"check": "choices", "choices": ["a", "b"]}
    assert check_inputs.spec_from_option(options["newrole_count"][0][1]) is None
    assert check_inputs.spec_from_option(options["newrole_keys"][0][1]) == {"check": "list", "secret": True}


def test_every_engine_table_is_checked_whatever_the_engine(tmp_path):
    # The engine roles can be used directly, without gpuinfer_engine: each engine's variables are checked whenever
    # they are defined (their names never overlap).
    for engine in ("nim", "vllm"):
        proc, data, _output = run(tmp_path, "-e", "engine=%s" % engine, "-e", "nim_run_as_user=-1")
        assert proc.returncode != 0
        assert data["result"]["problems"] == ["nim_run_as_user=-1: must be a whole number 0-2147483647"]


def test_extra_table_and_check_mode(tmp_path):
    extra = json.dumps({"extra_table": {"my_port": {"check": "port"}, "my_size": {"check": "quantity", "empty_ok": True}},
                        "my_port": "0", "my_size": ""})
    proc, data, _output = run(tmp_path, "-e", extra, "--check")
    assert proc.returncode != 0
    assert data["result"]["problems"] == ["my_port=0: must be a port number 1-65535"]
    extra = json.dumps({"extra_table": {"my_port": {"check": "portnumber"}}})
    proc, data, _output = run(tmp_path, "-e", extra)
    assert proc.returncode != 0
    assert "extra.my_port must be a spec such as {check: dns_label}" in data["result"]["msg"]


def test_templated_values_are_checked_and_unresolvable_ones_are_skipped(tmp_path):
    values = {"base_port": 69999, "inference_service_port": "{{ base_port + 1 }}",
              "vllm_served_model_name": "{{ gpuinfer_plan.model.hf_id }}"}
    proc, data, _output = run(tmp_path, "-e", json.dumps(values))
    assert proc.returncode != 0
    result = data["result"]
    assert result["problems"] == ["inference_service_port=70000: must be a port number 1-65535"]
    assert "vllm_served_model_name" in result["unresolved"]


def test_odd_values_never_traceback_and_secrets_are_masked(tmp_path):
    values = {"inference_service_port": None, "gpuinfer_name": {"a": [1, {"b": None}]}, "vllm_extra_env": [[1]],
              "model_cache_hf_token": ["hf_do_not_print_me"], "model_cache_size": "1e99999999",
              "inference_common_node_selector": {"1": 2, "x": None}, "gpuinfer_namespace": "\u00fcml\u00e4ut",
              "inference_common_extra_tolerations": "x" * 5000}
    proc, data, output = run(tmp_path, "-e", json.dumps(values))
    assert proc.returncode != 0
    problems = data["result"]["problems"]
    assert len(problems) == len(values)
    assert "hf_do_not_print_me" not in output and "hf_do_not_print_me" not in json.dumps(data)
    assert "model_cache_hf_token='***': must be a string, got a list" in problems


@pytest.mark.parametrize("good", [
    {"gpuinfer_namespace": "llm-serving", "inference_service_port": 8000, "model_cache_storage_class": "",
     "model_cache_size": "", "inference_common_cpu_request": "500m", "vllm_extra_args": [],
     "inference_service_servicemonitor_labels": {"release": "prom"}, "model_cache_access_mode": "ReadWriteMany"},
])
def test_good_values_pass(tmp_path, good):
    proc, data, output = run(tmp_path, "-e", json.dumps(good))
    assert proc.returncode == 0, output[-3000:]
    assert data["result"]["checked"] >= len(good)


@pytest.mark.parametrize("typo, meant", [
    ("plan_modle", "plan_model"),
    ("plan_gpus_per_nodes", "plan_gpus_per_node"),
    ("inference_service_autoscalling", "inference_service_autoscaling"),
    ("vllm_extra_arg", "vllm_extra_args"),
    ("gpuinfer_namesapce", "gpuinfer_namespace"),
])
def test_a_misspelled_variable_is_refused_naming_the_one_meant(tmp_path, typo, meant):
    proc, data, _output = run(tmp_path, "-e", "%s=x" % typo)
    assert proc.returncode != 0
    problems = data["result"]["problems"]
    assert problems[0] == "%s: no role of gpuinfer.serving declares this variable (did you mean %s?)" % (typo, meant)
    assert "gpuinfer_unknown_variables=warn" in problems[-1]
    assert data["result"]["unknown"] == [typo]


def test_unknown_variables_can_be_allowed(tmp_path):
    proc, data, output = run(tmp_path, "-e", "plan_my_own_note=x", "-e", "gpuinfer_unknown_variables=warn")
    assert proc.returncode == 0, output[-3000:]
    assert "plan_my_own_note: no role of gpuinfer.serving declares this variable" in output
    proc, data, output = run(tmp_path, "-e", "plan_my_own_note=x", "-e", "gpuinfer_unknown_variables=ignore")
    assert proc.returncode == 0, output[-3000:]
    assert "plan_my_own_note" not in output.replace("-e plan_my_own_note", "")


def test_every_name_the_collection_sets_itself_is_declared():
    """Facts one role hands to the next, registered results and role parameters are not "unknown"."""
    from ansible_collections.gpuinfer.serving.plugins.action import check_inputs
    declared = check_inputs.declared_names()
    for name in ("plan_model", "gpuinfer_namespace", "gpuinfer_unknown_variables", "model_cache_resolved",
                 "inference_common_built", "inference_service_resolved", "manifests_result", "vllm_engine_settings",
                 "gpuinfer_cluster_facts", "inference_common_engine"):
        assert name in declared, name
    assert "plan_modle" not in declared
