# -*- coding: utf-8 -*-
"""The plan report's flags section names the engine the plan is for and holds that engine's own flags."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_nim
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts, gpu_catalog, model_catalog, sizing
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.plan_report import render_report


def plan_for(engine, **options):
    hf_id, config = model_catalog.lookup("llama-3.1-8b")
    gpu_name, gpu_spec = gpu_catalog.lookup("H100-80GB")
    return sizing.plan(sizing.ModelSpec(config, hf_id), hf_id, hf_id, gpu_name=gpu_name, gpu_spec=gpu_spec, engine=engine,
                       **options)


def section(lines, title):
    """The indented lines under ``title``, up to the next blank line."""
    start = lines.index(title) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return [line.strip() for line in lines[start:end]]


def flags_titles(lines):
    return [line for line in lines if line.endswith(" flags:")]


def test_a_vllm_plan_prints_its_vllm_args_under_vllm():
    result = plan_for("vllm", served_model_name="llama")
    assert "engine" not in result["plan"]
    lines = render_report(result)
    assert flags_titles(lines) == ["vLLM flags:"]
    assert section(lines, "vLLM flags:") == [" ".join(engine_facts.vllm_plan_flags(result) + ["--served-model-name=llama"])]
    assert section(lines, "vLLM flags:") == [" ".join(result["vllm_args"])]


def test_an_sglang_plan_prints_sglangs_server_arguments():
    result = plan_for("sglang")
    lines = render_report(result)
    assert flags_titles(lines) == ["SGLang flags:"]
    (flags,) = section(lines, "SGLang flags:")
    assert flags == " ".join(engine_facts.sglang_plan_flags(result))
    # The served model name the plan was given, in SGLang's flag, as vLLM's section shows it.
    named = plan_for("sglang", served_model_name="llama")
    assert section(render_report(named), "SGLang flags:") == [" ".join(engine_facts.sglang_plan_flags(named) + ["--served-model-name=llama"])]
    # SGLang's names, the plan's fraction: nothing of vLLM's vocabulary.
    assert "--tp-size=1" in flags and "--mem-fraction-static=%s" % result["plan"]["mem_fraction_static"] in flags
    assert "--context-length=%d" % result["plan"]["max_model_len"] in flags
    assert "--tensor-parallel-size" not in flags and "--gpu-memory-utilization" not in flags and "vLLM" not in flags


def test_a_nim_plan_prints_nims_passthrough_and_variables():
    result = plan_for("nim")
    lines = render_report(result)
    assert flags_titles(lines) == ["NVIDIA NIM flags:"]
    passthrough, variables = section(lines, "NVIDIA NIM flags:")
    # What the nim role puts in NIM_PASSTHROUGH_ARGS, from engine_nim itself.
    assert passthrough == "NIM_PASSTHROUGH_ARGS: " + " ".join(engine_nim.passthrough_args(result))
    assert "--tensor-parallel-size=1" in passthrough and "--max-model-len" not in passthrough
    assert variables.split() == ["NIM_PIPELINE_PARALLEL_SIZE=1", "NIM_MAX_MODEL_LEN=%d" % result["plan"]["max_model_len"]]
    named = plan_for("nim", served_model_name="llama")
    assert section(render_report(named), "NVIDIA NIM flags:")[1].split()[-1] == "NIM_SERVED_MODEL_NAME=llama"


@pytest.mark.parametrize("engine", ["vllm", "nim", "sglang"])
def test_the_flags_section_sits_where_it_did_and_the_rest_is_unchanged(engine):
    result = plan_for(engine)
    lines = render_report(result)
    titles = flags_titles(lines)
    assert len(titles) == 1 and lines.index(titles[0]) > lines.index("Memory per GPU (%.1f GiB total):"
                                                                     % (result["memory_per_gpu"]["total"] / 1024 ** 3))
    assert "vLLM flags:" not in lines or engine == "vllm"


def test_no_flags_section_without_flags_or_for_a_plan_the_engine_cannot_read():
    result = plan_for("sglang")
    assert not flags_titles(render_report(dict(result, vllm_args=[])))
    broken = dict(result, plan=dict(result["plan"], kv_cache_dtype="int4"))
    assert not flags_titles(render_report(broken))
