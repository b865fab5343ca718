#!/usr/bin/env python3
"""Benchmark gpuinfer.serving.gpu_cluster_info against a big cluster (target: < 5 s, < 30 API calls).

Meant for the sim's 2,000-GPU-node profile:

    GPUINFER_SIM_PROFILE=large-2000 tests/cluster/sim.sh up
    .venv/bin/python benchmarks/bench_cluster_info.py --kubeconfig inventories/sim/kubeconfig

Before timing it binds ``--pods`` pods that request GPUs straight to GPU nodes (spec.nodeName, so the
scheduler is not involved and creation stays fast), so the requested-GPU accounting runs over a real
pod list. It then runs the module's reader ``--runs`` times in-process (what the module does between
argument parsing and exit_json) and once through ansible-playbook (``--ansible``, adds Ansible's own
start-up and result transfer), and prints the median wall time and the API call count.

Nothing is faked: the numbers come from the cluster the kubeconfig points to. The benchmark checks
that the inventory it timed is complete (node count, requested GPUs of the pods it created).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "collections"))

NAMESPACE = "gpuinfer-bench"
LABEL = "gpuinfer.io/bench"
TARGET_SECONDS = 5.0
TARGET_CALLS = 30
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", default=os.environ.get("GPUINFER_SIM_KUBECONFIG") or os.environ.get("KUBECONFIG")
                        or str(REPO_ROOT / "inventories" / "sim" / "kubeconfig"))
    parser.add_argument("--context")
    parser.add_argument("--runs", type=int, default=5, help="timed in-process runs (median reported)")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--pods", type=int, default=2000, help="GPU pods to bind to nodes before timing (0: none)")
    parser.add_argument("--threads", type=int, default=16, help="parallel pod creations")
    parser.add_argument("--keep-pods", action="store_true", help="leave the benchmark pods (and namespace) in place")
    parser.add_argument("--ansible", action="store_true", help="also time one run through ansible-playbook")
    parser.add_argument("--json", dest="json_out", help="write the results to this file as JSON")
    args = parser.parse_args(argv)
    # One absolute path for every use: the in-process reader, the API client and the playbook, which
    # ansible-playbook runs from another directory (and its module from a temporary one).
    args.kubeconfig = os.path.abspath(os.path.expanduser(args.kubeconfig))
    return args


def api_client(args):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, context=args.context, client_configuration=configuration)
    configuration.connection_pool_maxsize = max(args.threads, 4)
    return client.ApiClient(configuration)


def gpu_nodes(core):
    """(name, allocatable GPUs) of every Ready GPU node, read once (the setup is not timed)."""
    nodes, token = [], None
    while True:
        response = core.list_node(limit=500, _continue=token, _preload_content=False)
        page = json.loads(response.data)
        for node in page["items"]:
            gpus = int((node["status"].get("allocatable") or {}).get("nvidia.com/gpu", "0"))
            if gpus:
                nodes.append((node["metadata"]["name"], gpus))
        token = page["metadata"].get("continue")
        if not token:
            return nodes


def ensure_namespace(core):
    from kubernetes.client.rest import ApiException

    try:
        core.create_namespace({"metadata": {"name": NAMESPACE, "labels": {LABEL: "true"}}})
    except ApiException as exc:
        if exc.status != 409:
            raise


def existing_bench_pods(core):
    count, token = 0, None
    while True:
        response = core.list_namespaced_pod(NAMESPACE, limit=500, _continue=token, _preload_content=False)
        page = json.loads(response.data)
        count += len(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            return count


def create_pods(core, nodes, count, threads):
    """Bind ``count`` pods requesting 1-4 GPUs, filling nodes one after the other from the end of the list, so
    the other nodes stay entirely free for whoever else uses the cluster. Returns the GPUs requested."""
    from kubernetes.client.rest import ApiException

    plan = []
    for node, gpus in sorted(nodes, reverse=True):
        free = gpus
        while free and len(plan) < count:
            size = min(free, 1 + len(plan) % 4)
            free -= size
            plan.append((node, size))
        if len(plan) >= count:
            break

    def one(item):
        number, (node, gpus) = item
        pod = {
            "metadata": {"name": "bench-%05d" % number, "labels": {LABEL: "true"}},
            "spec": {
                "nodeName": node,
                "tolerations": [GPU_TOLERATION],
                "automountServiceAccountToken": False,
                "containers": [{"name": "engine", "image": "registry.invalid/gpuinfer/bench:0",
                                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
            },
        }
        for attempt in range(5):
            try:
                core.create_namespaced_pod(NAMESPACE, pod, _preload_content=False)
                return gpus
            except ApiException as exc:
                if exc.status == 409:
                    return gpus
                if exc.status in (429, 500, 503, 504) and attempt < 4:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise
        return gpus

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(one, enumerate(plan)))


def bench_requested(core):
    """GPUs requested by the benchmark's pods (they may come from an earlier run)."""
    total, token = 0, None
    while True:
        response = core.list_namespaced_pod(NAMESPACE, limit=500, _continue=token, _preload_content=False)
        page = json.loads(response.data)
        for pod in page["items"]:
            if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                total += int(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        token = page["metadata"].get("continue")
        if not token:
            return total


def timed_runs(args):
    from ansible_collections.gpuinfer.serving.plugins.module_utils.kube.k8s_auth import api_client as module_api_client
    from ansible_collections.gpuinfer.serving.plugins.modules.gpu_cluster_info import ClusterReader

    runs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        client = module_api_client({"kubeconfig": args.kubeconfig, "context": args.context})
        reader = ClusterReader(client, page_size=args.page_size)
        result = reader.gather()
        client.close()
        runs.append({"seconds": time.perf_counter() - started, "api_calls": reader.api_calls, "result": result})
    return runs


def ansible_run(args):
    playbook = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars: {ansible_python_interpreter: "{{ ansible_playbook_python }}"}
  tasks:
    - name: Inventory
      gpuinfer.serving.gpu_cluster_info: {kubeconfig: %s, page_size: %d}
      register: info
    - name: Calls
      ansible.builtin.debug: {msg: "API_CALLS={{ info.api_calls }} NODES={{ info.nodes | length }}"}
""" % (json.dumps(args.kubeconfig), args.page_size)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        handle.write(playbook)
    started = time.perf_counter()
    proc = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "ansible-playbook"), handle.name], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    os.unlink(handle.name)
    if proc.returncode:
        raise SystemExit("ansible-playbook run failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    calls = int(proc.stdout.split("API_CALLS=")[1].split()[0])
    return {"seconds": seconds, "api_calls": calls}


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.kubeconfig).is_file():
        raise SystemExit("no kubeconfig at %s: start the sim (GPUINFER_SIM_PROFILE=large-2000 tests/cluster/sim.sh up) "
                         "or pass --kubeconfig" % args.kubeconfig)
    from kubernetes import client

    core = client.CoreV1Api(api_client(args))
    nodes = gpu_nodes(core)
    print("cluster: %d GPU nodes, %d GPUs" % (len(nodes), sum(g for _n, g in nodes)))
    if args.pods:
        ensure_namespace(core)
        have = existing_bench_pods(core)
        if have:
            print("setup: reusing %d benchmark pods from an earlier run (delete namespace %s to start over)" % (have, NAMESPACE))
        else:
            started = time.perf_counter()
            gpus = create_pods(core, nodes, args.pods, args.threads)
            print("setup: bound %d pods requesting %d GPUs in %.1f s" % (existing_bench_pods(core), gpus, time.perf_counter() - started))
    expected_bench_gpus = bench_requested(core) if args.pods else 0

    runs = timed_runs(args)
    last = runs[-1]["result"]
    bench_seen = sum(n["gpu"]["requested"] for n in last["nodes"])
    if len([n for n in last["nodes"] if n["gpu"]["allocatable"]]) != len(nodes):
        raise SystemExit("inventory incomplete: %d GPU nodes reported, %d exist"
                         % (len([n for n in last["nodes"] if n["gpu"]["allocatable"]]), len(nodes)))
    if bench_seen < expected_bench_gpus:
        raise SystemExit("inventory counts %d requested GPUs, the benchmark pods alone request %d" % (bench_seen, expected_bench_gpus))

    seconds = [r["seconds"] for r in runs]
    calls = sorted(set(r["api_calls"] for r in runs))
    summary = {
        "nodes": last["totals"]["nodes"],
        "gpu_nodes": last["totals"]["gpu_nodes"],
        "pods_listed": last["totals"]["pods"],
        "requested_gpus": last["totals"]["requested_gpus"],
        "page_size": args.page_size,
        "runs": len(runs),
        "median_seconds": round(statistics.median(seconds), 3),
        "min_seconds": round(min(seconds), 3),
        "max_seconds": round(max(seconds), 3),
        "api_calls": calls[0] if len(calls) == 1 else calls,
        "target": {"seconds": TARGET_SECONDS, "api_calls": TARGET_CALLS},
    }
    summary["meets_target"] = summary["median_seconds"] < TARGET_SECONDS and max(calls) < TARGET_CALLS
    if args.ansible:
        summary["ansible_playbook"] = ansible_run(args)

    print("gpu_cluster_info over %(nodes)d nodes (%(gpu_nodes)d with GPUs), %(pods_listed)d pods, page size %(page_size)d:" % summary)
    print("  median %.2f s (min %.2f, max %.2f) over %d runs, %s API calls -> %s (target < %.0f s, < %d calls)" % (
        summary["median_seconds"], summary["min_seconds"], summary["max_seconds"], summary["runs"], summary["api_calls"],
        "meets the target" if summary["meets_target"] else "MISSES the target", TARGET_SECONDS, TARGET_CALLS))
    if args.ansible:
        print("  through ansible-playbook: %.2f s wall (Ansible start-up included), %d API calls"
              % (summary["ansible_playbook"]["seconds"], summary["ansible_playbook"]["api_calls"]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")

    if args.pods and not args.keep_pods:
        core.delete_namespace(NAMESPACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
