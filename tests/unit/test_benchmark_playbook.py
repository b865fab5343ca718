"""playbooks/benchmark.yml on a recorded `vllm bench serve` run (tests/fixtures/vllm-perf/bench/bench-c1.txt, vLLM 0.26.0
on one H100 80GB): measured next to planned, benchmark.json next to the plan files, the report's "Benchmarked"
section, the SLO failure, and the Job in render mode."""

import json
import os
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "fixtures" / "vllm-perf" / "bench" / "bench-c1.txt"
# The load the fixture ran, planned for the GPU and engine flags it ran on (tests/fixtures/vllm-perf/README.md).
PLAN_VARS = ["-e", "plan_model=meta-llama/Llama-3.1-8B-Instruct", "-e", "plan_gpu=H100-80GB", "-e", "plan_gpus_per_node=1",
             "-e", "plan_max_model_len=32768", "-e", "plan_max_num_seqs=256", "-e", "plan_max_num_batched_tokens=8192",
             "-e", "plan_gpu_memory_utilization=0.92", "-e", "plan_input_len=1024", "-e", "plan_output_len=128",
             "-e", '{"plan_concurrency": [1]}']


def benchmark(tmp_path, *extra, log=True):
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "playbooks/benchmark.yml"] + PLAN_VARS
    if log:
        command += ["-e", "gpuinfer_benchmark_log=%s" % os.path.relpath(BENCH, ROOT)]
    command += ["-e", "plan_output_dir=%s" % tmp_path, "-e", "benchmark_output_dir=%s" % tmp_path] + list(extra)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    return result, " ".join(result.stdout.split())


def test_benchmark_prints_both_columns_and_writes_benchmark_json(tmp_path):
    result, output = benchmark(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Benchmarked with vllm bench serve (bench-c1.txt): ok" in output
    assert "concurrency in/out figure measured planned error" in output
    plan = json.loads((tmp_path / "plan.json").read_text())
    planned = plan["performance"]["points"][0]
    assert planned["concurrency"] == 1
    # One row per figure: the measured value next to the planned one.
    assert "TTFT p50 (ms) 41.41 %.2f" % planned["ttft_ms"] in output
    assert "TPOT p50 (ms) 6.23 %.2f" % planned["tpot_ms"] in output
    assert "output tok/s 152.28 %.2f" % planned["output_tokens_per_s"] in output

    written = json.loads((tmp_path / "benchmark.json").read_text())
    assert written["status"] == "ok"
    (point,) = written["points"]
    assert (point["concurrency"], point["input_len"], point["output_len"]) == (1, 1024, 128)
    assert point["measured"] == {"ttft_ms_p50": 41.41, "ttft_ms_p90": 57.71, "tpot_ms_p50": 6.23, "tpot_ms_p90": 6.26,
                                 "output_tokens_per_s": 152.28}
    assert point["planned"] == {"ttft_ms_p50": planned["ttft_ms"], "ttft_ms_p90": None, "tpot_ms_p50": planned["tpot_ms"],
                                "tpot_ms_p90": None, "output_tokens_per_s": planned["output_tokens_per_s"]}
    report = (tmp_path / "plan-report.txt").read_text()
    assert "GPU plan for meta-llama/Llama-3.1-8B-Instruct" in report
    section = report.split("--- Benchmarked ")[1]
    assert "Benchmarked with vllm bench serve (bench-c1.txt): ok" in section and "41.41" in section


def test_benchmark_fails_on_the_plans_slo_only_when_asked(tmp_path):
    result, _output = benchmark(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    plan = yaml.safe_load((tmp_path / "plan.yml").read_text())
    plan["slo"] = {"ttft_ms": 40.0, "tpot_ms": 10.0}
    with_slo = tmp_path / "plan-with-slo.yml"
    with_slo.write_text(yaml.safe_dump(plan))
    result, output = benchmark(tmp_path, "-e", "plan_from_file=%s" % with_slo)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "measured TTFT p50 (ms) 41.41 exceeds the plan" in output and "SLO 40.00" in output
    result, output = benchmark(tmp_path, "-e", "plan_from_file=%s" % with_slo, "-e", "gpuinfer_benchmark_fail_on_slo=true")
    assert result.returncode != 0
    assert "fatal" in output and "concurrency 1: measured TTFT p50 (ms) 41.41 exceeds the plan" in output
    # The report keeps one Benchmarked section however often it runs.
    assert (tmp_path / "plan-report.txt").read_text().count("--- Benchmarked ") == 1


def test_render_mode_writes_the_job(tmp_path):
    result, _output = benchmark(tmp_path, "-e", "gpuinfer_render_dir=%s" % tmp_path, log=False)
    assert result.returncode == 0, result.stdout[-4000:]
    job = yaml.safe_load((tmp_path / "benchmark.yaml").read_text())
    assert job["kind"] == "Job" and job["metadata"]["name"] == "llm-benchmark"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.34.0"
    assert "vllm bench serve --backend vllm --base-url http://llm.llm-serving.svc.cluster.local:8000" in container["command"][2]
    assert not (tmp_path / "benchmark.json").exists()
