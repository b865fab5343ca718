#!/usr/bin/env python3
"""Where an idempotent re-run of playbooks/site.yml spends its time, task by task, on the simulated cluster.

    .venv/bin/python benchmarks/profile_site.py [--scenario llama70b-tp8] [--top 12] [--json FILE]

Deploys once into a fresh namespace (untimed), then re-runs with benchmarks/profile/sitecustomize.py loaded into
ansible-playbook: each task's execution time in its worker and the Jinja templates compiled for it (ansible-core
compiles every template string anew in every task's worker). Prints the re-run's wall time, the tasks' total, the
templates compiled and the seconds spent compiling them, and the slowest tasks. The README's defaults: the token given
as a value, monitoring left on auto. Needs the simulated cluster (make sim-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
SIM = REPO / "tests" / "cluster" / "sim.sh"
NAMESPACE = "bench-profile"


def sh(args, env, check=True):
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit("command failed: %s\n%s\n%s" % (" ".join(map(str, args)), proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="llama70b-tp8")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write every task's figures to FILE")
    args = parser.parse_args()

    kubeconfig = os.path.abspath(sh([str(SIM), "kubeconfig"], os.environ.copy()).stdout.strip())
    env = dict(os.environ, KUBECONFIG=kubeconfig, ANSIBLE_NOCOLOR="1")
    env["PATH"] = sh([str(SIM), "path"], env).stdout.strip() + os.pathsep + env["PATH"]
    if sh(["kubectl", "get", "--raw", "/readyz"], env, check=False).returncode != 0:
        sys.exit("the simulated cluster is not up: run `make sim-up` first")

    variables = {"gpuinfer_kubeconfig": kubeconfig, "gpuinfer_namespace": NAMESPACE,
                 "model_cache_hf_token_existing_secret": "", "model_cache_hf_token": "hf_dummy"}
    command = [str(PLAYBOOK), "-i", "inventories/%s" % args.scenario, "-i", "inventories/sim", "playbooks/site.yml",
               "-e", json.dumps(variables)]
    sh(["kubectl", "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s"], env)
    sh(["kubectl", "create", "namespace", NAMESPACE], env)
    try:
        sh(command, env)
        with tempfile.TemporaryDirectory() as work:
            out = Path(work) / "tasks.jsonl"
            profiled = dict(env, GPUINFER_PROFILE_OUT=str(out),
                            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "benchmarks" / "profile"), env.get("PYTHONPATH")])))
            start = time.perf_counter()
            sh(command, profiled)
            wall = time.perf_counter() - start
            tasks = [json.loads(line) for line in out.read_text().splitlines()]
    finally:
        sh(["kubectl", "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false"], env, check=False)

    total = sum(task["seconds"] for task in tasks)
    templates = sum(task["templates"] for task in tasks)
    compiling = sum(task["compile_seconds"] for task in tasks)
    print("scenario %s, site.yml idempotent re-run (README defaults), profiled:" % args.scenario)
    print("  wall time                     %6.2f s" % wall)
    print("  tasks executed                %6d" % len(tasks))
    print("  time in tasks                 %6.2f s" % total)
    print("  Jinja templates compiled      %6d  (%.2f s compiling, %.0f%% of the time in tasks)"
          % (templates, compiling, 100 * compiling / total if total else 0))
    print("  slowest tasks (seconds, templates compiled):")
    for task in sorted(tasks, key=lambda item: -item["seconds"])[:args.top]:
        print("    %5.2f  %4d  %s" % (task["seconds"], task["templates"], task["task"][:90]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"wall": wall, "tasks": tasks}, indent=1) + "\n")


if __name__ == "__main__":
    main()
