"""The real playbooks, run with ansible-playbook against the simulated cluster (tests/cluster).

What a user would check after `ansible-playbook playbooks/site.yml`: the engine pods are bound
to nodes of the planned GPU product with the planned GPU count, a multi-node plan really spans
distinct nodes, the Service points at the engine (the leader for LeaderWorkerSet), a second run
changes nothing, --check changes nothing, a plan that cannot run is refused before any object
exists, and teardown leaves the namespace empty.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO_ROOT / ".venv" / "bin" / "ansible-playbook"
HF_TOKEN = "hf_e2e_not_a_real_token_4f9c"
NGC_KEY = "nvapi-e2e-not-a-real-key-77d1"

# Kinds the collection creates in a namespace, for before/after snapshots.
NAMESPACED_KINDS = (
    "deployments.apps",
    "leaderworkersets.leaderworkerset.x-k8s.io",
    "statefulsets.apps",
    "services",
    "poddisruptionbudgets.policy",
    "horizontalpodautoscalers.autoscaling",
    "persistentvolumeclaims",
    "jobs.batch",
    "secrets",
    "configmaps",
)
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def run_playbook(sim, playbook, scenario, namespace, *extra_args, check=False, extra_vars=None):
    variables = {
        "gpuinfer_kubeconfig": sim.kubeconfig,
        "gpuinfer_namespace": namespace,
        # The inventories name existing Secrets; here the collection creates them from values.
        "model_cache_hf_token": HF_TOKEN,
        "model_cache_hf_token_existing_secret": "",
        "model_cache_ngc_api_key": NGC_KEY,
        "model_cache_ngc_existing_secret": "",
        "model_cache_pull_existing_secret": "",
    }
    variables.update(extra_vars or {})
    args = [
        str(ANSIBLE_PLAYBOOK),
        "-i", "inventories/%s" % scenario,
        "-i", "inventories/sim",
        "playbooks/%s" % playbook,
        "-e", json.dumps(variables),
        *extra_args,
    ]
    if check:
        args.append("--check")
    env = dict(sim.env, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    recaps = RECAP.findall(proc.stdout)
    recap = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recaps[-1]))) if recaps else None
    return proc, recap


def assert_ok(proc):
    assert proc.returncode == 0, "rc=%s\n%s\n%s" % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:])


def kubectl_json(sim, *args):
    out = sim.kubectl(*args, "-o", "json").stdout
    return json.loads(out)


def snapshot(sim, namespace):
    """{kind/name: resourceVersion} of everything the collection could have touched."""
    objects = {}
    for kind in NAMESPACED_KINDS:
        proc = sim.kubectl("get", kind, "-n", namespace, "-o", "json", check=False)
        if proc.returncode != 0:
            continue
        for item in json.loads(proc.stdout)["items"]:
            if item["metadata"]["name"].startswith("kube-root-ca") or item["metadata"]["name"] == "default":
                continue
            objects["%s/%s" % (kind, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    return objects


def pods(sim, namespace, selector):
    return kubectl_json(sim, "get", "pods", "-n", namespace, "-l", selector)["items"]


def wait_for_pods(sim, namespace, selector, count, timeout=120):
    deadline = time.time() + timeout
    while True:
        items = [p for p in pods(sim, namespace, selector) if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
        if len(items) >= count or time.time() > deadline:
            return items
        time.sleep(2)


def node(sim, name):
    return kubectl_json(sim, "get", "node", name)


def gpu_request(pod):
    return sum(int(c.get("resources", {}).get("requests", {}).get("nvidia.com/gpu", 0)) for c in pod["spec"]["containers"])


def namespace_exists(sim, namespace):
    return sim.kubectl("get", "namespace", namespace, check=False).returncode == 0


def teardown(sim, scenario, namespace):
    proc, _ = run_playbook(sim, "teardown.yml", scenario, namespace, extra_vars={"gpuinfer_teardown_cache": True})
    assert_ok(proc)
    remaining = snapshot(sim, namespace)
    # Only what Kubernetes itself puts in every namespace may remain.
    assert not {k: v for k, v in remaining.items() if not k.startswith("configmaps/kube-root-ca")}, remaining
    sim.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def deployed(sim_cluster, request):
    """Deploy a scenario with site.yml once; tear it down after the test."""
    created = []

    def deploy(scenario, namespace, **extra_vars):
        proc, recap = run_playbook(sim_cluster, "site.yml", scenario, namespace, extra_vars=extra_vars)
        created.append((scenario, namespace))
        assert_ok(proc)
        return proc, recap

    yield deploy
    for scenario, namespace in created:
        teardown(sim_cluster, scenario, namespace)


def test_llama70b_tp8_lands_on_one_a100_node_idempotent_and_check_mode_safe(sim_cluster, deployed):
    namespace = "e2e-llama70b"
    proc, first = deployed("llama70b-tp8", namespace)
    assert first["changed"] > 0
    # The verify step ran after the engine was Ready; kwok starts no container, so there is no log to compare.
    said = " ".join(proc.stdout.split())
    assert "has no GPU KV cache size line" in said and "Verification skipped." in said

    engine = wait_for_pods(sim_cluster, namespace, "app.kubernetes.io/name=vllm,app.kubernetes.io/instance=llama-3-1-70b", 1)
    assert len(engine) == 1
    pod = engine[0]
    assert gpu_request(pod) == 8
    labels = node(sim_cluster, pod["spec"]["nodeName"])["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    args = pod["spec"]["containers"][0]["args"]
    assert "--tensor-parallel-size=8" in args and "--pipeline-parallel-size=1" in args
    # The token reached the pod by reference only.
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "HF_TOKEN"
    assert HF_TOKEN not in json.dumps(pod)
    assert HF_TOKEN not in proc.stdout

    service = kubectl_json(sim_cluster, "get", "service", "-n", namespace, "llama-3-1-70b")
    selected = pods(sim_cluster, namespace, ",".join("%s=%s" % kv for kv in service["spec"]["selector"].items()))
    assert [p["metadata"]["name"] for p in selected] == [pod["metadata"]["name"]]
    claim = kubectl_json(sim_cluster, "get", "pvc", "-n", namespace, "llama-3-1-70b-model-cache")
    assert claim["status"]["phase"] == "Bound"

    before = snapshot(sim_cluster, namespace)
    proc, second = run_playbook(sim_cluster, "site.yml", "llama70b-tp8", namespace)
    assert_ok(proc)
    assert second["changed"] == 0, proc.stdout[-6000:]
    assert snapshot(sim_cluster, namespace) == before

    proc, checked = run_playbook(sim_cluster, "site.yml", "llama70b-tp8", namespace, check=True,
                                 extra_vars={"plan_max_model_len": 65536})
    assert_ok(proc)
    assert checked["changed"] > 0  # check mode reports the change of context length...
    assert snapshot(sim_cluster, namespace) == before  # ...and makes none


def test_llama405b_tp8_pp2_spans_two_h100_nodes_through_leaderworkerset(sim_cluster, deployed):
    namespace = "e2e-llama405b"
    deployed("llama405b-tp8-pp2", namespace)

    lws = kubectl_json(sim_cluster, "get", "leaderworkerset", "-n", namespace, "llama-3-1-405b-vllm")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"

    group = wait_for_pods(sim_cluster, namespace, "leaderworkerset.sigs.k8s.io/name=llama-3-1-405b-vllm", 2)
    assert len(group) == 2
    nodes = {p["spec"]["nodeName"] for p in group}
    assert len(nodes) == 2, "both pipeline stages landed on one node"
    for pod in group:
        assert gpu_request(pod) == 8
        assert node(sim_cluster, pod["spec"]["nodeName"])["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        env_names = {e["name"] for e in pod["spec"]["containers"][0].get("env", [])}
        # Injected by the LeaderWorkerSet webhook: proves the group was formed by LWS, not by us.
        assert "LWS_LEADER_ADDRESS" in env_names

    leader = [p for p in group if p["metadata"]["labels"].get("leaderworkerset.sigs.k8s.io/worker-index") == "0"]
    assert len(leader) == 1
    service = kubectl_json(sim_cluster, "get", "service", "-n", namespace, "llama-3-1-405b")
    selected = pods(sim_cluster, namespace, ",".join("%s=%s" % kv for kv in service["spec"]["selector"].items()))
    assert [p["metadata"]["name"] for p in selected] == [leader[0]["metadata"]["name"]]

    before = snapshot(sim_cluster, namespace)
    proc, second = run_playbook(sim_cluster, "site.yml", "llama405b-tp8-pp2", namespace)
    assert_ok(proc)
    assert second["changed"] == 0, proc.stdout[-6000:]
    assert snapshot(sim_cluster, namespace) == before


def test_nim_llama70b_on_eight_gpus(sim_cluster, deployed):
    namespace = "e2e-nim"
    proc, _ = deployed("nim-llama70b", namespace)
    engine = wait_for_pods(sim_cluster, namespace, "app.kubernetes.io/name=nim,app.kubernetes.io/instance=nim-llama-3-1-70b", 1)
    assert len(engine) == 1
    pod = engine[0]
    assert gpu_request(pod) == 8
    assert node(sim_cluster, pod["spec"]["nodeName"])["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    # NIM 2.x documents no NIM_TENSOR_PARALLEL_SIZE: the size goes through NIM_PASSTHROUGH_ARGS.
    assert "--tensor-parallel-size=8" in env["NIM_PASSTHROUGH_ARGS"]["value"].split()
    assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "NGC_API_KEY"
    assert pod["spec"]["imagePullSecrets"]
    assert NGC_KEY not in json.dumps(pod) and NGC_KEY not in proc.stdout
    assert pod["spec"]["securityContext"]["fsGroup"]


def test_nim_llama405b_forms_a_ray_group_on_two_h100_nodes(sim_cluster, deployed):
    namespace = "e2e-nim-multinode"
    deployed("nim-llama405b-multinode", namespace)
    lws = kubectl_json(sim_cluster, "get", "leaderworkerset", "-n", namespace, "nim-llama-3-1-405b-nim")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2

    group = wait_for_pods(sim_cluster, namespace, "leaderworkerset.sigs.k8s.io/name=nim-llama-3-1-405b-nim", 2)
    assert len(group) == 2
    assert len({p["spec"]["nodeName"] for p in group}) == 2, "both pipeline stages landed on one node"
    by_index = {p["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"]: p for p in group}
    leader, worker = by_index["0"]["spec"]["containers"][0], by_index["1"]["spec"]["containers"][0]
    # What NVIDIA documents (and its NIM Operator renders) for NIM 2.x multi-node: a Ray head that serves
    # the API, and workers that join it at the LWS leader's address.
    assert leader["args"] == ["nim-serve-ray", "--head", "--port", "6379"]
    assert worker["args"] == ["nim-serve-ray", "--head-address", "$(LWS_LEADER_ADDRESS):6379"]
    for pod in group:
        assert gpu_request(pod) == 8
        assert node(sim_cluster, pod["spec"]["nodeName"])["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert "LWS_LEADER_ADDRESS" in env and env["NIM_PIPELINE_PARALLEL_SIZE"]["value"] == "2"
    service = kubectl_json(sim_cluster, "get", "service", "-n", namespace, "nim-llama-3-1-405b")
    selected = pods(sim_cluster, namespace, ",".join("%s=%s" % kv for kv in service["spec"]["selector"].items()))
    assert [p["metadata"]["name"] for p in selected] == [by_index["0"]["metadata"]["name"]]


def test_sglang_llama405b_runs_its_server_on_two_h100_nodes(sim_cluster, deployed):
    """The third engine through the same playbooks: only gpuinfer_engine differs from the vLLM scenario."""
    namespace = "e2e-sglang"
    deployed("sglang-llama405b-multinode", namespace)
    lws = kubectl_json(sim_cluster, "get", "leaderworkerset", "-n", namespace, "sglang-llama-3-1-405b-sglang")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2

    group = wait_for_pods(sim_cluster, namespace, "leaderworkerset.sigs.k8s.io/name=sglang-llama-3-1-405b-sglang", 2)
    assert len(group) == 2
    assert len({p["spec"]["nodeName"] for p in group}) == 2, "both pipeline stages landed on one node"
    by_index = {p["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"]: p for p in group}
    for index, pod in by_index.items():
        container = pod["spec"]["containers"][0]
        assert gpu_request(pod) == 8
        assert node(sim_cluster, pod["spec"]["nodeName"])["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert container["image"] == "lmsysorg/sglang:v0.5.23"
        assert container["command"] == ["python3", "-m", "sglang.launch_server"]
        # SGLang's documented multi-node launch, with the group's values the LWS webhook injects.
        args = container["args"]
        assert "--tp-size=8" in args and "--pp-size=2" in args
        assert "--nnodes=$(LWS_GROUP_SIZE)" in args
        assert "--dist-init-addr=$(LWS_LEADER_ADDRESS):20000" in args
        assert ("--node-rank=0" if index == "0" else "--node-rank=$(LWS_WORKER_INDEX)") in args
        env = {e["name"] for e in container.get("env", [])}
        assert {"LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX"} <= env
    assert by_index["0"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/ready"
    service = kubectl_json(sim_cluster, "get", "service", "-n", namespace, "sglang-llama-3-1-405b")
    selected = pods(sim_cluster, namespace, ",".join("%s=%s" % kv for kv in service["spec"]["selector"].items()))
    assert [p["metadata"]["name"] for p in selected] == [by_index["0"]["metadata"]["name"]]
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"

    before = snapshot(sim_cluster, namespace)
    proc, second = run_playbook(sim_cluster, "site.yml", "sglang-llama405b-multinode", namespace)
    assert_ok(proc)
    assert second["changed"] == 0, proc.stdout[-6000:]
    assert snapshot(sim_cluster, namespace) == before


def test_nodes_with_a_driver_too_old_for_the_image_are_refused(sim_cluster):
    namespace = "e2e-old-driver"
    # The simulated L40S pool runs R550; vllm/vllm-openai:v0.34.0 is built on CUDA 13.0 (R580+).
    proc, _ = run_playbook(sim_cluster, "site.yml", "llama70b-tp8", namespace, extra_vars={
        "plan_model": "meta-llama/Llama-3.1-8B-Instruct", "plan_gpu": "L40S", "plan_gpus_per_node": 4,
        "plan_tensor_parallel_size": 1, "plan_max_model_len": 8192})
    assert proc.returncode != 0
    assert "DRIVER_TOO_OLD" in proc.stdout and "550.163.01" in proc.stdout
    assert not namespace_exists(sim_cluster, namespace)


def test_check_mode_on_a_fresh_namespace_creates_nothing(sim_cluster):
    namespace = "e2e-check-only"
    proc, recap = run_playbook(sim_cluster, "site.yml", "llama70b-tp8", namespace, check=True)
    assert_ok(proc)
    assert recap["changed"] > 0
    assert not namespace_exists(sim_cluster, namespace)


def test_a_plan_the_cluster_cannot_hold_is_refused_before_anything_is_created(sim_cluster):
    namespace = "e2e-refused"
    # Three 8 x H100 replicas of Llama-3.1-70B: the simulated cluster has two DGX-H100 nodes.
    proc, _ = run_playbook(sim_cluster, "site.yml", "llama70b-tp8", namespace,
                           extra_vars={"plan_gpu": "H100-80GB", "plan_replicas": 3})
    assert proc.returncode != 0
    assert "GPU_CAPACITY" in proc.stdout
    assert not namespace_exists(sim_cluster, namespace)


def test_bad_input_fails_before_anything_is_created(sim_cluster):
    namespace = "e2e-bad-input"
    proc, _ = run_playbook(sim_cluster, "site.yml", "llama70b-tp8", namespace, extra_vars={"gpuinfer_engine": "tgi"})
    assert proc.returncode != 0
    # check_inputs, the first task, names the variable and the registered engines.
    assert "gpuinfer_engine=tgi: allowed nim, sglang, vllm" in " ".join(proc.stdout.split())
    assert not namespace_exists(sim_cluster, namespace)


def test_hpa_on_queue_depth_targets_the_deployment(sim_cluster, deployed):
    namespace = "e2e-hpa"
    deployed("llama70b-tp8", namespace, inference_service_autoscaling="hpa", inference_service_hpa_force=True,
             inference_service_adapter_namespace=namespace, inference_service_max_replicas=3)
    hpa = kubectl_json(sim_cluster, "get", "hpa", "-n", namespace, "llama-3-1-70b")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "llama-3-1-70b-vllm"
    assert hpa["spec"]["maxReplicas"] == 3
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
