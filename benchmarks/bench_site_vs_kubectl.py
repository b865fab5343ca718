#!/usr/bin/env python3
"""Wall time of playbooks/site.yml against the simulated cluster, next to `kubectl apply` and one
`kubernetes.core.k8s` task applying the same manifests (rendered by the same playbook in render mode),
measured in one run.

    .venv/bin/python benchmarks/bench_site_vs_kubectl.py [--scenario llama70b-tp8] [--runs 3] [--json FILE]

Needs the simulated cluster (make sim-up). Each run uses three fresh namespaces (bench-site-N,
bench-kubectl-N, bench-k8stask-N, each prepared the same way with the credentials Secrets; each is deleted,
untimed, once its path is measured, so only one replica's GPUs are needed at a time, and all are deleted at
the end of the run) and measures:
  - site.yml first deploy (plan + validate + apply + readiness wait) and its idempotent re-run
  - kubectl apply of the rendered manifests + kubectl wait for the same readiness, and an apply re-run
  - one kubernetes.core.k8s task in a generated one-task playbook (.venv/bin/ansible-playbook, local
    connection, no fact gathering) whose single ``definition:`` list holds every rendered object
    (*.yaml of the render dir except plan*, dependencies first: Namespace; PersistentVolumeClaim, Secret,
    ConfigMap, ServiceAccount; Job; everything else), with ``wait: true`` and ``wait_timeout: 300``,
    and its idempotent re-run.
The manifests are rendered untimed, once per namespace, so metadata.namespace matches. It prints the
medians and the ratios site.yml / one-task apply (goal: within 2.0x) and site.yml / kubectl, for the first
deploy and the re-run; --json FILE also writes the medians and ratios as JSON.
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

import yaml

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
PYTHON = REPO / ".venv" / "bin" / "python"
SIM = REPO / "tests" / "cluster" / "sim.sh"
K8S_TASK_GOAL = 2.0
# Credentials exist before either path runs (created untimed), as they would on a real cluster.
SECRET_VARS = {
    "model_cache_hf_token_existing_secret": "bench-hf",
    "model_cache_ngc_existing_secret": "bench-ngc",
    "model_cache_pull_existing_secret": "bench-pull",
    # Render mode cannot look for the Prometheus Operator; the sim has none, so both paths use annotations.
    "inference_service_monitoring": "annotations",
}
# Apply order of the one-task playbook: what others depend on first, the rest keeps file/document order.
# --defaults readme: as the README runs it on the simulated cluster - the token given as a value (site.yml creates
# its Secret, <gpuinfer_name>-hf-token; the other paths get that Secret untimed, as render mode never writes Secrets)
# and monitoring left on auto (site.yml looks for the Prometheus Operator).
README_VARS = {"model_cache_hf_token_existing_secret": "", "model_cache_hf_token": "hf_dummy"}
PROFILES = {"tuned": SECRET_VARS, "readme": README_VARS}
KIND_GROUPS = (
    ("Namespace",),
    ("PersistentVolumeClaim", "Secret", "ConfigMap", "ServiceAccount"),
    ("Job",),
)
KEYS = ("site", "site_rerun", "kubectl", "kubectl_rerun", "k8stask", "k8stask_rerun")


def sh(args, env, check=True):
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit("command failed: %s\n%s\n%s" % (" ".join(map(str, args)), proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def timed(args, env):
    start = time.perf_counter()
    sh(args, env)
    return time.perf_counter() - start


def prepare_namespace(namespace, env, extra_secret=None):
    # Leftovers of an interrupted run would make the first apply look like an update.
    sh(["kubectl", "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s"], env)
    sh(["kubectl", "create", "namespace", namespace], env)
    sh(["kubectl", "-n", namespace, "create", "secret", "generic", "bench-hf", "--from-literal=HF_TOKEN=x"], env)
    sh(["kubectl", "-n", namespace, "create", "secret", "generic", "bench-ngc", "--from-literal=NGC_API_KEY=x"], env)
    sh(["kubectl", "-n", namespace, "create", "secret", "docker-registry", "bench-pull", "--docker-server=nvcr.io",
        "--docker-username=$oauthtoken", "--docker-password=x"], env)
    if extra_secret:
        sh(["kubectl", "-n", namespace, "create", "secret", "generic", extra_secret, "--from-literal=HF_TOKEN=x"], env)


def delete_namespace(namespace, env):
    sh(["kubectl", "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s"], env, check=False)


PROFILE = dict(SECRET_VARS)


def playbook(scenario, kubeconfig, namespace, extra=None):
    variables = dict(PROFILE, gpuinfer_kubeconfig=kubeconfig, gpuinfer_namespace=namespace, **(extra or {}))
    return [str(PLAYBOOK), "-i", "inventories/%s" % scenario, "-i", "inventories/sim", "playbooks/site.yml", "-e", json.dumps(variables)]


def render(scenario, kubeconfig, namespace, render_dir, env):
    """The manifest files site.yml would apply in ``namespace`` (plan files left out), sorted by name."""
    # Render mode cannot ask for the Prometheus Operator: render what monitoring=auto decides on the sim (no Operator).
    sh(playbook(scenario, kubeconfig, namespace, {"gpuinfer_render_dir": render_dir, "inference_service_monitoring": "annotations"}), env)
    return sorted(str(p) for p in Path(render_dir).glob("*.yaml") if not p.name.startswith("plan"))


def kind_rank(obj):
    for rank, kinds in enumerate(KIND_GROUPS):
        if obj.get("kind") in kinds:
            return rank
    return len(KIND_GROUPS)


def ordered_objects(manifests):
    """Every non-empty YAML document of ``manifests``, dependencies first (sorted() is stable, so file and
    document order is kept within a group)."""
    objects = []
    for path in manifests:
        with open(path) as handle:
            objects.extend(doc for doc in yaml.safe_load_all(handle) if doc)
    return sorted(objects, key=kind_rank)


def k8s_task_playbook(objects, kubeconfig, directory):
    """Write the one-task playbook applying ``objects`` and return its path."""
    play = [{
        "name": "Apply the rendered manifests with one kubernetes.core.k8s task",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": str(PYTHON)},
        "tasks": [{
            "name": "Apply every rendered object",
            "kubernetes.core.k8s": {
                "kubeconfig": kubeconfig,
                "state": "present",
                "wait": True,
                "wait_timeout": 300,
                "definition": objects,
            },
        }],
    }]
    path = Path(directory) / "k8s-task.yml"
    # json.dumps output is YAML too, and leaves no room for quoting surprises in the manifests.
    path.write_text(json.dumps(play, indent=1, default=str) + "\n")
    return str(path)


def ratio(numerator, denominator):
    return numerator / denominator if denominator else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="llama70b-tp8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write the medians and ratios to FILE as JSON")
    parser.add_argument("--defaults", choices=sorted(PROFILES), default="tuned",
                        help="tuned: pre-created Secrets and monitoring=annotations; readme: as the README runs it")
    args = parser.parse_args()
    PROFILE.clear()
    PROFILE.update(PROFILES[args.defaults])
    instance = yaml.safe_load((REPO / "inventories" / args.scenario / "group_vars" / "all" / "main.yml").read_text()).get("gpuinfer_name", "llm")
    extra_secret = "%s-hf-token" % instance if args.defaults == "readme" else None

    kubeconfig = os.path.abspath(sh([str(SIM), "kubeconfig"], os.environ.copy()).stdout.strip())
    env = dict(os.environ, KUBECONFIG=kubeconfig, ANSIBLE_NOCOLOR="1")
    env["PATH"] = sh([str(SIM), "path"], env).stdout.strip() + os.pathsep + env["PATH"]
    if sh(["kubectl", "get", "--raw", "/readyz"], env, check=False).returncode != 0:
        sys.exit("the simulated cluster is not up: run `make sim-up` first")

    results = {key: [] for key in KEYS}
    for run in range(args.runs):
        ns_site, ns_kubectl, ns_k8stask = "bench-site-%d" % run, "bench-kubectl-%d" % run, "bench-k8stask-%d" % run
        try:
            with tempfile.TemporaryDirectory() as render_dir:
                # The same manifests the playbook applies, rendered for the kubectl namespace.
                manifests = render(args.scenario, kubeconfig, ns_kubectl, render_dir, env)
                prepare_namespace(ns_kubectl, env, extra_secret)
                start = time.perf_counter()
                apply_args = ["kubectl", "apply", "-n", ns_kubectl]
                for path in manifests:
                    apply_args += ["-f", path]
                sh(apply_args, env)
                sh(["kubectl", "-n", ns_kubectl, "wait", "--for=condition=Available", "deployment", "--all", "--timeout=300s"], env, check=False)
                results["kubectl"].append(time.perf_counter() - start)
                results["kubectl_rerun"].append(timed(apply_args, env))
            # Untimed: each path's GPUs are freed before the next one runs, so the benchmark needs room for one
            # replica at a time (the validation in site.yml refuses a plan that does not fit).
            delete_namespace(ns_kubectl, env)

            with tempfile.TemporaryDirectory() as work_dir:
                # Rendered again for its own namespace, so every metadata.namespace names it.
                render_dir = os.path.join(work_dir, "render")
                os.mkdir(render_dir)
                objects = ordered_objects(render(args.scenario, kubeconfig, ns_k8stask, render_dir, env))
                task_args = [str(PLAYBOOK), "-i", "localhost,", k8s_task_playbook(objects, kubeconfig, work_dir)]
                prepare_namespace(ns_k8stask, env, extra_secret)
                results["k8stask"].append(timed(task_args, env))
                results["k8stask_rerun"].append(timed(task_args, env))
            delete_namespace(ns_k8stask, env)

            prepare_namespace(ns_site, env)
            results["site"].append(timed(playbook(args.scenario, kubeconfig, ns_site), env))
            results["site_rerun"].append(timed(playbook(args.scenario, kubeconfig, ns_site), env))
        finally:
            for namespace in (ns_site, ns_kubectl, ns_k8stask):
                delete_namespace(namespace, env)

    median = {key: statistics.median(values) for key, values in results.items()}
    ratios = {
        "first_deploy_site_vs_k8stask": ratio(median["site"], median["k8stask"]),
        "rerun_site_vs_k8stask": ratio(median["site_rerun"], median["k8stask_rerun"]),
        "first_deploy_site_vs_kubectl": ratio(median["site"], median["kubectl"]),
        "rerun_site_vs_kubectl": ratio(median["site_rerun"], median["kubectl_rerun"]),
    }
    print("scenario %s, %d run(s), median seconds:" % (args.scenario, args.runs))
    print("  %-22s %10s %16s %18s" % ("", "site.yml", "kubectl apply", "one k8s task"))
    print("  %-22s %8.2f s %14.2f s %16.2f s" % ("first deploy", median["site"], median["kubectl"], median["k8stask"]))
    print("  %-22s %8.2f s %14.2f s %16.2f s" % ("idempotent re-run", median["site_rerun"], median["kubectl_rerun"], median["k8stask_rerun"]))
    print("profile: --defaults %s" % args.defaults)
    print("ratios:")
    print("  site.yml / one k8s task, first deploy   %6.2fx (goal <= %.1fx)" % (ratios["first_deploy_site_vs_k8stask"], K8S_TASK_GOAL))
    print("  site.yml / one k8s task, re-run         %6.2fx (goal <= %.1fx)" % (ratios["rerun_site_vs_k8stask"], K8S_TASK_GOAL))
    print("  site.yml / kubectl, first deploy        %6.2fx" % ratios["first_deploy_site_vs_kubectl"])
    print("  site.yml / kubectl, re-run              %6.2fx" % ratios["rerun_site_vs_kubectl"])
    if args.json_out:
        report = {
            "scenario": args.scenario,
            "runs": args.runs,
            "median_seconds": {key: round(value, 3) for key, value in median.items()},
            "ratios": {key: round(value, 3) for key, value in ratios.items()},
            "goal": {"site_vs_k8stask_max_ratio": K8S_TASK_GOAL},
            "samples_seconds": {key: [round(v, 3) for v in values] for key, values in results.items()},
        }
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
