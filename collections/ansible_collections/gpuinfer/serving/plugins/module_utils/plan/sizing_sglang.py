# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""SGLang's own memory accounting, for gpu_sizing with engine=sglang.

Pure Python (no Ansible, no torch). sizing.py computes the weights of each rank and calls these terms; they follow
the SGLang release the sglang role pins (engine_facts.SGLANG_VERSION, 0.5.23; file and function named at each term) and
are calibrated on real SGLang 0.5.17 start-ups on one H100 (tests/fixtures/sglang-boot), whose KV-pool code has the same structure.

Per GPU (``KVCacheConfigurator._profile_available_bytes`` and ``DefaultPoolConfigurator.calculate_pool_sizes``):

    pre        = free memory measured before the weights load       ("Load weight begin. avail mem=")
    slack      = pre x (1 - mem_fraction_static)                    (activations and CUDA graphs live here)
    rest       = free memory after loading - slack
               = mem_fraction_static x pre - (weights + the rest that stays resident)
    tokens     = rest // cell_size, rounded down to the page size   ("KV Cache is allocated ... #tokens: N")
    cell_size  = KV heads per rank x (head_dim + v_head_dim) x layers of the rank x KV dtype bytes

and with PP the ranks take the smallest token count (``_apply_token_constraints``: all_reduce MIN).

Unlike vLLM the KV figure is a pool of tokens shared by all requests: no per-request block rounding.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

GIB = 1024 ** 3
MIB = 1024 ** 2

# total - pre: CUDA context, torch.distributed initialisation and the allocator's reserve before the weights load.
# Fixtures (SGLang 0.5.17, one H100, torch total 79.18 GiB): "Load weight begin. avail mem=78.50 GB" in all three
# start-ups, so 0.68 GiB at TP1.
PRE_LOAD_OVERHEAD_BYTES = int(0.68 * GIB)
# Not measured yet (no TP > 1 or PP > 1 SGLang fixture): NCCL communicators and custom all-reduce buffers that
# ``init_torch_distributed`` allocates before the weights (the same allowance sizing.py makes for vLLM).
DIST_TP_BASE_BYTES = int(0.5 * GIB)
DIST_TP_PER_RANK_BYTES = int(0.1 * GIB)
DIST_PP_BYTES = int(0.25 * GIB)
# Resident after "Load weight end" besides the weights themselves: the rotary cos/sin cache
# (layers/rotary_embedding/base.py ``_compute_cos_sin_cache``: max_position_embeddings x rotary dim, float32,
# one shared module). Fixtures: Llama-3.1-8B loads 15.02 GB = weights 14.96 GiB + 64 MiB (131072 x 128 x 4 bytes),
# Qwen3-14B 27.53 GB = 27.51 GiB + 20 MiB (40960 x 128 x 4).
ROPE_CACHE_BYTES_PER_VALUE = 4
# Small allocations between loading and sizing the pool, and the 0.01 GB rounding of SGLang's log: the fixtures' pools
# are 3-6 MiB below weights + rope cache; 32 MiB keeps every prediction below SGLang's (never over).
RESIDENT_MARGIN_BYTES = 32 * MIB
# server_args page_size: 1 for the default attention backends of MHA models; MLA backends (FlashMLA, cutlass MLA,
# trtllm MLA) force 64 (arg_groups/overrides.py).
PAGE_SIZE = 1
MLA_PAGE_SIZE = 64


def page_size(spec):
    return MLA_PAGE_SIZE if spec.is_mla else PAGE_SIZE


def pipeline_partition(num_layers, pipeline_parallel_size):
    """Layer counts per pipeline stage as SGLang splits them (distributed/utils.py ``get_pp_indices``: the last
    ``num_layers % pp`` stages take one extra layer; vLLM gives them to the stages before the last)."""
    base = num_layers // pipeline_parallel_size
    remainder = num_layers % pipeline_parallel_size
    return [base + (1 if rank >= pipeline_parallel_size - remainder else 0) for rank in range(pipeline_parallel_size)]


def cell_size(spec, kv_dtype_bytes, tp, num_layers):
    """KV bytes of one token on one rank (model_executor/pool_configurator.py
    ``DefaultPoolConfigurator._compute_cell_size``): MHA/GQA ``get_num_kv_heads(tp) x (head_dim + v_head_dim) x layers
    x element size`` (KV heads replicate when TP exceeds them: max(1, kv_heads // tp)); MLA
    ``(kv_lora_rank + qk_rope_head_dim) x layers x element size`` (``calculate_mla_kv_cache_dim``), not split by TP."""
    if spec.is_mla:
        return (spec.kv_lora_rank + spec.qk_rope_head_dim) * num_layers * kv_dtype_bytes
    kv_heads = max(1, spec.num_kv_heads // tp)
    return kv_heads * (spec.head_dim + spec.head_dim) * num_layers * kv_dtype_bytes


def rope_cache_bytes(spec):
    """The rotary embedding's cos/sin cache (float32, max_position_embeddings x rotary dim), resident with the weights."""
    positions = spec.max_position_embeddings or 0
    rotary_dim = spec.qk_rope_head_dim if spec.is_mla else int(spec.head_dim * float(spec.config.get("partial_rotary_factor") or 1.0))
    return positions * rotary_dim * ROPE_CACHE_BYTES_PER_VALUE


def pre_load_overhead(tp, pp):
    """total - pre: what is gone before the weights load."""
    value = PRE_LOAD_OVERHEAD_BYTES
    if tp > 1:
        value += DIST_TP_BASE_BYTES + DIST_TP_PER_RANK_BYTES * tp
    if pp > 1:
        value += DIST_PP_BYTES
    return value


def pool_tokens(rest_bytes, cell, page):
    """``DefaultPoolConfigurator.calculate_pool_sizes``: available_bytes // cell_size, rounded down to the page size."""
    if rest_bytes <= 0 or cell <= 0:
        return 0
    tokens = int(rest_bytes) // int(cell)
    return tokens // page * page


# --------------------------------------------------------------------------------------------
# SGLang's default --mem-fraction-static (arg_groups/memory_hook.py handle_gpu_memory_settings, 0.5.23)
# --------------------------------------------------------------------------------------------

def default_chunked_prefill_size(gpu_mem_mib):
    """``handle_gpu_memory_settings``: chunked_prefill_size by GPU memory capacity (MiB)."""
    if gpu_mem_mib is None:
        return 4096
    if gpu_mem_mib < 20 * 1024:
        return 2048
    if gpu_mem_mib < 60 * 1024:
        return 4096
    if gpu_mem_mib < 160 * 1024:
        return 8192
    return 16384


def decode_cuda_graph_max_bs(gpu_mem_mib, tp, max_running_requests=None):
    """``handle_gpu_memory_settings``: cuda_graph_config.decode.max_bs by GPU memory and TP, capped by
    --max-running-requests when that is smaller."""
    if gpu_mem_mib is None:
        max_bs = 160
    elif gpu_mem_mib < 20 * 1024:
        max_bs = 8
    elif gpu_mem_mib < 35 * 1024:
        max_bs = 48 if tp < 4 else 160
    elif gpu_mem_mib < 60 * 1024:
        max_bs = 32 if tp < 4 else 160
    elif gpu_mem_mib < 160 * 1024:
        max_bs = 256 if tp < 4 else 512
    else:
        max_bs = 512
    if max_running_requests is not None and max_bs > max_running_requests:
        max_bs = max_running_requests
    return max_bs


def prefill_cuda_graph_batch_sizes(max_bs):
    """arg_groups/cuda_graph_hook.py ``generate_prefill_cuda_graph_batch_sizes``: the token counts captured."""
    sizes = (list(range(4, 33, 4)) + list(range(48, 257, 16)) + list(range(288, 513, 32)) + list(range(576, 1024 + 1, 64))
             + list(range(1280, 4096 + 1, 256)) + list(range(4608, max_bs + 1, 512)))
    return [size for size in sizes if size <= max_bs]


def reserve_for_graph_mb(decode_max_bs, chunked_prefill_size, pp, is_mla):
    """arg_groups/memory_hook.py ``reserve_for_graph_mb`` (no DP attention, no disaggregation): 2 MiB per decode
    batch slot with decode graphs (backend full by default); with the breakable prefill graph (CUDA's default,
    disabled by default with PP > 1: cuda_graph_hook.py ``apply_cuda_graph_compatibility``) 8 MiB per captured
    token count, or 1.5 GiB with an MLA backend."""
    reserved = decode_max_bs * 2.0
    if pp == 1:
        if not is_mla:
            # prefill max_bs defaults to chunked_prefill_size (min(8192, ...) with MLA).
            reserved += len(prefill_cuda_graph_batch_sizes(chunked_prefill_size)) * 8
        else:
            reserved += 1.5 * 1024
    return reserved


def default_reserved_mb(gpu_mem_mib, tp, pp, chunked_prefill_size=None, max_running_requests=None, is_mla=False):
    """(activation part, graph part) in MiB of the reserve ``handle_gpu_memory_settings`` keeps out of the static
    pool: 512 MiB + 1.5 MiB x max(chunked_prefill_size, 2048) + TP x PP / 8 GiB (+ the graph reserve), at least
    10 GiB on GPUs above 60 GiB (the floor is counted in the activation part)."""
    if chunked_prefill_size is None:
        chunked_prefill_size = default_chunked_prefill_size(gpu_mem_mib)
    activation_tokens = max(chunked_prefill_size, 2048) if chunked_prefill_size > 0 else 2048
    activation = 512 + activation_tokens * 1.5 + tp * pp / 8.0 * 1024
    graph = reserve_for_graph_mb(decode_cuda_graph_max_bs(gpu_mem_mib, tp, max_running_requests), chunked_prefill_size,
                                 pp, is_mla)
    if gpu_mem_mib is not None and gpu_mem_mib > 60 * 1024 and activation + graph < 10 * 1024:
        activation = 10 * 1024 - graph
    return activation, graph


def planned_mem_fraction_static(total_bytes, tp, pp, chunked_prefill_size, max_running_requests, is_mla):
    """The fraction the planner renders when the user sets none: SGLang's default for this GPU, TP, PP and chunked
    prefill size, from the CUDA total (a little below nvidia-smi's "Total" that SGLang reads, so the reserve is never
    smaller than SGLang's own), rounded down to 3 decimals."""
    gpu_mem_mib = total_bytes / float(MIB)
    activation, graph = default_reserved_mb(gpu_mem_mib, tp, pp, chunked_prefill_size, max_running_requests, is_mla)
    return math.floor((gpu_mem_mib - activation - graph) / gpu_mem_mib * 1000) / 1000.0


def stage_memory(total, weights, spec, kv_dtype_bytes, tp, pp, layers, mem_fraction_static, chunked_prefill_size,
                 max_running_requests):
    """(memory_per_gpu dict, room bytes, tokens) of one rank holding ``layers`` layers and ``weights`` bytes of weights.

    memory_per_gpu keeps the planner's keys: ``usable`` = the static pool (mem_fraction_static x pre), ``weights`` =
    everything resident after loading (weights + rotary cache + margin), ``non_torch`` = total - pre (CUDA context,
    NCCL), ``activation_peak`` and ``cuda_graph`` = SGLang's own reserve estimate of them, ``kv_cache`` = the pool's
    bytes; ``runtime_reserve`` is the slack they really get, pre x (1 - mem_fraction_static).
    """
    pre = total - pre_load_overhead(tp, pp)
    resident = weights + rope_cache_bytes(spec) + RESIDENT_MARGIN_BYTES
    slack = int(pre * (1 - mem_fraction_static))
    rest = pre - resident - slack
    cell = cell_size(spec, kv_dtype_bytes, tp, layers)
    tokens = pool_tokens(rest, cell, page_size(spec))
    activation_mb, graph_mb = default_reserved_mb(total / float(MIB), tp, pp, chunked_prefill_size, max_running_requests, spec.is_mla)
    memory = {
        "total": total,
        "usable": int(pre * mem_fraction_static),
        "weights": int(resident),
        "activation_peak": int(activation_mb * MIB),
        "non_torch": int(total - pre),
        "cuda_graph": int(graph_mb * MIB),
        "kv_cache": int(tokens * cell),
        "runtime_reserve": slack,
    }
    return memory, rest, tokens, cell
