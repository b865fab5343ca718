#!/usr/bin/env python3
"""Where an idempotent re-run of playbooks/site.yml spends its time, and the least it could take, on the simulated cluster.

    .venv/bin/python benchmarks/profile_site.py [--scenario llama70b-tp8] [--runs 3] [--top 12] [--json FILE] [--venv DIR]

Deploys once into a fresh namespace (untimed), then re-runs it --runs times with benchmarks/profile/sitecustomize.py
loaded into ansible-playbook: each task's execution time in its worker, its start and end, and the Jinja templates
compiled for it (ansible-core compiles every template string anew in every task's worker). The run of median wall
time is analysed:

- the time by kind of step: ansible-playbook's start and exit; the argument validation Ansible prepends to every
  role entry point; the role includes that ran (the include task and the role loading after it); the cluster read; the
  apply; everything else (planning, building, checks, reports, skipped steps). A task's share is its worker time
  plus the controller's gap before it (after an include, the gap is the role loading, counted with the include);
- the floor: start and exit + role argument validation + role includes + cluster read + apply, the re-run's
  time with every other step free. It is what a deploy path that includes the roles (so each validates its
  inputs) cannot go below;
- next to it, the one kubernetes.core.k8s task applying the same objects (benchmarks/bench_site_vs_kubectl.py's
  baseline, median of --runs idempotent re-runs in a namespace of its own), and both ratios.

The README's defaults: the token given as a value, monitoring left on auto. --venv DIR runs both paths with another
virtualenv's ansible-playbook and Python (a newer ansible-core, say; the inventories use the playbook's own Python).
Needs the simulated cluster (make sim-up).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_site_vs_kubectl as bench  # noqa: E402  (the same baseline, built the same way)

REPO = bench.REPO
NAMESPACE = "bench-profile"
BASELINE_NAMESPACE = "bench-profile-k8stask"
INCLUDES = {"include_role", "ansible.builtin.include_role", "include_tasks", "ansible.builtin.include_tasks"}
KINDS = (
    ("start", "ansible-playbook's start and exit"),
    ("validation", "role argument validation"),
    ("include", "role includes and role loading"),
    ("read", "cluster read (gpu_cluster_info)"),
    ("apply", "apply (kubernetes.core.k8s)"),
    ("other", "plan, build, checks, reports, skipped"),
)
FLOOR = ("start", "validation", "include", "read", "apply")


def kind_of(task):
    action = task.get("action") or ""
    if action.endswith("validate_argument_spec"):
        return "validation"
    if action in INCLUDES and not task.get("skipped"):
        return "include"
    if action.endswith("gpu_cluster_info"):
        return "read"
    if action.endswith("k8s") and (task.get("role") or "").endswith("manifests") and "Make the cluster match" in task["task"]:
        return "apply"
    return "other"


def breakdown(run):
    """{kind: [tasks, seconds]} of one profiled run: worker time plus the controller's gap before each task."""
    tasks = sorted(run["tasks"], key=lambda task: task["start"])
    kinds = {kind: [0, 0.0] for kind, _label in KINDS}
    kinds["start"][1] = (tasks[0]["start"] - run["launched"]) + (run["exited"] - tasks[-1]["end"]) if tasks else run["wall"]
    previous = None
    for task in tasks:
        kind = kind_of(task)
        kinds[kind][0] += 1
        kinds[kind][1] += task["end"] - task["start"]
        if previous is not None:
            # After an include the gap is the controller loading the role: part of the include.
            gap_kind = "include" if kind_of(previous) == "include" else kind
            kinds[gap_kind][1] += task["start"] - previous["end"]
        previous = task
    return kinds


def profiled_rerun(command, env):
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "tasks.jsonl"
        profiled = dict(env, GPUINFER_PROFILE_OUT=str(out),
                        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "benchmarks" / "profile"), env.get("PYTHONPATH")])))
        launched = time.time()
        bench.sh(command, profiled)
        exited = time.time()
        tasks = [json.loads(line) for line in out.read_text().splitlines()]
    return {"wall": exited - launched, "launched": launched, "exited": exited, "tasks": tasks}


def one_task_baseline(scenario, kubeconfig, env, runs):
    """Median seconds of the one kubernetes.core.k8s task's idempotent re-run, as bench_site_vs_kubectl.py measures it."""
    instance = bench.yaml.safe_load((REPO / "inventories" / scenario / "group_vars" / "all" / "main.yml").read_text()).get("gpuinfer_name", "llm")
    with tempfile.TemporaryDirectory() as work_dir:
        render_dir = os.path.join(work_dir, "render")
        os.mkdir(render_dir)
        objects = bench.ordered_objects(bench.render(scenario, kubeconfig, BASELINE_NAMESPACE, render_dir, env))
        task_args = [str(bench.PLAYBOOK), "-i", "localhost,", bench.k8s_task_playbook(objects, kubeconfig, work_dir)]
        bench.prepare_namespace(BASELINE_NAMESPACE, env, "%s-hf-token" % instance)
        try:
            bench.sh(task_args, env)
            return statistics.median(bench.timed(task_args, env) for _run in range(runs))
        finally:
            bench.delete_namespace(BASELINE_NAMESPACE, env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="llama70b-tp8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write every run's task figures to FILE")
    parser.add_argument("--venv", metavar="DIR", help="use DIR/bin/ansible-playbook and DIR/bin/python for both paths")
    args = parser.parse_args()
    if args.venv:
        bench.PLAYBOOK = Path(args.venv).resolve() / "bin" / "ansible-playbook"
        bench.PYTHON = Path(args.venv).resolve() / "bin" / "python"
    bench.PROFILE.clear()
    bench.PROFILE.update(bench.README_VARS)

    kubeconfig = os.path.abspath(bench.sh([str(bench.SIM), "kubeconfig"], os.environ.copy()).stdout.strip())
    env = dict(os.environ, KUBECONFIG=kubeconfig, ANSIBLE_NOCOLOR="1")
    env["PATH"] = bench.sh([str(bench.SIM), "path"], env).stdout.strip() + os.pathsep + env["PATH"]
    if bench.sh(["kubectl", "get", "--raw", "/readyz"], env, check=False).returncode != 0:
        sys.exit("the simulated cluster is not up: run `make sim-up` first")

    command = bench.playbook(args.scenario, kubeconfig, NAMESPACE)
    bench.delete_namespace(NAMESPACE, env)
    bench.sh(["kubectl", "create", "namespace", NAMESPACE], env)
    try:
        bench.sh(command, env)
        runs = [profiled_rerun(command, env) for _run in range(args.runs)]
    finally:
        bench.delete_namespace(NAMESPACE, env)
    baseline = one_task_baseline(args.scenario, kubeconfig, env, args.runs)

    run = sorted(runs, key=lambda item: item["wall"])[len(runs) // 2]
    tasks = run["tasks"]
    total = sum(task["seconds"] for task in tasks)
    templates = sum(task["templates"] for task in tasks)
    compiling = sum(task["compile_seconds"] for task in tasks)
    kinds = breakdown(run)
    floor = sum(kinds[kind][1] for kind in FLOOR)
    print("scenario %s, site.yml idempotent re-run (README defaults), profiled, run of median wall time of %d:" % (args.scenario, len(runs)))
    print("  ansible-playbook              %s" % bench.PLAYBOOK)
    print("  wall time                     %6.2f s  (runs: %s)" % (run["wall"], ", ".join("%.2f" % item["wall"] for item in runs)))
    print("  tasks executed                %6d" % len(tasks))
    print("  time in task workers          %6.2f s" % total)
    print("  Jinja templates compiled      %6d  (%.2f s compiling, %.0f%% of the time in task workers)"
          % (templates, compiling, 100 * compiling / total if total else 0))
    print("  by kind of step (tasks, seconds, share of the wall time):")
    for kind, label in KINDS:
        count, seconds = kinds[kind]
        print("    %-40s %4s  %5.2f s  %3.0f%%%s" % (label, count if kind != "start" else "", seconds,
                                                  100 * seconds / run["wall"], "  (floor)" if kind in FLOOR else ""))
    print("  floor (every other step free)  %5.2f s" % floor)
    print("  one kubernetes.core.k8s task, re-run (median of %d)  %5.2f s" % (args.runs, baseline))
    print("  ratios to the one task: measured %.2fx, floor %.2fx (goal <= 2.0x)"
          % (bench.ratio(run["wall"], baseline), bench.ratio(floor, baseline)))
    print("  slowest tasks (seconds in the worker, templates compiled):")
    for task in sorted(tasks, key=lambda item: -item["seconds"])[:args.top]:
        print("    %5.2f  %4d  %s" % (task["seconds"], task["templates"], task["task"][:90]))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": runs, "baseline": baseline, "floor": floor,
                                                   "kinds": kinds}, indent=1) + "\n")


if __name__ == "__main__":
    main()
