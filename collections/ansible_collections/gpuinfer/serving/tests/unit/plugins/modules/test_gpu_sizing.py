# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import sizing
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing

CONVENTION_KEYS = {"model", "params", "active_params", "weights_bytes", "kv_cache_bytes_per_token", "plan",
                   "memory_per_gpu", "kv_cache_tokens", "max_concurrency", "fits", "vllm_args", "advice"}
PLAN_KEYS = {"tensor_parallel_size", "pipeline_parallel_size", "nodes", "gpus_per_node", "gpus_per_replica", "replicas",
             "gpu", "gpu_labels", "gpu_memory_gib", "dtype", "kv_cache_dtype", "quantization", "max_model_len",
             "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization", "warnings"}
MEMORY_KEYS = {"total", "usable", "weights", "activation_peak", "non_torch", "cuda_graph", "kv_cache"}
MODEL_KEYS = {"id", "hf_id", "architecture", "num_layers", "num_attention_heads", "num_kv_heads", "max_position_embeddings", "dtype"}


@pytest.fixture(autouse=True)
def module_process(monkeypatch):
    """main() as in a module's own process. Once controller code is imported into this pytest process (a test file
    importing ansible.errors or an action plugin), module warnings would go to the controller's display, not the result."""
    monkeypatch.setattr(module_utils_internal, "is_controller", False)


def run_module(capsys, **args):
    """main() with the given arguments: (exit code, parsed JSON result)."""
    with patch_module_args(args):
        with pytest.raises(SystemExit) as leaving:
            gpu_sizing.main()
    return leaving.value.code, json.loads(capsys.readouterr().out)


def test_result_has_the_convention_keys(capsys):
    code, result = run_module(capsys, model="meta-llama/Llama-3.1-70B-Instruct", gpu="A100-80GB", tensor_parallel_size=8)
    assert code == 0
    assert CONVENTION_KEYS <= set(result)
    assert PLAN_KEYS <= set(result["plan"])
    assert MEMORY_KEYS == set(result["memory_per_gpu"])
    assert MODEL_KEYS <= set(result["model"])
    assert result["changed"] is False and result["fits"] is True
    assert result["plan"]["tensor_parallel_size"] == 8
    assert result["kv_cache_bytes_per_token"] == 327680


def test_check_mode_gives_the_same_answer(capsys):
    _code, normal = run_module(capsys, model="llama-3.1-8b", gpu="NVIDIA-H100-80GB-HBM3")
    code, checked = run_module(capsys, model="llama-3.1-8b", gpu="NVIDIA-H100-80GB-HBM3", _ansible_check_mode=True)
    assert code == 0 and checked["changed"] is False
    assert checked["plan"] == normal["plan"] and checked["kv_cache_tokens"] == normal["kv_cache_tokens"]


def test_warnings_reach_ansible_and_the_plan(capsys):
    code, result = run_module(capsys, model="llama-3.1-405b", gpu="H100-80GB")
    assert code == 0
    assert result["plan"]["nodes"] == 2
    assert any("spans 2 nodes" in warning for warning in result["plan"]["warnings"])
    assert any("spans 2 nodes" in str(warning) for warning in result.get("warnings", []))


def test_no_fit_fails_by_default_with_the_reasons(capsys):
    code, result = run_module(capsys, model="llama-3.1-405b", gpu="A100-80GB", max_nodes=1)
    assert code == 1 and result["failed"]
    assert "no plan fits" in result["msg"] and "fits with more GPUs: TP8 x PP2" in result["msg"]
    assert result["fits"] is False and result["plan"]["tensor_parallel_size"] == 8


def test_no_fit_reports_when_asked_not_to_fail(capsys):
    code, result = run_module(capsys, model="llama-3.1-405b", gpu="A100-80GB", max_nodes=1, fail_on_no_fit=False)
    assert code == 0 and result["fits"] is False
    assert any("GiB more than its usable" in warning for warning in result["plan"]["warnings"])


@pytest.mark.parametrize("args, words", [
    ({"model": "llama-3-70b-instruct", "gpu": "A100-80GB"}, ["field: model", "close matches: meta-llama/Llama-3"]),
    ({"model": "llama-3.1-70b", "gpu": "V100"}, ["field: gpu", "allowed: A100-40GB", "A10G"]),
    ({"model": "llama-3.1-70b", "gpu": "A100-80GB", "tensor_parallel_size": 6}, ["field: tensor_parallel_size", "does not divide the 64 attention heads"]),
    ({"model": "llama-3.1-70b", "gpu": "A100-80GB", "max_model_len": -5}, ["field: max_model_len", "positive integer"]),
    ({"model": "llama-3.1-70b", "gpu": "A100-80GB", "gpu_memory_gib": 0}, ["field: gpu_memory_gib", "positive number"]),
    ({"model": "llama-3.1-70b", "gpu": "A100-80GB", "max_nodes": 0}, ["field: max_nodes", "positive integer"]),
    ({"model": "llama-3.1-70b", "gpu": "A100-80GB", "dtype": "int2"}, ["dtype", "must be one of"]),
    ({"model": "llama-3.1-70b"}, ["one of the following is required: gpu, gpu_memory_gib"]),
])
def test_bad_input_fails_cleanly(capsys, args, words):
    code, result = run_module(capsys, **args)
    assert code == 1 and result["failed"]
    for word in words:
        assert word in result["msg"]
    assert "Traceback" not in result["msg"]


def test_config_path_and_folder(capsys, tmp_path):
    config = dict(gpu_sizing.model_catalog.MODELS["Qwen/Qwen2.5-7B-Instruct"], _name_or_path="Qwen/Qwen2.5-7B-Instruct")
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, from_folder = run_module(capsys, model=str(tmp_path), gpu="L4")
    assert code == 0
    assert from_folder["params"] == 7615616512
    # A config.json does not say which repository it came from (_name_or_path is often a local folder):
    # the path must never become the model id the engine and the download Job receive.
    assert from_folder["model"]["hf_id"] is None
    assert not [arg for arg in from_folder["vllm_args"] if str(tmp_path) in arg]
    _code, from_file = run_module(capsys, model=str(tmp_path / "config.json"), gpu="L4")
    assert from_file["plan"] == from_folder["plan"]


def test_config_path_deploys_the_hub_id_and_revision_given(capsys, tmp_path):
    config = gpu_sizing.model_catalog.MODELS["Qwen/Qwen3-30B-A3B"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    code, result = run_module(capsys, model=str(tmp_path / "config.json"), gpu="H100", hub_id="Qwen/Qwen3-30B-A3B",
                              revision="ad44e777bcd18fa416d9da3bd8f70d33ebb85d39")
    assert code == 0
    assert result["model"]["id"] == str(tmp_path / "config.json")
    assert result["model"]["hf_id"] == "Qwen/Qwen3-30B-A3B"
    assert result["model"]["revision"] == "ad44e777bcd18fa416d9da3bd8f70d33ebb85d39"


def test_malformed_config_fails_cleanly(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{\"hidden_size\": ")
    code, result = run_module(capsys, model=str(tmp_path), gpu="L4")
    assert code == 1 and "not valid JSON" in result["msg"] and "field: model" in result["msg"]


def test_size_is_callable_without_ansible_defaults():
    result = gpu_sizing.size({"model": "mistral-7b", "gpu": "A10G", "max_model_len": 8192})
    assert result["plan"]["tensor_parallel_size"] == 1 and result["plan"]["gpus_per_node"] == 4
    with pytest.raises(sizing.SizingError):
        gpu_sizing.size({"model": "mistral-7b", "gpu": "A10G", "max_model_len": 65536})


def test_performance_is_returned_with_default_loads(capsys):
    code, result = run_module(capsys, model="llama-3.1-8b", gpu="H100-80GB", max_model_len=32768)
    assert code == 0
    speed = result["performance"]
    assert speed["engine_model"] == "vllm" and speed["assumptions"]
    levels = [point["concurrency"] for point in speed["points"]]
    assert levels == sorted(set([1, 16, 64, result["plan"]["max_num_seqs"]]))
    for point in speed["points"]:
        assert (point["input_len"], point["output_len"]) == (1024, 128)
        assert point["ttft_ms"] > 0 and point["tpot_ms"] > 0 and point["output_tokens_per_s"] > 0
        assert point["bound"] in ("weight reads", "KV reads", "compute", "communication", "prefill interference")
    assert speed["peak_output_tokens_per_s"] == speed["peak_output_tokens_per_s_per_replica"]
    assert speed["peak_output_tokens_per_s"] >= max(point["output_tokens_per_s"] for point in speed["points"])


def test_performance_scales_with_replicas_and_takes_the_loads_given(capsys):
    code, result = run_module(capsys, model="llama-3.1-8b", gpu="H100-80GB", max_model_len=32768, replicas=3,
                              input_len=512, output_len=64, concurrency=[32, 4, 4])
    assert code == 0
    speed = result["performance"]
    assert [point["concurrency"] for point in speed["points"]] == [4, 32]
    assert speed["points"][0]["input_len"] == 512 and speed["points"][0]["output_len"] == 64
    assert speed["peak_output_tokens_per_s"] == pytest.approx(3 * speed["peak_output_tokens_per_s_per_replica"], rel=1e-3)


def test_performance_is_null_without_a_catalog_gpu(capsys):
    code, result = run_module(capsys, model="llama-3.1-8b", gpu_memory_gib=79.0, max_model_len=8192)
    assert code == 0 and result["performance"] is None


@pytest.mark.parametrize("args, words", [
    ({"input_len": 0}, ["field: input_len", "input_len (tokens per request) must be a positive integer, got 0"]),
    ({"output_len": -1}, ["field: output_len", "output_len (tokens per request) must be a positive integer, got -1"]),
    ({"concurrency": []}, ["field: concurrency", "non-empty list of positive integers"]),
    ({"concurrency": [8, 0]}, ["field: concurrency", "0 is not a positive integer"]),
    ({"input_len": 8192, "output_len": 1}, ["field: input_len", "exceeds max_model_len=8192"]),
])
def test_bad_load_options_fail_cleanly(capsys, args, words):
    code, result = run_module(capsys, model="llama-3.1-8b", gpu="H100-80GB", max_model_len=8192, **args)
    assert code == 1 and result["failed"]
    for word in words:
        assert word in result["msg"]


def test_ambiguous_gpu_name_fails_with_the_choices(capsys):
    code, result = run_module(capsys, model="llama-3.1-8b", gpu="A100")
    assert code == 1 and "field: gpu" in result["msg"] and "A100-40GB" in result["msg"] and "A100-80GB" in result["msg"]


SLO_ARGS = {"model": "llama-3.1-70b", "gpu": "H100-80GB", "input_len": 1024, "output_len": 128,
            "slo_ttft_ms": 1000, "slo_tpot_ms": 30, "request_rate": 20}


def test_slo_targets_choose_the_plan(capsys):
    code, result = run_module(capsys, **SLO_ARGS)
    assert code == 0 and result["fits"] is True
    chosen = result["slo"]["chosen"]
    assert result["slo"]["met"] is True and result["slo"]["alternatives"]
    assert result["plan"]["tensor_parallel_size"] == chosen["tensor_parallel_size"]
    assert result["plan"]["replicas"] == chosen["replicas"] == result["slo"]["autoscaling"]["max_replicas"]
    assert result["plan"]["total_gpus"] == chosen["gpus"]
    assert chosen["ttft_ms"] <= 1000 and chosen["tpot_ms"] <= 30
    assert chosen["replicas"] * chosen["requests_per_s_per_replica"] >= 20


def test_an_slo_no_layout_meets_fails_with_the_nearest_targets(capsys):
    code, result = run_module(capsys, **{**SLO_ARGS, "slo_tpot_ms": 0.5})
    assert code == 1 and result["failed"]
    assert result["msg"].startswith("SLO not met (slo_ttft_ms=1000, slo_tpot_ms=0.5, request_rate=20)")
    assert "best achievable: TTFT" in result["msg"] and "nearest feasible targets" in result["msg"]
    assert result["slo"]["met"] is False and result["slo"]["nearest"]["tpot_ms"] > 0.5
    code, result = run_module(capsys, **{**SLO_ARGS, "slo_tpot_ms": 0.5, "fail_on_no_fit": False})
    assert code == 0 and result["slo"]["met"] is False
    assert any("SLO not met" in str(warning) for warning in result.get("warnings", []))
    assert any(warning.startswith("SLO not met") for warning in result["plan"]["warnings"])


@pytest.mark.parametrize("name, value, words", [
    ("slo_ttft_ms", 0, ["slo_ttft_ms=0.0 must be a number greater than 0", "field: slo_ttft_ms"]),
    ("slo_tpot_ms", -3, ["slo_tpot_ms=-3.0 must be a number greater than 0", "field: slo_tpot_ms"]),
    ("request_rate", "lots", ["request_rate"]),
])
def test_bad_slo_values_fail_cleanly(capsys, name, value, words):
    code, result = run_module(capsys, **dict(SLO_ARGS, **{name: value}))
    assert code == 1 and result["failed"] and "Traceback" not in result["msg"]
    for word in words:
        assert word in result["msg"]


@pytest.mark.parametrize("args", [SLO_ARGS, dict(SLO_ARGS, slo_tpot_ms=0.5), dict(SLO_ARGS, request_rate=0)])
def test_the_action_plugin_answers_slo_plans_as_the_module(capsys, args):
    from unittest.mock import MagicMock

    from ansible.playbook.task import Task
    from ansible_collections.gpuinfer.serving.plugins.action import gpu_sizing as sizing_action

    _code, expected = run_module(capsys, **args)
    task = MagicMock(Task)
    task.args, task.action, task.check_mode, task.diff, task.async_val = dict(args), "gpuinfer.serving.gpu_sizing", False, False, 0
    plugin = sizing_action.ActionModule(task, connection=MagicMock(), play_context=MagicMock(), loader=MagicMock(),
                                        templar=MagicMock(), shared_loader_obj=MagicMock())
    result = plugin.run(task_vars={})
    assert "exception" not in result
    assert bool(result.get("failed")) == bool(expected.get("failed"))
    assert result.get("msg") == expected.get("msg")
    assert result.get("slo") == expected.get("slo") and result.get("plan") == expected.get("plan")
