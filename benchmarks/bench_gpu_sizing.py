#!/usr/bin/env python3
"""Time gpuinfer.serving.gpu_sizing: the planner over the whole model x GPU catalog, and the module end to end.

Usage (from the repository root):
    .venv/bin/python benchmarks/bench_gpu_sizing.py [--repeat N] [--no-module]

Prints median and p95 milliseconds per plan. The module run starts a fresh Python process per call, as Ansible
does, so it includes interpreter start-up and imports.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "collections")
sys.path.insert(0, COLLECTIONS)

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, model_catalog, sizing  # noqa: E402


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(label, samples_ms):
    print("%-44s n=%-5d median %8.3f ms   p95 %8.3f ms   max %8.3f ms"
          % (label, len(samples_ms), percentile(samples_ms, 0.5), percentile(samples_ms, 0.95), max(samples_ms)))


def bench_planner(repeat):
    per_plan, parse, fits = [], [], 0
    for _ in range(repeat):
        for hf_id in model_catalog.model_ids():
            started = time.perf_counter()
            resolved, config = model_catalog.lookup(hf_id)
            spec = sizing.ModelSpec(config, resolved)
            parse.append((time.perf_counter() - started) * 1000)
            for gpu in gpu_catalog.gpu_names():
                gpu_name, gpu_spec = gpu_catalog.lookup(gpu)
                started = time.perf_counter()
                result = sizing.plan(spec, resolved, resolved, gpu_name=gpu_name, gpu_spec=gpu_spec)
                per_plan.append((time.perf_counter() - started) * 1000)
                fits += bool(result["fits"])
    report("config parse + catalog lookup", parse)
    report("plan (%d models x %d GPUs)" % (len(model_catalog.model_ids()), len(gpu_catalog.gpu_names())), per_plan)
    print("  plans that fit (default targets, max_nodes=8): %d of %d" % (fits // repeat, len(per_plan) // repeat))


def bench_module(calls):
    """python -m the module with an args file, the way Ansible's module runner passes arguments."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    samples = []
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {"model": "meta-llama/Llama-3.1-70B-Instruct", "gpu": "A100-80GB"}}, handle)
        args_path = handle.name
    try:
        for _ in range(calls):
            started = time.perf_counter()
            completed = subprocess.run([sys.executable, "-m", "ansible_collections.gpuinfer.serving.plugins.modules.gpu_sizing", args_path],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            samples.append((time.perf_counter() - started) * 1000)
            if completed.returncode != 0:
                sys.exit("module run failed: %s %s" % (completed.stdout.decode(), completed.stderr.decode()))
        result = json.loads(completed.stdout.decode())
    finally:
        os.unlink(args_path)
    report("module end to end (python -m, 70B on A100)", samples)
    print("  -> TP%d x PP%d, %d KV tokens" % (result["plan"]["tensor_parallel_size"], result["plan"]["pipeline_parallel_size"],
                                           result["kv_cache_tokens"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes over the catalog (default 5)")
    parser.add_argument("--module-calls", type=int, default=10, help="end-to-end module runs (default 10)")
    parser.add_argument("--no-module", action="store_true", help="skip the end-to-end module runs")
    options = parser.parse_args()
    bench_planner(options.repeat)
    if not options.no_module:
        bench_module(options.module_calls)


if __name__ == "__main__":
    main()
