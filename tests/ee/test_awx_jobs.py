"""Every job template of awx/config.yml, launched the way AWX launches it, against the simulated cluster.

For each template: the survey's defaults (awx/surveys.generated.yml) as extra vars, the attached
credentials rendered through their credential types' injectors (env vars, extra vars, files under
the job's private data dir), the inventory of awx/config.yml, and `ansible-runner run` inside the EE
with --network=host. The workflow's order is followed: plan -> validate -> deploy -> verify, then the
other templates (deploy vLLM again: nothing changes; teardown; deploy NIM; install GPU Operator).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import threading
from pathlib import Path

import pytest

from ee_helpers import REPO_ROOT, assert_ok, changed_tasks, e2e, make_private_data_dir, run_in_ee

pytestmark = pytest.mark.ee


def _awx_surveys():
    spec = importlib.util.spec_from_file_location("gpuinfer_awx_surveys_ee", REPO_ROOT / "awx" / "surveys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


surveys = _awx_surveys()
CONFIG = surveys.load_config()
SURVEYS = surveys.build_surveys(CONFIG, surveys.load_argument_specs())
TEMPLATES = {t["name"]: t for t in CONFIG["gpuinfer_awx_job_templates"]}
CRED_TYPES = {t["name"]: t for t in CONFIG["gpuinfer_awx_credential_types"]}
CREDENTIALS = {c["name"]: c for c in CONFIG["gpuinfer_awx_credentials"]}
NGC_KEY = e2e.NGC_KEY
TEMPLATE_REF = re.compile(r"{{\s*([\w.]+)\s*}}")


def survey_defaults(template_name: str) -> dict:
    """What AWX passes when a survey is submitted with its defaults (empty answers are left out)."""
    answers = {}
    for q in SURVEYS.get(template_name, {}).get("spec", []):
        if q["default"] != "":
            answers[q["variable"]] = q["default"]
    return answers


def inject(credential_type: dict, inputs: dict) -> tuple[dict, dict, dict]:
    """AWX's injection of one credential: (env, extra_vars, files). Files land in /runner/env/."""
    injectors = credential_type["injectors"]
    files = {}
    filenames = {}
    for key, template in injectors.get("file", {}).items():
        name = key.split(".", 1)[1]
        filenames[name] = f"/runner/env/cred-{name}"

    def render(template):
        def value(match):
            ref = match.group(1)
            if ref.startswith("tower.filename."):
                return filenames[ref.split(".", 2)[2]]
            return str(inputs.get(ref, ""))
        return TEMPLATE_REF.sub(value, str(template))

    for key, template in injectors.get("file", {}).items():
        files[f"cred-{key.split('.', 1)[1]}"] = render(template)
    env = {k: render(v) for k, v in injectors.get("env", {}).items()}
    extra_vars = {k: render(v) for k, v in injectors.get("extra_vars", {}).items()}
    return env, extra_vars, files


@pytest.fixture(scope="module")
def credential_inputs(sim_bearer):
    """The secrets an AWX admin would have stored in each credential."""
    return {
        "gpuinfer cluster": {"host": sim_bearer.host, "bearer_token": sim_bearer.token, "ssl_ca_cert": sim_bearer.ca_pem,
                             "verify_ssl": True},
        "gpuinfer Hugging Face": {"hf_token": e2e.HF_TOKEN},
        "gpuinfer NGC": {"ngc_api_key": NGC_KEY},
    }


@pytest.fixture(scope="module")
def launch(ee_image, credential_inputs, tmp_path_factory):
    inventory = {"all": {"hosts": {h["name"]: h["variables"] for h in CONFIG["gpuinfer_awx_inventory"]["hosts"]}}}
    pdd = make_private_data_dir(tmp_path_factory.mktemp("awx") / "pdd", inventory=inventory)
    # The stand-in GPU Operator chart of the e2e tier, inside the project (a job sees nothing else).
    shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "charts" / "gpu-operator", pdd / "project" / "charts" / "gpu-operator")
    runs = []

    def _launch(template_name: str, **answers):
        template = TEMPLATES[template_name]
        # AWX: the template's extra vars, then the survey answers, then credential extra vars.
        extravars, env, files = {**CONFIG["gpuinfer_awx_extra_vars"], **survey_defaults(template_name)}, {}, {}
        extravars.update(answers)
        for cred_name in template["credentials"]:
            cred = CREDENTIALS[cred_name]
            e, x, f = inject(CRED_TYPES[cred["credential_type"]], credential_inputs[cred_name])
            env.update(e)
            extravars.update(x)
            files.update(f)
        ident = re.sub(r"\W+", "-", template_name) + f"-{len(runs)}"
        result = run_in_ee(ee_image, pdd, template["playbook"], extravars=extravars, env=env, files=files, ident=ident)
        runs.append((template_name, result.rc, round(result.seconds, 1)))
        for secret in (e2e.HF_TOKEN, NGC_KEY, credential_inputs["gpuinfer cluster"]["bearer_token"]):
            assert secret not in result.stdout, f"{template_name} printed a secret"
        return result

    yield _launch
    print("\nAWX job templates through ansible-runner in the EE (name, rc, seconds):")
    for run in runs:
        print("  %-32s rc=%s %6.1f s" % run)


def test_workflow_plan_validate_deploy_verify_then_each_template(launch, sim_cluster):
    namespace = survey_defaults("gpuinfer deploy")["gpuinfer_namespace"]
    instance = survey_defaults("gpuinfer deploy")["gpuinfer_name"]
    try:
        plan = launch("gpuinfer plan")
        assert_ok(plan)
        assert "verdict" in plan.stdout and "fits" in plan.stdout

        assert_ok(launch("gpuinfer validate"))
        assert not e2e.namespace_exists(sim_cluster, namespace), "validate created something"

        deploy = launch("gpuinfer deploy")
        assert_ok(deploy)
        assert deploy.recap["changed"] > 0
        engine = e2e.wait_for_pods(sim_cluster, namespace, f"app.kubernetes.io/name=vllm,app.kubernetes.io/instance={instance}", 1)
        assert engine and e2e.gpu_request(engine[0]) > 0
        product = e2e.node(sim_cluster, engine[0]["spec"]["nodeName"])["metadata"]["labels"]["nvidia.com/gpu.product"]
        assert product == "NVIDIA-A100-SXM4-80GB"
        # The Hugging Face credential's injection became the Secret the pod references.
        env_by_name = {e["name"]: e for e in engine[0]["spec"]["containers"][0]["env"]}
        assert env_by_name["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "HF_TOKEN"

        verify = launch("gpuinfer verify")
        assert_ok(verify)
        assert "select Ready pods" in verify.stdout

        before = e2e.snapshot(sim_cluster, namespace)
        again = launch("gpuinfer deploy vLLM")
        assert_ok(again)
        # Every AWX job starts from a fresh container: only the plan files (in /tmp) are written again.
        assert all(t.startswith("gpuinfer.serving.plan : ") for t in changed_tasks(again.stdout)), changed_tasks(again.stdout)
        assert e2e.snapshot(sim_cluster, namespace) == before

        # Day 2 templates: one replica made a ReadWriteOnce cache, which two replicas on two nodes cannot share,
        # so scale is refused before anything changes; one revision recorded, so rollback has nothing to return to.
        scale = launch("gpuinfer scale", gpuinfer_replicas=2)
        assert scale.rc != 0 and "access mode cannot change" in scale.stdout, scale.stdout[-3000:]
        rollback = launch("gpuinfer rollback")
        assert rollback.rc != 0 and "nothing before it to return to" in rollback.stdout, rollback.stdout[-3000:]
        assert e2e.snapshot(sim_cluster, namespace) == before

        assert_ok(launch("gpuinfer teardown"))
        left = {k for k in e2e.snapshot(sim_cluster, namespace) if not k.startswith("configmaps/kube-root-ca")}
        # teardown keeps the model cache claim unless asked (its survey does not ask).
        assert left <= {f"persistentvolumeclaims/{instance}-model-cache"}, left

        failed_verify = launch("gpuinfer verify")
        assert failed_verify.rc != 0, "verify passed with nothing deployed"

        nim = launch("gpuinfer deploy NIM")
        assert_ok(nim)
        assert e2e.wait_for_pods(sim_cluster, namespace, f"app.kubernetes.io/name=nim,app.kubernetes.io/instance={instance}", 1)
        assert_ok(launch("gpuinfer verify", gpuinfer_engine="nim"))
        assert_ok(launch("gpuinfer teardown"))
    finally:
        sim_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_install_gpu_operator_template(launch, sim_cluster):
    platform = e2e_platform()
    stop = threading.Event()
    operator = threading.Thread(target=platform.mark_ready_when_created, args=(sim_cluster, stop), daemon=True)
    operator.start()
    try:
        # NVIDIA's chart repository is out of reach here: the e2e tier's stand-in chart, as in tests/e2e.
        result = launch("gpuinfer install GPU Operator", gpu_operator_chart_ref="/runner/project/charts/gpu-operator",
                        gpu_operator_namespace=platform.NAMESPACE, gpu_operator_wait_timeout=120, gpu_operator_wait_delay=2)
        assert_ok(result)
        assert result.recap["changed"] > 0
        removed = launch("gpuinfer install GPU Operator", gpu_operator_state="absent",
                         gpu_operator_namespace=platform.NAMESPACE)
        assert_ok(removed)
    finally:
        stop.set()
        operator.join(timeout=10)
        # What Helm leaves behind (as tests/e2e/test_platform_roles.py's remove_everything).
        sim_cluster.kubectl("delete", "crd", "clusterpolicies.nvidia.com", "--ignore-not-found", check=False)
        sim_cluster.kubectl("delete", "namespace", platform.NAMESPACE, "--wait=false", check=False)


def e2e_platform():
    spec = importlib.util.spec_from_file_location("gpuinfer_e2e_platform", REPO_ROOT / "tests" / "e2e" / "test_platform_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
