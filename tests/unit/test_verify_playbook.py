"""playbooks/verify.yml on recorded vLLM start-ups (tests/fixtures/vllm-boot): the planned-vs-actual table,
verify.json next to the plan files, the report's "Verified" section, the warning and the failure."""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BOOT = ROOT / "tests" / "fixtures" / "vllm-boot"
PLAN_VARS = BOOT / "verify-llama8b-h200.yml"
LOG = BOOT / "logs" / "llama8b-u092-mml131k-seq1024-bt8192.log"


def verify(tmp_path, *extra):
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "playbooks/verify.yml", "-e", "@%s" % PLAN_VARS,
               "-e", "gpuinfer_verify_log=%s" % os.path.relpath(LOG, ROOT), "-e", "plan_output_dir=%s" % tmp_path,
               "-e", "verify_output_dir=%s" % tmp_path] + list(extra)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    return result, " ".join(result.stdout.split())


def test_verify_prints_the_table_and_writes_verify_json(tmp_path):
    result, output = verify(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Verified against llama8b-u092-mml131k-seq1024-bt8192.log: ok" in output
    written = json.loads((tmp_path / "verify.json").read_text())
    assert written["status"] == "ok"
    rows = {row["figure"]: row for row in written["rows"]}
    # The recorded engine logged 919,824 tokens; the plan for the same GPU and flags is within 2%, not above by 2%.
    assert rows["KV cache tokens"]["actual"] == 919824
    assert -2.0 <= rows["KV cache tokens"]["error_pct"] <= 2.0
    assert rows["weights per GPU (bytes)"]["actual"] == int(round(15.0 * 1024 ** 3))
    report = (tmp_path / "plan-report.txt").read_text()
    assert "GPU plan for meta-llama/Llama-3.1-8B-Instruct" in report
    assert "Verified against llama8b-u092-mml131k-seq1024-bt8192.log: ok" in report
    assert "KV cache tokens" in report.split("Verified against")[1]


def test_verify_warns_beyond_the_tolerance(tmp_path):
    result, output = verify(tmp_path, "-e", "gpuinfer_verify_tolerance=0.01")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "WARNING: KV cache tokens: planned" in output and "tolerance 0.01%" in output
    assert json.loads((tmp_path / "verify.json").read_text())["status"] == "warn"


def test_verify_fails_below_min_concurrency(tmp_path):
    # The recorded engine holds 919,824 / 131,072 = 7.02 full-context requests; a plan that promises 8 is refused.
    result, output = verify(tmp_path, "-e", "plan_min_concurrency=8")
    assert result.returncode != 0
    assert "the engine holds 7.02 full-context (131,072-token) requests, fewer than min_concurrency=8" in output


@pytest.mark.parametrize("mode", ["render"])
def test_verify_does_nothing_in_render_mode(tmp_path, mode):
    result, output = verify(tmp_path, "-e", "gpuinfer_render_dir=%s" % tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert not (tmp_path / "verify.json").exists()
    assert "Verified against" not in output
