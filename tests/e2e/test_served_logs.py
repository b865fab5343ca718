"""site.yml's verify step reads a real vLLM start-up log through the API server of the simulated cluster.

kwok serves recorded container logs for pods in the namespace ``served-logs``
(tests/cluster/kwok/served-logs.yaml.in, assembled into kwok's --config by tests/cluster/sim.sh):
the ``vllm`` container gets the start-up that vLLM 0.26.0 logged for Llama-3.1-8B-Instruct on one
H200 (tests/fixtures/vllm-boot, case llama8b-u092-mml131k-seq1024-bt8192), the ``benchmark`` container
a real ``vllm bench serve`` stdout (tests/fixtures/vllm-perf/bench/bench-c1.txt).

The deployment is the plan of tests/fixtures/vllm-boot/verify-llama8b-h200.yml, so verify's
planned-vs-actual comparison is the one that log was recorded for. The default node profile has no
H200, so the test adds one simulated H200 node (the hgx-h200 group of profiles/large-2000.yaml) for
its duration and removes it afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO_ROOT / ".venv" / "bin" / "ansible-playbook"
NAMESPACE = "served-logs"
INSTANCE = "llama8b-h200"
INVENTORY = "tests/e2e/inventories/llama8b-h200-served-logs"
VERIFY_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "vllm-boot" / "verify-llama8b-h200.yml"
ENGINE_LOG = REPO_ROOT / "tests" / "fixtures" / "vllm-boot" / "logs" / "llama8b-u092-mml131k-seq1024-bt8192.log"
BENCH_LOG = REPO_ROOT / "tests" / "fixtures" / "vllm-perf" / "bench" / "bench-c1.txt"
KWOK_LOGS = REPO_ROOT / "tests" / "cluster" / "kwok" / "served-logs.yaml.in"
MAKE_NODES = REPO_ROOT / "tests" / "cluster" / "make_nodes.py"
H200_PRODUCT = "NVIDIA-H200"
H200_NODE = "served-logs-h200-0"
# Where site.yml writes the plan files, and verify.json next to them (relative to the repository root,
# where ansible-playbook runs).
OUT_DIR = REPO_ROOT / "out" / INSTANCE
HF_TOKEN = "hf_e2e_not_a_real_token_4f9c"
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def kv_cache_tokens_in(log_text):
    """The engine's own figure: 'GPU KV cache size: 919,824 tokens'."""
    found = re.findall(r"GPU KV cache size: ([\d,]+) tokens", log_text)
    assert len(found) == 1, found
    return int(found[0].replace(",", ""))


def run_playbook(sim, playbook, **extra_vars):
    variables = {
        "gpuinfer_kubeconfig": sim.kubeconfig,
        "gpuinfer_namespace": NAMESPACE,
        # The collection creates the token Secret from this value (nothing reads it: no container runs).
        "model_cache_hf_token": HF_TOKEN,
        "model_cache_hf_token_existing_secret": "",
    }
    variables.update(extra_vars)
    args = [str(ANSIBLE_PLAYBOOK), "-i", INVENTORY, "-i", "inventories/sim", "playbooks/%s" % playbook,
            "-e", json.dumps(variables)]
    env = dict(sim.env, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, "rc=%s\n%s\n%s" % (proc.returncode, proc.stdout[-8000:], proc.stderr[-3000:])
    return proc


def kubectl_json(sim, *args):
    return json.loads(sim.kubectl(*args, "-o", "json").stdout)


def kubectl_logs(sim, pod, container):
    """`kubectl logs` as bytes (the recorded bench output has carriage returns: tqdm's progress bar)."""
    proc = subprocess.run(["kubectl", "logs", "-n", pod["metadata"]["namespace"], pod["metadata"]["name"], "-c", container],
                          env=sim.env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def wait_for(what, probe, timeout=90):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.time() > deadline:
            pytest.fail("timed out after %ss waiting for %s" % (timeout, what), pytrace=False)
        time.sleep(1)


def _make_nodes():
    spec = importlib.util.spec_from_file_location("sim_make_nodes", MAKE_NODES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def h200_node(sim_cluster):
    """One simulated 8 x H200 node, unless the cluster has H200s already (profile large-2000)."""
    have = kubectl_json(sim_cluster, "get", "nodes", "-l", "nvidia.com/gpu.product=%s" % H200_PRODUCT)["items"]
    if have:
        yield None
        return
    make_nodes = _make_nodes()
    profile = make_nodes.load_profile("large-2000")
    group = next(g for g in profile["groups"] if (g.get("gpu") or {}).get("product") == H200_PRODUCT)
    group = dict(group, name=H200_NODE.rsplit("-", 1)[0], count=1, zones=["sim-zone-a"])
    (node,) = make_nodes.build_nodes({"defaults": profile.get("defaults") or {}, "groups": [group]},
                                     sim_cluster.kubernetes_version)
    assert node["metadata"]["name"] == H200_NODE
    sim_cluster.kubectl("create", "-f", "-", input=json.dumps(node))
    try:
        # The API server keeps the status a Node is created with; kwok's node-initialize stage makes it Ready.
        wait_for("node %s Ready" % H200_NODE, lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in kubectl_json(sim_cluster, "get", "node", H200_NODE)["status"].get("conditions") or []))
        yield H200_NODE
    finally:
        sim_cluster.kubectl("delete", "node", H200_NODE, "--ignore-not-found", "--wait=false", check=False)


def test_the_inventory_deploys_the_plan_the_served_log_was_recorded_for():
    fixture = yaml.safe_load(VERIFY_FIXTURE.read_text(encoding="utf-8"))
    inventory = yaml.safe_load((REPO_ROOT / INVENTORY / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8"))
    # Every plan value of the fixture but the GPU memory, which only decides that the plan names no GPU
    # product (the catalog's H200 is what CUDA reported on the recording's GPU, to 64 KiB).
    expected = {k: v for k, v in fixture.items() if k.startswith("plan_") and k != "plan_gpu_memory_gib"}
    assert {k: v for k, v in inventory.items() if k.startswith("plan_")} == expected
    assert inventory["gpuinfer_name"] == fixture["gpuinfer_name"] == INSTANCE
    assert inventory["gpuinfer_namespace"] == NAMESPACE
    # kwok serves that log for the engine container in that namespace.
    documents = list(yaml.safe_load_all(KWOK_LOGS.read_text(encoding="utf-8")))
    (served,) = [d for d in documents if d["kind"] == "ClusterLogs"]
    # kwok serves no log at all unless its debugging handlers are on (see the template).
    assert {"kind": "KwokConfiguration", "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "options": {"enableDebuggingHandlers": True}} in documents
    assert served["kind"] == "ClusterLogs" and served["spec"]["selector"] == {"matchNamespaces": [NAMESPACE]}
    files = {tuple(entry["containers"]): entry["logsFile"] for entry in served["spec"]["logs"]}
    assert files[(inventory["gpuinfer_engine"],)] == "@LOG:%s@" % ENGINE_LOG.relative_to(REPO_ROOT)
    assert files[("benchmark",)] == "@LOG:%s@" % BENCH_LOG.relative_to(REPO_ROOT)


def test_site_verifies_the_engine_against_the_log_served_through_the_api(sim_cluster, h200_node):
    engine_log = ENGINE_LOG.read_text(encoding="utf-8")
    engine_kv_tokens = kv_cache_tokens_in(engine_log)
    (OUT_DIR / "verify.json").unlink(missing_ok=True)
    (OUT_DIR / "benchmark.json").unlink(missing_ok=True)

    try:
        # With the benchmark step: its Job's `benchmark` container is served the recorded vllm bench serve output.
        proc = run_playbook(sim_cluster, "site.yml", gpuinfer_benchmark=True, plan_concurrency=[1])
        said = " ".join(proc.stdout.split())

        # verify read the pod's log through the API server, not the no-log path ("... has no GPU KV cache
        # size line: no engine start-up to compare with ...", "Verification skipped.")...
        assert "has no GPU KV cache size line" not in said and "Verification skipped." not in said, proc.stdout[-8000:]
        source = "the vllm pod of %s in %s" % (INSTANCE, NAMESPACE)
        # ...and printed the planned-vs-actual table with status ok.
        assert "Verified against %s: ok" % source in said, proc.stdout[-8000:]
        assert "figure planned actual error" in said
        assert re.search(r"KV cache tokens [\d,]+ %s " % format(engine_kv_tokens, ","), said), proc.stdout[-8000:]

        # verify.json sits next to the plan files and holds the engine's own KV-cache figure.
        assert (OUT_DIR / "plan.yml").is_file()
        result = json.loads((OUT_DIR / "verify.json").read_text(encoding="utf-8"))
        assert result["status"] == "ok", result["messages"]
        assert result["source"] == source
        assert result["parsed"]["kv_cache_tokens"] == engine_kv_tokens
        row = next(r for r in result["rows"] if r["figure"] == "KV cache tokens")
        assert row["actual"] == engine_kv_tokens
        assert abs(row["error_pct"]) <= 10
        assert "Verified against %s: ok" % source in (OUT_DIR / "plan-report.txt").read_text(encoding="utf-8")

        # The engine pod landed on an H200 and kubectl reads the same log through the API server.
        (pod,) = kubectl_json(sim_cluster, "get", "pods", "-n", NAMESPACE, "-l",
                              "app.kubernetes.io/name=vllm,app.kubernetes.io/instance=%s" % INSTANCE)["items"]
        node = kubectl_json(sim_cluster, "get", "node", pod["spec"]["nodeName"])
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == H200_PRODUCT
        assert [c["name"] for c in pod["spec"]["containers"]] == ["vllm"]
        assert kubectl_logs(sim_cluster, pod, "vllm") == ENGINE_LOG.read_bytes()

        # The benchmark step read its Job's log through the API server and compared it with the plan's point.
        assert "Benchmarked with vllm bench serve" in said, proc.stdout[-8000:]
        bench = json.loads((OUT_DIR / "benchmark.json").read_text(encoding="utf-8"))
        (point,) = bench["points"]
        assert (point["concurrency"], point["input_len"], point["output_len"]) == (1, 1024, 128)
        # The recorded run's own figures (bench-c1.txt) ...
        assert point["measured"] == {"ttft_ms_p50": 41.41, "ttft_ms_p90": 57.71, "tpot_ms_p50": 6.23,
                                     "tpot_ms_p90": 6.26, "output_tokens_per_s": 152.28}
        # ... next to the plan's prediction for concurrency 1 (the recording is from an H100, the plan for an H200).
        plan = yaml.safe_load((OUT_DIR / "plan.yml").read_text(encoding="utf-8"))
        planned = plan["performance"]["points"][0]
        assert point["planned"]["tpot_ms_p50"] == planned["tpot_ms"]
        assert point["planned"]["ttft_ms_p50"] == planned["ttft_ms"]
        assert "Benchmarked" in (OUT_DIR / "plan-report.txt").read_text(encoding="utf-8")
    finally:
        run_playbook(sim_cluster, "teardown.yml", gpuinfer_teardown_cache=True)
        sim_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", "--ignore-not-found", check=False)


def test_a_benchmark_job_pod_gets_the_recorded_bench_log(sim_cluster):
    """What a benchmark Job in served-logs will read: the `benchmark` container's log is bench-c1.txt."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "served-logs-bench", "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"sim.gpuinfer.io/managed": "true"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "benchmark", "image": "vllm/vllm-openai:v0.26.0",
                                    "command": ["vllm", "bench", "serve"]}],
                }
            },
        },
    }
    # A namespace that an earlier test deleted without waiting takes no new objects until it is gone.
    sim_cluster.kubectl("wait", "--for=delete", "namespace/%s" % NAMESPACE, "--timeout=120s", check=False)
    created_namespace = sim_cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0
    if created_namespace:
        sim_cluster.kubectl("create", "namespace", NAMESPACE)
    sim_cluster.kubectl("apply", "-f", "-", input=json.dumps(job))
    try:
        pod = wait_for("the benchmark pod to run", lambda: next(
            (p for p in kubectl_json(sim_cluster, "get", "pods", "-n", NAMESPACE, "-l", "job-name=served-logs-bench")["items"]
             if p["status"].get("phase") in ("Running", "Succeeded")), None))
        logs = kubectl_logs(sim_cluster, pod, "benchmark")
        assert logs == BENCH_LOG.read_bytes()
        assert b"Serving Benchmark Result" in logs
    finally:
        sim_cluster.kubectl("delete", "job", "-n", NAMESPACE, "served-logs-bench", "--cascade=foreground",
                            "--ignore-not-found", check=False)
        if created_namespace:
            sim_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
