"""AWX / Automation Controller configuration as code (awx/) and the execution environment definitions.

Static checks, no AWX and no container engine needed:
- every survey question comes from a role option (meta/argument_specs.yml) with a compatible type,
  the same choices and a default it accepts; no survey asks for a secret or uses a dotted name;
- awx/surveys.generated.yml is what awx/surveys.py generates now;
- every job template's playbook exists, the workflow's nodes are job templates, credential injectors
  only set what the collection reads;
- the awx.awx playbook and the AWX wrapper playbooks pass `ansible-playbook --syntax-check` and
  `ansible-lint --profile production`;
- execution-environment.yml (ansible-builder v3) and the collection's meta/execution-environment.yml
  are valid and reference what tests/ee/prepare_files.py writes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "collections" / "ansible_collections" / "gpuinfer" / "serving"
BIN = Path(sys.executable).parent
AWX_PLAYBOOKS = ["awx/configure.yml", "awx/playbooks/validate.yml", "awx/playbooks/verify.yml"]


def _load_surveys_module():
    spec = importlib.util.spec_from_file_location("gpuinfer_awx_surveys", REPO / "awx" / "surveys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


surveys = _load_surveys_module()
CONFIG = surveys.load_config()
OPTIONS = surveys.load_argument_specs()
GENERATED = yaml.safe_load((REPO / "awx" / "surveys.generated.yml").read_text(encoding="utf-8"))["gpuinfer_awx_surveys"]
TEMPLATES = {t["name"]: t for t in CONFIG["gpuinfer_awx_job_templates"]}
WORKFLOWS = {w["name"]: w for w in CONFIG["gpuinfer_awx_workflows"]}
# AWX survey type -> argument_spec types it can feed.
COMPATIBLE = {"text": {"str", "path", "raw"}, "textarea": {"str", "raw"}, "integer": {"int"}, "float": {"float"},
              "multiplechoice": {"str", "int", "bool"}}


def all_questions():
    for owner, survey in GENERATED.items():
        for q in survey["spec"]:
            yield owner, q


def option_for(variable: str) -> tuple[str, dict]:
    entry = next(e for key, e in CONFIG["gpuinfer_awx_survey_questions"].items() if e.get("variable", key) == variable)
    return entry["spec"], OPTIONS[entry["spec"]]


def test_generated_surveys_are_current():
    assert surveys.main(["--check"]) == 0, "run .venv/bin/python awx/surveys.py"


def test_every_template_with_a_survey_has_its_generated_spec():
    for name, item in {**TEMPLATES, **WORKFLOWS}.items():
        if item.get("survey"):
            assert name in GENERATED, name
            assert [q["variable"] for q in GENERATED[name]["spec"]] == [
                CONFIG["gpuinfer_awx_survey_questions"][k].get("variable", k) for k in item["survey"]
            ]


@pytest.mark.parametrize("owner,question", list(all_questions()), ids=lambda v: v if isinstance(v, str) else v["variable"])
def test_survey_question_matches_its_argument_spec(owner, question):
    ref, option = option_for(question["variable"])
    opt_type = option.get("type", "str")
    assert opt_type in COMPATIBLE[question["type"]], f"{owner}: {question['variable']} is {question['type']}, {ref} is {opt_type}"
    if option.get("choices"):
        assert question["type"] == "multiplechoice"
        assert question["choices"] == [str(c) for c in option["choices"]]
    if question["type"] == "multiplechoice" and question["default"] != "":
        assert question["default"] in question["choices"]
    if question["type"] in ("integer", "float") and question["default"] != "":
        assert question["min"] <= question["default"] <= question["max"]
    if "default" in option and option["default"] not in (None, ""):
        assert str(question["default"]) == str(option["default"]), f"{owner}: default differs from {ref}"
    variable = question["variable"]
    if variable != ref.rsplit(".", 1)[-1]:
        # A shared variable standing in for a role option: the option must document it as its default,
        # with the same fallback value the survey offers.
        description = " ".join(option["description"]) if isinstance(option["description"], list) else option["description"]
        assert f"C({variable})" in description, f"{ref} does not document {variable} as its default"
        assert question["default"] in description, f"{ref}'s fallback is not {question['default']!r}"


@pytest.mark.parametrize("owner,question", list(all_questions()), ids=lambda v: v if isinstance(v, str) else v["variable"])
def test_no_survey_asks_for_a_secret_or_uses_a_dotted_name(owner, question):
    ref, option = option_for(question["variable"])
    assert question["type"] != "password", owner
    assert not option.get("no_log"), f"{owner}: {ref} is no_log; secrets are credentials"
    assert not surveys.SECRET_WORDS.search(question["variable"]), owner
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", question["variable"]), owner


def test_survey_generator_refuses_secrets_and_unknown_options():
    with pytest.raises(surveys.SurveyError, match="secret"):
        surveys.question("model_cache_hf_token", {"spec": "model_cache.main.model_cache_hf_token"}, OPTIONS)
    with pytest.raises(surveys.SurveyError, match="not an option"):
        surveys.question("plan_colour", {"spec": "plan.main.plan_colour"}, OPTIONS)
    with pytest.raises(surveys.SurveyError, match="identifier"):
        surveys.question("x", {"spec": "plan.main.plan_gpu", "variable": "plan.gpu"}, OPTIONS)


def test_the_issue_s_survey_fields_are_asked_by_the_workflow():
    asked = {q["variable"] for q in GENERATED["gpuinfer plan, validate, deploy, verify"]["spec"]}
    # model, GPU product, engine, replicas, context length, concurrency, autoscaling
    assert {"plan_model", "plan_gpu", "gpuinfer_engine", "plan_replicas", "plan_max_model_len",
            "plan_min_concurrency", "inference_service_autoscaling"} <= asked


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_job_template_playbook_exists(name):
    playbook = REPO / TEMPLATES[name]["playbook"]
    assert playbook.is_file(), f"{name}: {playbook} does not exist"


def test_required_job_templates_and_workflow():
    playbooks = {t["playbook"] for t in TEMPLATES.values()}
    for required in ("playbooks/plan.yml", "awx/playbooks/validate.yml", "playbooks/install_gpu_operator.yml",
                     "playbooks/deploy_vllm.yml", "playbooks/deploy_nim.yml", "awx/playbooks/verify.yml",
                     "playbooks/teardown.yml"):
        assert required in playbooks
    (workflow,) = WORKFLOWS.values()
    nodes = {n["identifier"]: n for n in workflow["nodes"]}
    for node in nodes.values():
        assert node["job_template"] in TEMPLATES
        assert set(node["success"]) <= set(nodes)
    # plan -> validate -> deploy -> verify -> benchmark
    chain, current = [], "plan"
    while current:
        chain.append(TEMPLATES[nodes[current]["job_template"]]["playbook"])
        current = (nodes[current]["success"] or [None])[0]
    assert chain == ["playbooks/plan.yml", "awx/playbooks/validate.yml", "playbooks/site.yml", "awx/playbooks/verify.yml",
                     "playbooks/benchmark.yml"]


def test_credentials_and_their_types():
    types = {t["name"]: t for t in CONFIG["gpuinfer_awx_credential_types"]}
    creds = {c["name"]: c for c in CONFIG["gpuinfer_awx_credentials"]}
    for cred in creds.values():
        assert cred["credential_type"] in types
        ids = {f["id"] for f in types[cred["credential_type"]]["inputs"]["fields"]}
        assert set(cred["inputs"]) == ids
        # Secrets come from the environment at configure time, never from the file.
        for field in types[cred["credential_type"]]["inputs"]["fields"]:
            if field.get("secret"):
                assert "lookup(" in str(cred["inputs"][field["id"]])
    for template in TEMPLATES.values():
        assert set(template["credentials"]) <= set(creds), template["name"]


def test_credential_injectors_set_only_what_the_collection_reads():
    fragment = (COLLECTION / "plugins" / "doc_fragments" / "k8s_auth.py").read_text(encoding="utf-8")
    k8s_env = set(re.findall(r"E\((K8S_AUTH_[A-Z_]+)\)", fragment))
    role_options = {ref.rsplit(".", 1)[-1] for ref in OPTIONS}
    for ctype in CONFIG["gpuinfer_awx_credential_types"]:
        fields = {f["id"] for f in ctype["inputs"]["fields"]}
        injectors = ctype["injectors"]
        files = {k.split(".", 1)[1] for k in injectors.get("file", {})}
        assert set(injectors.get("env", {})) <= k8s_env, ctype["name"]
        assert set(injectors.get("extra_vars", {})) <= role_options, ctype["name"]
        assert set(ctype["inputs"].get("required", [])) <= fields
        for value in [*injectors.get("env", {}).values(), *injectors.get("extra_vars", {}).values(),
                      *injectors.get("file", {}).values()]:
            for ref in re.findall(r"{{\s*([\w.]+)\s*}}", str(value)):
                if ref.startswith("tower.filename."):
                    assert ref.split(".", 2)[2] in files, (ctype["name"], ref)
                else:
                    assert ref in fields, (ctype["name"], ref)
        secret_fields = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
        assert secret_fields, f"{ctype['name']} holds no secret: it should be a survey answer instead"


@pytest.mark.parametrize("playbook", AWX_PLAYBOOKS)
def test_awx_playbooks_pass_syntax_check(playbook):
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", playbook], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_awx_playbooks_pass_ansible_lint_production():
    proc = subprocess.run([str(BIN / "ansible-lint"), "--nocolor", "--profile", "production", "--offline", "awx/"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_execution_environment_definition_is_valid_v3():
    from ansible_builder.ee_schema import validate_schema

    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text(encoding="utf-8"))
    validate_schema(ee)
    assert ee["version"] == 3
    # The default base is the usual upstream EE; tests override EE_BASE_IMAGE.
    assert ee["images"]["base_image"]["name"].startswith("quay.io/ansible/")
    galaxy = {Path(c["name"]).name for c in ee["dependencies"]["galaxy"]["collections"]}
    assert galaxy == {"gpuinfer-serving.tar.gz", "kubernetes-core.tar.gz"}
    steps = "\n".join(ee["additional_build_steps"]["append_final"])
    assert "/usr/local/bin/helm" in steps
    assert any(f["src"] == "out/ee/files" for f in ee["additional_build_files"])


def test_collection_execution_environment_meta():
    meta = yaml.safe_load((COLLECTION / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert meta["version"] == 1
    python = COLLECTION / meta["dependencies"]["python"]
    assert python.is_file()
    reqs = [line.split(">")[0].split("=")[0].strip() for line in python.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    assert "kubernetes" in reqs
    # Runtime needs only: none of the development tools.
    assert not {"ansible-lint", "molecule", "pytest", "ansible-builder", "kubernetes-validate"} & set(reqs)
