"""Bad inputs are refused before anything exists, on the simulated cluster (tests/cluster).

Each case runs a playbook with one bad variable (and a fresh namespace and instance name) and checks that the
run fails with a message naming the variable, and that afterwards neither the namespace, nor any object
labelled with the instance, nor the plan folder out/<instance> exists. Every case runs through two playbooks:

- playbooks/site.yml, the collection's own;
- tests/e2e/playbooks/roles_directly.yml, what a user writes: the roles called one after another (plan,
  model_cache, the engine role, inference_service) with no input check of its own. The refusal comes from
  gpuinfer.serving.inputs, which every role depends on.

The check is gpuinfer.serving.check_inputs, the first task of either run, so each case takes a few seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO_ROOT / ".venv" / "bin" / "ansible-playbook"
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
# Kinds the collection creates for an instance (app.kubernetes.io/instance=<gpuinfer_name>).
CREATED_KINDS = "deployments.apps,leaderworkersets.leaderworkerset.x-k8s.io,jobs.batch,persistentvolumeclaims,services"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# (variable, value, how it is passed, expected text in the output besides the variable name, other variables).
# "kv" passes -e name=value (a string, as users type it; Ansible would split a string into a list),
# "json" passes -e '{"name": value}' (typed values).
BAD_INPUTS = [
    ("vllm_extra_args", "notalist", "kv", "must be a list", {}),
    ("vllm_extra_args", ["--a", {"b": 1}], "json", "must be a string", {}),
    ("vllm_extra_env", "HF_HOME=/x", "kv", "must be a list", {}),
    ("vllm_master_port", "99999", "kv", "port number 1-65535", {}),
    ("vllm_image_pull_policy", "always", "kv", "must be one of", {}),
    ("gpuinfer_namespace", "LLM-Serving", "kv", "DNS label", {}),
    ("gpuinfer_namespace", "llm_serving", "kv", "DNS label", {}),
    ("gpuinfer_name", "Llama_70B", "kv", "DNS label", {}),
    ("gpuinfer_name", "a" * 41, "kv", "41 characters", {}),
    ("gpuinfer_api_outage_timeout", "0", "kv", "whole number >= 1", {}),
    ("inference_service_port", "70000", "kv", "port number 1-65535", {}),
    ("inference_service_port", 0, "json", "port number 1-65535", {}),
    ("inference_service_min_replicas", 0, "json", "whole number 1-1000", {}),
    ("inference_service_keda_server_address", "prometheus:9090", "kv", "http:// or https:// URL", {}),
    ("inference_service_servicemonitor_labels", "release=prom", "kv", "must be a dict", {}),
    ("inference_service_scrape_interval", "15", "kv", "duration", {}),
    ("inference_service_expose", "loadbalancer", "kv", "must be one of", {}),
    ("inference_service_scale_down_stabilization_seconds", "7200", "kv", "whole number 0-3600", {}),
    ("model_cache_storage_class", "Bad_SC", "kv", "DNS subdomain", {}),
    ("model_cache_size", "500GB", "kv", "Kubernetes quantity", {}),
    ("model_cache_size", "-5Gi", "kv", "must not be negative", {}),
    ("model_cache_shm_size_override", "lots", "kv", "Kubernetes quantity", {}),
    ("model_cache_mount_path", "models", "kv", "absolute path", {}),
    ("model_cache_hf_token_existing_secret", "HF_Token", "kv", "DNS subdomain", {}),
    ("model_cache_headroom", "-1", "kv", "number 0-10", {}),
    ("model_cache_access_mode", "RWX", "kv", "must be one of", {}),
    ("model_cache_download_node_selector", "gpu", "kv", "must be a dict", {}),
    ("inference_common_cpu_request", "two", "kv", "Kubernetes quantity", {}),
    ("inference_common_memory_limit", "8 GiB", "json", "Kubernetes quantity", {}),
    ("inference_common_shm_size", "16GB", "kv", "Kubernetes quantity", {}),
    ("inference_common_extra_tolerations", "nvidia.com/gpu", "kv", "must be a list", {}),
    ("inference_common_node_selector", {"pool": True}, "json", "must be a string", {}),
    ("inference_common_rdma_count", "0", "kv", "whole number 1-64", {}),
    ("inference_common_priority_class", "High", "kv", "DNS subdomain", {}),
    ("inference_common_probe_period_seconds", "0", "kv", "whole number 1-3600", {}),
    ("plan_gpu_memory_utilization", "1.5", "kv", "number > 0 and <= 1", {}),
    ("plan_tensor_parallel_size", "0", "kv", "whole number 1-64", {}),
    ("nim_extra_args", "--x", "kv", "must be a list", {"gpuinfer_engine": "nim"}),
    ("nim_run_as_user", "-1", "kv", "whole number 0-2147483647", {"gpuinfer_engine": "nim"}),
    # Misspelled variable names: no role declares them, and the message names the closest declared one.
    ("plan_modle", "x", "kv", "did you mean plan_model", {}),
    ("inference_service_autoscalling", "hpa", "kv", "did you mean inference_service_autoscaling", {}),
    ("plan_gpus_per_nodes", "8", "kv", "did you mean plan_gpus_per_node", {}),
    ("inference_service_autoscaling", "HPA", "kv", "must be one of", {}),
]
# The playbooks every case runs through (relative to the repository root), with a short id.
PLAYBOOKS = {
    "site": "playbooks/site.yml",
    "roles": "tests/e2e/playbooks/roles_directly.yml",
}
CASES = [(playbook, n) + case for playbook in PLAYBOOKS for n, case in enumerate(BAD_INPUTS)]


def test_the_table_is_large_enough():
    assert len(BAD_INPUTS) >= 30
    assert len({case[0] for case in BAD_INPUTS}) >= 25


def test_every_playbook_exists():
    for playbook in PLAYBOOKS.values():
        assert (REPO_ROOT / playbook).is_file(), playbook


@pytest.mark.parametrize("playbook, n, variable, value, how, expected, others", CASES,
                         ids=["%s-%02d-%s" % (case[0], case[1], case[2]) for case in CASES])
def test_bad_input_fails_before_anything_exists(sim_cluster, playbook, n, variable, value, how, expected, others):
    default_namespace = "bad-input-%s-%d" % (playbook, n)
    namespace = default_namespace
    name = "badin-%s-%d" % (playbook, n)
    variables = {
        "gpuinfer_kubeconfig": sim_cluster.kubeconfig,
        "gpuinfer_namespace": namespace,
        "gpuinfer_name": name,
        "model_cache_hf_token_existing_secret": "hf-token",
    }
    variables.update(others)
    if variable == "gpuinfer_namespace":
        namespace = value
    if variable == "gpuinfer_name":
        name = value
    args = [str(ANSIBLE_PLAYBOOK), PLAYBOOKS[playbook], "-i", "inventories/llama70b-tp8", "-i", "inventories/sim",
            "-e", json.dumps(variables)]
    if how == "kv":
        args += ["-e", "%s=%s" % (variable, value)]
    else:
        args += ["-e", json.dumps({variable: value})]
    env = dict(sim_cluster.env, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    raw = proc.stdout + proc.stderr
    # The YAML callback folds long lines and doubles single quotes: compare on normalized text.
    output = " ".join(raw.replace("''", "'").split())

    assert proc.returncode != 0, raw[-4000:]
    assert "Traceback" not in raw, raw[-4000:]
    assert variable in output, raw[-4000:]
    assert "Bad input, nothing was created:" in output, raw[-4000:]
    assert expected in output, raw[-4000:]
    recaps = RECAP.findall(proc.stdout)
    assert recaps and int(recaps[-1][1]) == 0, "something changed:\n" + raw[-4000:]

    # Nothing exists afterwards: no namespace, no object of the instance anywhere.
    assert sim_cluster.kubectl("get", "namespace", namespace, check=False).returncode != 0
    if namespace != default_namespace:
        assert sim_cluster.kubectl("get", "namespace", default_namespace, check=False).returncode != 0
    assert LABEL_VALUE.match(name) and len(name) <= 63
    listed = sim_cluster.kubectl("get", CREATED_KINDS, "-A", "-l", "app.kubernetes.io/instance=%s" % name, "-o", "name")
    assert listed.stdout.strip() == "", listed.stdout
    # Nor a file: the plan role writes out/<instance>/plan.yml only after the check.
    assert not (REPO_ROOT / "out" / name).exists(), "plan files written for %s" % name
