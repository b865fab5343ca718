#!/usr/bin/env python3
"""Wall time of playbooks/site.yml against the simulated cluster, next to `kubectl apply` of the
same manifests (rendered by the same playbook in render mode), measured in one run.

    .venv/bin/python benchmarks/bench_site_vs_kubectl.py [--scenario llama70b-tp8] [--runs 3]

Needs the simulated cluster (make sim-up). For each run it uses fresh namespaces and prints:
  - site.yml first deploy (plan + validate + apply + readiness wait)
  - kubectl apply of the rendered manifests + kubectl wait for the same readiness
  - site.yml idempotent re-run, kubectl apply re-run
and the ratios playbook / kubectl (goal: within 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
SIM = REPO / "tests" / "cluster" / "sim.sh"
# Credentials exist before either path runs (created untimed), as they would on a real cluster.
SECRET_VARS = {
    "model_cache_hf_token_existing_secret": "bench-hf",
    "model_cache_ngc_existing_secret": "bench-ngc",
    "model_cache_pull_existing_secret": "bench-pull",
    # Render mode cannot look for the Prometheus Operator; the sim has none, so both paths use annotations.
    "inference_service_monitoring": "annotations",
}


def sh(args, env, check=True):
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit("command failed: %s\n%s\n%s" % (" ".join(map(str, args)), proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def timed(args, env):
    start = time.perf_counter()
    sh(args, env)
    return time.perf_counter() - start


def prepare_namespace(namespace, env):
    # Leftovers of an interrupted run would make the first apply look like an update.
    sh(["kubectl", "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s"], env)
    sh(["kubectl", "create", "namespace", namespace], env)
    sh(["kubectl", "-n", namespace, "create", "secret", "generic", "bench-hf", "--from-literal=HF_TOKEN=x"], env)
    sh(["kubectl", "-n", namespace, "create", "secret", "generic", "bench-ngc", "--from-literal=NGC_API_KEY=x"], env)
    sh(["kubectl", "-n", namespace, "create", "secret", "docker-registry", "bench-pull", "--docker-server=nvcr.io",
        "--docker-username=$oauthtoken", "--docker-password=x"], env)


def playbook(scenario, kubeconfig, namespace, extra=None):
    variables = dict(SECRET_VARS, gpuinfer_kubeconfig=kubeconfig, gpuinfer_namespace=namespace, **(extra or {}))
    return [str(PLAYBOOK), "-i", "inventories/%s" % scenario, "-i", "inventories/sim", "playbooks/site.yml", "-e", json.dumps(variables)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="llama70b-tp8")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    kubeconfig = sh([str(SIM), "kubeconfig"], os.environ.copy()).stdout.strip()
    env = dict(os.environ, KUBECONFIG=kubeconfig, ANSIBLE_NOCOLOR="1")
    env["PATH"] = sh([str(SIM), "path"], env).stdout.strip() + os.pathsep + env["PATH"]
    if sh(["kubectl", "get", "--raw", "/readyz"], env, check=False).returncode != 0:
        sys.exit("the simulated cluster is not up: run `make sim-up` first")

    results = {key: [] for key in ("site", "site_rerun", "kubectl", "kubectl_rerun")}
    for run in range(args.runs):
        ns_site, ns_kubectl = "bench-site-%d" % run, "bench-kubectl-%d" % run
        with tempfile.TemporaryDirectory() as render_dir:
            # The same manifests the playbook applies, rendered for the kubectl namespace.
            sh(playbook(args.scenario, kubeconfig, ns_kubectl, {"gpuinfer_render_dir": render_dir}), env)
            manifests = sorted(str(p) for p in Path(render_dir).glob("*.yaml") if not p.name.startswith("plan"))
            prepare_namespace(ns_kubectl, env)
            start = time.perf_counter()
            apply_args = ["kubectl", "apply", "-n", ns_kubectl]
            for path in manifests:
                apply_args += ["-f", path]
            sh(apply_args, env)
            sh(["kubectl", "-n", ns_kubectl, "wait", "--for=condition=Available", "deployment", "--all", "--timeout=300s"], env, check=False)
            results["kubectl"].append(time.perf_counter() - start)
            results["kubectl_rerun"].append(timed(apply_args, env))

        prepare_namespace(ns_site, env)
        results["site"].append(timed(playbook(args.scenario, kubeconfig, ns_site), env))
        results["site_rerun"].append(timed(playbook(args.scenario, kubeconfig, ns_site), env))
        for namespace in (ns_site, ns_kubectl):
            sh(["kubectl", "delete", "namespace", namespace, "--wait=true", "--timeout=120s"], env, check=False)

    median = {key: statistics.median(values) for key, values in results.items()}
    print("scenario %s, %d run(s), median seconds:" % (args.scenario, args.runs))
    print("  site.yml first deploy        %6.2f s" % median["site"])
    print("  kubectl apply + wait         %6.2f s" % median["kubectl"])
    print("  ratio                        %6.2fx (goal <= 1.5x)" % (median["site"] / median["kubectl"]))
    print("  site.yml idempotent re-run   %6.2f s" % median["site_rerun"])
    print("  kubectl apply re-run         %6.2f s" % median["kubectl_rerun"])
    print("  ratio                        %6.2fx" % (median["site_rerun"] / median["kubectl_rerun"]))


if __name__ == "__main__":
    main()
