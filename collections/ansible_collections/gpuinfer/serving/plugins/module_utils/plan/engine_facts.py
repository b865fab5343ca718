# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""What the planner knows of each engine: its name and title, the release whose memory accounting a plan follows,
and the flags a plan implies in the engine's own terms.

The planner (sizing.py, plan_report.py) reads these; the engine descriptions (deploy/engines/engine_<name>.py) build
their containers from the same functions, so the flags the plan report shows are the flags the pods run with. Nothing
here builds an object: plan/ never imports deploy/.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The engines a plan can be made for, in the order gpu_sizing lists them (its engine option).
NAMES = ("vllm", "sglang", "nim")
TITLES = {"vllm": "vLLM", "sglang": "SGLang", "nim": "NVIDIA NIM"}

# The vLLM release the vllm role pins (vllm_image_tag); the planner models this release's memory accounting.
VLLM_VERSION = "0.34.0"
# The vLLM release NIM 2.1.6 runs (its release notes: "vLLM 0.32.0, SGLang 0.5.22"; tests/contracts/nim/nim-2.1.json,
# key rn216): a NIM plan follows that release's memory accounting, not the vllm role's pinned image.
NIM_VLLM_VERSION = "0.32.0"
# The SGLang release the sglang role pins (sglang_image_tag): the source of every term of sizing_sglang.py.
SGLANG_VERSION = "0.5.23"

# vLLM's and SGLang's --dtype names for the float precisions the planner plans in.
DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# The planner's KV cache precisions in SGLang's --kv-cache-dtype choices (fp8 is e4m3 on Hopper and later).
SGLANG_KV_CACHE_DTYPES = {"auto": "auto", "fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2", "bf16": "bf16"}
# Plan flags NIM 2.x takes from documented NIM_* variables (NIM_PIPELINE_PARALLEL_SIZE, NIM_MAX_MODEL_LEN,
# NIM_SERVED_MODEL_NAME), or from the profile it selects (precision). The tensor parallel size has no
# NIM_* variable in the 2.x env reference (tests/contracts/nim), so it goes through NIM_PASSTHROUGH_ARGS.
NIM_NOT_PASSED_THROUGH = ("--pipeline-parallel-size", "--max-model-len", "--served-model-name", "--dtype", "--quantization")


class EngineError(ValueError):
    """Raised for engine settings (or a plan) that cannot produce a working container."""


def flag_name(arg):
    return str(arg).split("=", 1)[0]


def plan_value(plan, key, required=True):
    value = plan.get(key)
    if required and (value is None or value == ""):
        raise EngineError("the plan has no plan.%s: re-run gpu_sizing or set it explicitly" % key)
    return value


def quantize_online(plan):
    """True when the engine must quantize a float checkpoint itself (plan.quantize_online: FP8 is the only method
    that can)."""
    return bool((plan.get("plan") or {}).get("quantize_online"))


def cast_dtype(plan):
    """The engine's --dtype value when the plan serves a float checkpoint (plan.checkpoint_dtype) at another float
    precision."""
    sizing = plan.get("plan") or {}
    dtype = sizing.get("dtype")
    checkpoint = sizing.get("checkpoint_dtype")
    if dtype in DTYPE_NAMES and checkpoint and dtype != checkpoint:
        return DTYPE_NAMES[dtype]
    return None


def vllm_plan_flags(plan):
    """The vLLM flags a gpu_sizing plan implies, one "--flag=value" string each.

    The single source of the plan's engine flags: the plan report (gpu_sizing's vllm_args),
    the vLLM pod's arguments and NIM's pass-through all come from here.
    """
    sizing = plan.get("plan") or {}
    flags = [
        "--tensor-parallel-size=%d" % int(plan_value(sizing, "tensor_parallel_size")),
        "--pipeline-parallel-size=%d" % int(plan_value(sizing, "pipeline_parallel_size")),
        "--max-model-len=%d" % int(plan_value(sizing, "max_model_len")),
        "--gpu-memory-utilization=%s" % plan_value(sizing, "gpu_memory_utilization"),
        "--max-num-seqs=%d" % int(plan_value(sizing, "max_num_seqs")),
    ]
    if sizing.get("max_num_batched_tokens"):
        flags.append("--max-num-batched-tokens=%d" % int(sizing["max_num_batched_tokens"]))
    dtype = cast_dtype(plan)
    if dtype:
        flags.append("--dtype=%s" % dtype)
    # A pre-quantized checkpoint needs no flag: vLLM reads the method from its quantization_config.
    if quantize_online(plan):
        flags.append("--quantization=fp8")
    flags.append("--kv-cache-dtype=%s" % (sizing.get("kv_cache_dtype") or "auto"))
    return flags


def nim_passthrough_flags(plan):
    """The plan's vLLM flags NIM has no NIM_* variable for (its NIM_PASSTHROUGH_ARGS, before the user's own)."""
    # NIM 2.x runs vLLM inside: the pass-through flags are vLLM's.
    return [flag for flag in vllm_plan_flags(plan)
            if flag_name(flag) not in NIM_NOT_PASSED_THROUGH and flag != "--kv-cache-dtype=auto"]


def sglang_mem_fraction_static(sizing):
    """--mem-fraction-static: the fraction a gpu_sizing plan made with engine=sglang carries (SGLang's own default
    reserve for the GPU, TP, PP and chunked prefill size, or the gpu_memory_utilization the user set); a plan made
    for vLLM has none, and its gpu_memory_utilization is used as before."""
    if sizing.get("mem_fraction_static") is not None:
        return sizing["mem_fraction_static"]
    return plan_value(sizing, "gpu_memory_utilization")


def sglang_plan_flags(plan):
    """The SGLang server arguments a gpu_sizing plan implies, one "--flag=value" string each."""
    sizing = plan.get("plan") or {}
    kv_dtype = str(sizing.get("kv_cache_dtype") or "auto")
    if kv_dtype not in SGLANG_KV_CACHE_DTYPES:
        raise EngineError("SGLang has no KV cache precision for plan.kv_cache_dtype=%r; allowed: %s"
                          % (kv_dtype, ", ".join(sorted(SGLANG_KV_CACHE_DTYPES))))
    flags = [
        "--tp-size=%d" % int(plan_value(sizing, "tensor_parallel_size")),
        "--pp-size=%d" % int(plan_value(sizing, "pipeline_parallel_size")),
        "--context-length=%d" % int(plan_value(sizing, "max_model_len")),
        # SGLang's static pool (weights + KV cache) takes the GPU share the plan sized.
        "--mem-fraction-static=%s" % sglang_mem_fraction_static(sizing),
        "--max-running-requests=%d" % int(plan_value(sizing, "max_num_seqs")),
    ]
    if sizing.get("max_num_batched_tokens"):
        flags.append("--chunked-prefill-size=%d" % int(sizing["max_num_batched_tokens"]))
    dtype = cast_dtype(plan)
    if dtype:
        flags.append("--dtype=%s" % dtype)
    if quantize_online(plan):
        flags.append("--quantization=fp8")
    flags.append("--kv-cache-dtype=%s" % SGLANG_KV_CACHE_DTYPES[kv_dtype])
    return flags
