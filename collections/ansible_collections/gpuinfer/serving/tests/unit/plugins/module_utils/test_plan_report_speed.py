# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import plan_report
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing


def _plan(**changes):
    params = dict(model="meta-llama/Llama-3.1-8B-Instruct", gpu="H100-80GB", gpus_per_node=1, max_model_len=32768,
                  max_num_seqs=256, max_num_batched_tokens=8192, gpu_memory_utilization=0.92, replicas=2,
                  revision="main", fail_on_no_fit=False, input_len=1024, output_len=128, concurrency=[1, 64])
    params.update(changes)
    return gpu_sizing.size(params)


def test_the_report_shows_the_predicted_speed_of_each_planned_concurrency():
    result = _plan()
    lines = plan_report.render_report(result)
    start = lines.index("Speed per replica (predicted, vllm's step model; closed loop):")
    header, first, second, peak = lines[start + 1:start + 5]
    assert header.split()[:3] == ["clients", "in/out", "TTFT"]
    points = result["performance"]["points"]
    for line, point in zip((first, second), points):
        cells = line.split()
        assert cells[0] == str(point["concurrency"]) and cells[1] == "1024/128"
        assert cells[4] == "%.1f" % point["tpot_ms"]
        assert cells[6] == format(int(round(point["output_tokens_per_s"])), ",")
    per_replica = result["performance"]["peak_output_tokens_per_s_per_replica"]
    assert peak.startswith("  peak output tokens/s: %s per replica, %s for the deployment" % (
        format(int(round(per_replica)), ","), format(int(round(per_replica * 2)), ",")))


def test_no_speed_section_without_a_prediction():
    result = _plan(gpu=None, gpu_memory_gib=79.0)
    assert result["performance"] is None
    assert not [line for line in plan_report.render_report(result) if line.startswith("Speed")]
