# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""GPU sizing for vLLM: from a Hugging Face config and a GPU to a tensor/pipeline parallel plan.

Pure Python (no Ansible, no torch, no network) so it is unit-testable and fast.

Memory model (per GPU), following vLLM 0.26's start-up accounting (``Worker.determine_available_memory``)
and checked against real start-ups of that release on an H200 (tests/fixtures/vllm-boot):

    usable      = total x gpu_memory_utilization                   (vLLM: "requested memory")
    kv_cache    = usable - weights - activation_peak - non_torch [- cuda_graph on the V1 runner]
    blocks      = floor(kv_cache / (16 tokens x KV bytes per token of one group of layers))
    tokens      = int(blocks / blocks one max_model_len request needs x max_model_len)
                                                                    ("GPU KV cache size: N tokens")

Later releases, gated on ``vllm_version`` (each source line is in tests/contracts/vllm/memory-accounting-<ver>.json):
0.27 takes the CUDA-graph estimate off on every runner and runs non-MoE models on Model Runner V2; 0.28 raises the
batch defaults on >= 160 GiB GPUs and the capture ceiling on Blackwell; 0.29 runs every model on V2; 0.33's profile
sampler adds a pass with top-k/top-p and penalties; 0.34 uses 64-token blocks and sizes an extensible KV cache after
warmup and CUDA-graph capture, where usable = min(total x gpu_memory_utilization, total - CUDA context - margin),
mapped in whole 2 MiB granules per layer.

* weights: this rank's shard. Attention/MLP/expert matrices split across tensor-parallel ranks; the
  vocabulary-parallel embedding and lm_head split too (vocab padded to a multiple of 64); norms,
  MoE routers and MLA's low-rank down-projections are replicated; K/V projections replicate when
  TP exceeds the KV-head count. Pipeline stages hold only their layers (vLLM's ``get_pp_indices``
  split: leftover layers go to the stages before the last), the first the embedding, the last
  the lm_head and final norm.
* activation_peak: the profile run (``profile_run``) is one forward pass over
  ``max_num_batched_tokens`` tokens, then, on the last stage, logits and a sampler pass over
  ``min(max_num_seqs, max_num_batched_tokens)`` rows. The larger of: the forward's live set (one
  decoder layer's hidden/residual buffers plus the larger of attention and the MLP/MoE
  intermediates, x tokens x activation bytes); the batch's hidden states plus a transient the size
  of this rank's lm_head (the fixtures' Llama-3.1-8B, Gemma-2-27B and Phi-3 peaks need it); the
  hidden states plus the sampler's logits. Plus a small workspace.
* non_torch: memory outside PyTorch's allocator that vLLM counts (its growth since the worker
  started; the CUDA context is not counted): 0.23 GiB on one GPU, plus NCCL/custom all-reduce and
  pipeline buffers with TP/PP > 1.
* cuda_graph: the CUDA-graph pool ("Graph capturing finished ..., took X GiB"): a fixed part plus a
  part per local layer and per captured decode slot. vLLM 0.26's Model Runner V2 (dense,
  unquantized models) captures it after sizing the KV cache, outside the budget; the V1 runner
  (MoE and quantized models) subtracts its estimate first.
* KV cache: layers are grouped by attention type as vLLM's hybrid KV-cache manager groups them;
  a full-attention group needs ``cdiv(max_model_len, 16)`` blocks per request, a sliding-window
  group only ``cdiv(min(window - 1 + 2 x max_num_batched_tokens, max_model_len), 16) + 1``, so a
  window well below max_model_len holds many more tokens per GiB. Layer types are modelled for the model types the
  fixtures show (Mistral, Phi-3: every layer; Gemma 2: every other layer); other sliding-window
  models are sized as full attention, with a warning.

Each constant below names its source: a vLLM function, or the fixture measurements.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import json
import math
import os

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import layout as replica
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import model_catalog
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import sizing_sglang as sglang

GIB = 1024 ** 3
MIB = 1024 ** 2

# Engines gpu_sizing plans for. NIM runs vLLM inside, so nim plans with vLLM's accounting; sglang with SGLang's.
ENGINES = engine_facts.NAMES

# vLLM CacheConfig.gpu_memory_utilization default (vllm/config/cache.py; 0.92 in 0.27 - 0.33, and
# DEFAULT_GPU_MEMORY_UTILIZATION without the extensible KV cache from 0.34). From 0.34 vLLM resolves an unset value to
# 1.0 when the extensible KV cache is on (the default on CUDA): the plan still renders --gpu-memory-utilization
# explicitly, so a plan made without one renders 0.92 for every release (NIM's own vLLM has no extensible KV cache).
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.92
# KV-cache block size in tokens, CacheConfig.DEFAULT_BLOCK_SIZE: 16 up to 0.33, 64 from 0.34 (vllm/config/cache.py:185
# at 0.34.0; FlashAttention keeps the default, flash_attn.py get_preferred_block_size). See block_size().
BLOCK_SIZE = 16
BLOCK_SIZE_FROM_0_34 = 64
DEFAULT_MAX_NODES = 8
VOCAB_PADDING = 64

# Profile-run workspace on top of its largest phase (runner buffers, cuBLAS/attention workspaces): fitted to the
# 7 peak activations in the fixtures (vLLM 0.26, H200), which it then matches within 0.05 GiB.
RUNNER_BUFFERS_BYTES = 48 * MIB
# V1 runner's profile sampler runs top-k/top-p (bf16 logits, fp32 copy, sorted values, int64 indices, softmax,
# cumulative sum, scatter): 28 bytes per logit, measured with PyTorch on an H200.
SAMPLER_BYTES_PER_LOGIT = 28
# Model Runner V2's profile sampler skips top-k/top-p (vllm/v1/worker/gpu/model_runner.py ``_dummy_sampler_run``):
# the bf16 logits and one fp32 copy.
SAMPLER_V2_BYTES_PER_LOGIT = 6
# From 0.33 ``_dummy_sampler_run`` runs the sampler a second time with SamplingParams.for_sampler_warmup() (top-k 50,
# top-p 0.9, penalties, logprobs; model_runner.py:1058-1062 at 0.34.0) "so the profiled peak must" pay for the fp32
# logits pipeline: the bf16 logits (2 bytes) stay alive, apply_sampling_params copies them to fp32 (4, sampler.py:239),
# and FlashInfer's top_k_top_p_sampling_from_logits (topk_topp_sampler.py:316) holds its top-k masked fp32 logits (4)
# while it takes their fp32 softmax (4): 14 bytes per logit.
SAMPLER_V2_WARMUP_BYTES_PER_LOGIT = 14
# From 0.34 the extensible KV cache is sized after warmup steps that include a full-budget prefill requesting
# prompt logprobs (max_logprobs, default 20: warmup.py:495-526); the prompt logits are computed in chunks of 1024 rows
# of the whole vocabulary (prompt_logprob.py:20) and nothing vocab-sized beside them (logprob.py:87-89).
PROMPT_LOGPROBS_CHUNK_ROWS = 1024
# Non-torch memory vLLM 0.26 counts on a single GPU: 0.22-0.23 GiB in every fixture start-up (any model, any batch).
NON_TORCH_SINGLE_BYTES = int(0.23 * GIB)
# Not measured yet (no TP > 1 fixture): NCCL communicators and custom all-reduce buffers with TP > 1.
NON_TORCH_TP_BASE_BYTES = int(0.5 * GIB)
NON_TORCH_TP_PER_RANK_BYTES = int(0.1 * GIB)
# Not measured yet (no PP > 1 fixture): pipeline send/receive buffers.
NON_TORCH_PP_BYTES = int(0.25 * GIB)
# CUDA-graph pool = base + per local layer per captured decode slot: fitted to the fixtures' "Graph capturing
# finished ..., took 0.53-0.98 GiB" (Llama-3.1-8B: 0.59 GiB at 256 sequences, 0.98 GiB at 1024): within 0.06 GiB on
# Model Runner V2, 0.1 GiB above Mixtral's V1 pool (0.49 GiB; its pre-KV estimate was 0.39 GiB).
CUDA_GRAPH_BASE_BYTES = int(0.22 * GIB)
CUDA_GRAPH_PER_LAYER_SLOT_BYTES = 48 * 1024
# Decode slots captured: min(max_num_seqs, 512), vLLM's max_cudagraph_capture_size = min(2 x max_num_seqs, 512) with
# FULL graphs up to max_num_seqs (fixture: "PIECEWISE=51 (largest=512), FULL=35 (largest=256)" at 256 sequences).
CUDA_GRAPH_MAX_CAPTURE_SIZE = 512
# From 0.28 the ceiling is 1024 on Blackwell (compute capability 10.x: "1024 if
# current_platform.is_device_capability_family(100) else 512", vllm/config/vllm.py:2402 at 0.34.0).
CUDA_GRAPH_MAX_CAPTURE_SIZE_BLACKWELL = 1024
# Not measured yet (no TP > 1 fixture): the custom all-reduce buffers the graphs register with TP > 1.
CUDA_GRAPH_TP_BYTES = int(0.125 * GIB)
# Batches in flight with async scheduling (vLLM's default; max_concurrent_batches): a sliding-window layer holds
# KV for window - 1 + 2 x max_num_batched_tokens tokens (SlidingWindowSpec.max_admission_blocks_per_request;
# fixture: Mistral-7B-v0.1 at 4096 batched tokens reports 2,495,481 tokens, which needs the factor 2).
ASYNC_SCHEDULING_BATCHES = 2
# vLLM 0.34's extensible KV cache (on by default on CUDA: CacheConfig.enable_extensible_kv_cache, cache.py:395 and
# VllmConfig._resolve_extensible_kv_cache) is sized from the memory measured after warmup and CUDA-graph capture
# (extensible_kv_cache.py:613-617, measure_kv_cache_bytes):
#     available = min(requested - used, free at start - used - margin) - transient peak
# with margin = max(1 GiB, 0.75 x transient peak) (KV_CACHE_MARGIN_FLOOR_BYTES, KV_CACHE_MARGIN_FRACTION, lines 64-65).
KV_CACHE_MARGIN_FLOOR_BYTES = 1 << 30
KV_CACHE_MARGIN_FRACTION = 0.75
# "Free memory at start" is the device less the CUDA context, which none of vLLM's own figures count: the fixtures'
# H200 starts with 139.29 of 139.8 GiB free ("Free memory on device (139.29/139.8 GiB) on startup").
CUDA_CONTEXT_BYTES = int(0.51 * GIB)
# The extensible KV cache maps physical memory per layer region (the default LBNHC layout is layer-outermost), each
# rounded up to whole granules of at least 2 MiB (vllm/utils/extensible_tensor.py _MIN_GRANULARITY;
# ExtensibleKVCache.physical_bytes_for / blocks_within): every layer's share of the budget is floored to granules.
KV_CACHE_GRANULE_BYTES = 2 << 20

# Model types whose transformers config class defaults tie_word_embeddings to True (GemmaConfig, Gemma2Config,
# Gemma3TextConfig/Gemma3Config); the other catalog types (llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, phi3,
# deepseek_v3) default to False. Fixture: Gemma-2-27B's config omits the key and vLLM loads 50.72 GiB (tied).
TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3", "gemma3_text")
# Sliding-window layers as vLLM 0.26 builds them, where the fixtures show it: every layer of Mistral (v0.1) and
# Phi-3 (their logged KV tokens need a window-bounded request: 2,495,481 and 283,628), every other layer from the
# first of Gemma 2 (Gemma2Config.layer_types; its 214,454 tokens need 23 full + 23 window layers).
SLIDING_EVERY_LAYER = ("mistral", "phi3")
SLIDING_EVEN_LAYERS = ("gemma2",)

WEIGHT_DTYPES = ("bf16", "fp16", "fp32", "fp8", "int8", "int4")
KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
_DTYPE_ALIASES = {
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "fp8": "fp8", "float8": "fp8", "fp8_e4m3": "fp8",
    "int8": "int8", "w8a8": "int8",
    "int4": "int4", "awq": "int4", "gptq": "int4", "w4a16": "int4",
}
FLOAT_DTYPES = ("bf16", "fp16", "fp32")
INT4_GROUP_SIZE = 128
# Per group of 128 input weights: one fp16 scale and one packed 4-bit zero point (AWQ/GPTQ layout).
INT4_GROUP_OVERHEAD_BYTES = 2.5


class SizingError(ValueError):
    """Bad input: ``field`` names the option at fault."""

    def __init__(self, field, message):
        super(SizingError, self).__init__(message)
        self.field = field


def normalize_dtype(value, field="dtype"):
    key = str(value).strip().lower()
    if key not in _DTYPE_ALIASES:
        raise SizingError(field, "%s=%r is not supported; allowed: %s (or 'auto' for the config's own dtype)"
                          % (field, value, ", ".join(WEIGHT_DTYPES)))
    return _DTYPE_ALIASES[key]


# --------------------------------------------------------------------------------------------
# Config parsing
# --------------------------------------------------------------------------------------------

def load_config_path(path):
    """The dict of a config.json, given the file or a folder holding one."""
    candidate = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not os.path.isfile(candidate):
        raise SizingError("model", "model=%r: no config.json at %s (give a catalog id, a config.json path or a folder holding one)"
                          % (path, candidate))
    try:
        with open(candidate, "rb") as handle:
            config = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError) as exc:
        raise SizingError("model", "model=%r: cannot read %s: %s" % (path, candidate, exc))
    except ValueError as exc:
        raise SizingError("model", "model=%r: %s is not valid JSON: %s" % (path, candidate, exc))
    if not isinstance(config, dict):
        raise SizingError("model", "model=%r: %s must hold a JSON object, got %s" % (path, candidate, type(config).__name__))
    return config


def _first_architecture(config):
    architectures = config.get("architectures") if isinstance(config, dict) else None
    return architectures[0] if isinstance(architectures, list) and architectures else None


def _config_int(config, key, source, default=None, required=True):
    """config[key] as a positive integer (None for an optional field the config lacks)."""
    value = config.get(key, default)
    if value is None and not required:
        return None
    return inputs.whole_number(value, name="%s: config field %r" % (source, key), error=functools.partial(SizingError, "model"))


class ModelSpec(object):
    """Architecture facts of one model, parsed from its Hugging Face config."""

    def __init__(self, config, source="config.json"):
        if not isinstance(config, dict):
            raise SizingError("model", "%s: the config must be a JSON object" % source)
        # Multimodal wrappers keep the language model under text_config.
        self.outer_architecture = _first_architecture(config)
        self.from_text_config = "hidden_size" not in config and isinstance(config.get("text_config"), dict)
        if self.from_text_config:
            merged = dict(config["text_config"])
            for key in ("architectures", "torch_dtype", "quantization_config", "tie_word_embeddings"):
                if key in config and key not in merged:
                    merged[key] = config[key]
            config = merged
            source = "%s (text_config)" % source
        self.config = config
        self.source = source
        self.model_type = str(config.get("model_type") or "")
        architectures = config.get("architectures") or []
        self.architecture = architectures[0] if isinstance(architectures, list) and architectures else (self.model_type or "unknown")

        self.hidden = _config_int(config, "hidden_size", source)
        self.num_layers = _config_int(config, "num_hidden_layers", source)
        self.num_heads = _config_int(config, "num_attention_heads", source)
        self.num_kv_heads = _config_int(config, "num_key_value_heads", source, default=self.num_heads)
        self.vocab = _config_int(config, "vocab_size", source)
        self.intermediate = _config_int(config, "intermediate_size", source, required=False)
        self.max_position_embeddings = _config_int(config, "max_position_embeddings", source, required=False)
        if config.get("head_dim") is not None:
            self.head_dim = _config_int(config, "head_dim", source)
        else:
            if self.hidden % self.num_heads:
                raise SizingError("model", "%s: hidden_size %d is not divisible by num_attention_heads %d and no head_dim is given"
                                  % (source, self.hidden, self.num_heads))
            self.head_dim = self.hidden // self.num_heads
        if self.num_heads % self.num_kv_heads:
            raise SizingError("model", "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d"
                              % (source, self.num_heads, self.num_kv_heads))
        # An absent key takes the model type's transformers config-class default (vLLM reads the config through it).
        self.tied = bool(config.get("tie_word_embeddings", self.model_type in TIED_BY_DEFAULT))

        self.quantization_config = config.get("quantization_config") if isinstance(config.get("quantization_config"), dict) else None
        self.native_dtype = self._native_dtype(config)

        # Multi-head latent attention (DeepSeek-V2/V3/R1).
        self.is_mla = config.get("kv_lora_rank") not in (None, 0)
        if self.is_mla:
            self.kv_lora_rank = _config_int(config, "kv_lora_rank", source)
            self.q_lora_rank = _config_int(config, "q_lora_rank", source, required=False)
            self.qk_nope_head_dim = _config_int(config, "qk_nope_head_dim", source)
            self.qk_rope_head_dim = _config_int(config, "qk_rope_head_dim", source)
            self.v_head_dim = _config_int(config, "v_head_dim", source)

        # Mixture of experts: Mixtral (num_local_experts), Qwen-MoE (num_experts), DeepSeek (n_routed_experts).
        experts = config.get("num_local_experts") or config.get("num_experts") or config.get("n_routed_experts") or 0
        self.num_experts = experts if isinstance(experts, int) and not isinstance(experts, bool) and experts > 0 else 0
        self.is_moe = self.num_experts > 0
        if self.is_moe:
            self.experts_per_token = _config_int(config, "num_experts_per_tok", source)
            if self.experts_per_token > self.num_experts:
                raise SizingError("model", "%s: num_experts_per_tok %d exceeds the %d experts" % (source, self.experts_per_token, self.num_experts))
            self.moe_intermediate = config.get("moe_intermediate_size") or self.intermediate
            if not isinstance(self.moe_intermediate, int) or self.moe_intermediate <= 0:
                raise SizingError("model", "%s: an MoE config needs moe_intermediate_size or intermediate_size" % source)
            shared = 0
            if config.get("n_shared_experts"):
                shared = int(config["n_shared_experts"]) * self.moe_intermediate
            elif config.get("shared_expert_intermediate_size"):
                shared = int(config["shared_expert_intermediate_size"])
            self.shared_intermediate = shared
            self.shared_expert_gate = bool(config.get("shared_expert_intermediate_size")) and not config.get("n_shared_experts")
            self.router_bias = config.get("topk_method") == "noaux_tc"
        if self.intermediate is None and not self.is_moe:
            raise SizingError("model", "%s: config field 'intermediate_size' must be a positive integer, got None" % source)

        qwen2_family = self.model_type in ("qwen2", "qwen2_moe")
        self.qkv_bias = bool(config.get("qkv_bias") or config.get("attention_bias") or qwen2_family)
        self.o_bias = bool(config.get("attention_bias")) and not qwen2_family
        self.mlp_bias = bool(config.get("mlp_bias"))
        self.qk_norm = self.model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2")
        self.norms_per_layer = 4 if self.model_type in ("gemma2", "gemma3", "gemma3_text") else 2
        self.sliding_window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
        self.window_layers = self._window_layers()

        self.layers = [self._layer(index) for index in range(self.num_layers)]

    def assumption_warnings(self):
        """Plan warnings naming what the planner assumed about a config it does not model field by field."""
        warnings = []
        known = model_catalog.is_known_model_type(self.model_type)
        if not known:
            layers = "every layer full attention over %d KV heads x head_dim %d" % (self.num_kv_heads, self.head_dim)
            if self.is_moe:
                ffn = "a mixture of %d experts (top %d, %d wide) on the layers its decoder_sparse_step/mlp_only_layers select" % (
                    self.num_experts, self.experts_per_token, self.moe_intermediate)
            else:
                ffn = "a gated MLP of intermediate_size %d" % self.intermediate
            ignored = [key for key in model_catalog.UNMODELLED_FIELDS if self.config.get(key) not in (None, False, [], 0)]
            warnings.append(
                "%s (model_type %r) is not an architecture the planner models (it knows: %s): sized as a standard decoder - "
                "%d layers, %s, %s%s; max_model_len defaults to its max_position_embeddings %s. Check the weights and KV "
                "tokens against the engine's start-up log"
                % (self.architecture, self.model_type, ", ".join(model_catalog.KNOWN_MODEL_TYPES), self.num_layers, layers, ffn,
                   ("; fields it does not model are ignored: %s" % ", ".join(ignored)) if ignored else "",
                   self.max_position_embeddings))
        if self.from_text_config:
            which = "" if known else " (%s)" % (self.model_type or "no model_type")
            warnings.append("%s keeps its language model under text_config: the plan sizes that model%s and counts no vision "
                            "or audio encoder weights" % (self.outer_architecture or "the config", which))
        return warnings

    def _window_layers(self):
        """Indexes of the layers vLLM runs with sliding-window attention; None where the planner does not know
        (then every layer is sized as full attention and plan() warns)."""
        window = self.sliding_window
        if self.is_mla or isinstance(window, bool) or not isinstance(window, int) or window <= 0:
            return frozenset()
        if self.model_type in SLIDING_EVERY_LAYER:
            return frozenset(range(self.num_layers))
        if self.model_type in SLIDING_EVEN_LAYERS:
            return frozenset(range(0, self.num_layers, 2))
        return None

    def layer_window(self, index):
        """The sliding window of layer ``index``, or None for full attention."""
        return self.sliding_window if self.window_layers and index in self.window_layers else None

    @staticmethod
    def _native_dtype(config):
        quant = config.get("quantization_config")
        if isinstance(quant, dict):
            method = str(quant.get("quant_method", "")).lower()
            bits = quant.get("bits") or quant.get("w_bit")
            if method in ("fp8", "fbgemm_fp8", "modelopt"):
                return "fp8"
            if method in ("awq", "gptq") or bits == 4:
                return "int4"
            if bits == 8:
                return "int8"
        raw = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").lower()
        return _DTYPE_ALIASES.get(raw, "bf16")

    def _is_moe_layer(self, index):
        if not self.is_moe:
            return False
        config = self.config
        if "first_k_dense_replace" in config or "moe_layer_freq" in config:
            first_dense = int(config.get("first_k_dense_replace") or 0)
            frequency = int(config.get("moe_layer_freq") or 1)
            return index >= first_dense and index % frequency == 0
        if index in (config.get("mlp_only_layers") or []):
            return False
        step = int(config.get("decoder_sparse_step") or 1)
        return (index + 1) % step == 0

    def _layer(self, index):
        hidden = self.hidden
        layer = {"attn_sharded": 0, "attn_kv": 0, "attn_replicated": 0, "mlp_sharded": 0, "experts": 0,
                 "expert_each": 0, "router": 0, "bias_sharded": 0, "norms": self.norms_per_layer * hidden, "moe": False}
        if self.is_mla:
            qk_head = self.qk_nope_head_dim + self.qk_rope_head_dim
            if self.q_lora_rank:
                layer["attn_replicated"] += hidden * self.q_lora_rank
                layer["norms"] += self.q_lora_rank
                layer["attn_sharded"] += self.q_lora_rank * self.num_heads * qk_head
            else:
                layer["attn_sharded"] += hidden * self.num_heads * qk_head
            layer["attn_replicated"] += hidden * (self.kv_lora_rank + self.qk_rope_head_dim)
            layer["norms"] += self.kv_lora_rank
            layer["attn_sharded"] += self.kv_lora_rank * self.num_heads * (self.qk_nope_head_dim + self.v_head_dim)
            layer["attn_sharded"] += self.num_heads * self.v_head_dim * hidden
        else:
            q_width = self.num_heads * self.head_dim
            kv_width = self.num_kv_heads * self.head_dim
            layer["attn_sharded"] += hidden * q_width + q_width * hidden
            layer["attn_kv"] += 2 * hidden * kv_width
            if self.qkv_bias:
                layer["bias_sharded"] += q_width + 2 * kv_width
            if self.o_bias:
                layer["bias_sharded"] += hidden
            if self.qk_norm:
                layer["norms"] += 2 * self.head_dim
        if self._is_moe_layer(index):
            layer["moe"] = True
            each = 3 * hidden * self.moe_intermediate
            layer["expert_each"] = each
            layer["experts"] = self.num_experts * each
            layer["router"] = hidden * self.num_experts + (self.num_experts if self.router_bias else 0)
            if self.shared_intermediate:
                layer["mlp_sharded"] += 3 * hidden * self.shared_intermediate
                if self.shared_expert_gate:
                    layer["router"] += hidden
        else:
            layer["mlp_sharded"] += 3 * hidden * self.intermediate
            if self.mlp_bias:
                layer["bias_sharded"] += 2 * self.intermediate + hidden
        return layer

    # ----- counts -----
    @staticmethod
    def _layer_params(layer):
        return sum(layer[key] for key in ("attn_sharded", "attn_kv", "attn_replicated", "mlp_sharded", "experts", "router", "bias_sharded", "norms"))

    @property
    def params(self):
        total = self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden
        return total + sum(self._layer_params(layer) for layer in self.layers)

    @property
    def active_params(self):
        inactive = sum((self.num_experts - self.experts_per_token) * layer["expert_each"] for layer in self.layers if layer["moe"])
        return self.params - inactive

    def kv_bytes_per_token(self, kv_dtype_bytes, tensor_parallel_size=1, num_layers=None):
        """KV-cache bytes one token takes on one tensor-parallel rank, for num_layers layers (all by default)."""
        layers = self.num_layers if num_layers is None else num_layers
        if self.is_mla:
            # One compressed latent plus the decoupled RoPE key, shared by all heads: nothing to split across TP.
            return layers * (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes
        kv_heads = max(1, self.num_kv_heads // tensor_parallel_size)
        return 2 * layers * kv_heads * self.head_dim * kv_dtype_bytes

    def describe(self, model_id, hf_id, dtype):
        return {
            "id": model_id,
            "hf_id": hf_id,
            "architecture": self.architecture,
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_size": self.hidden,
            "vocab_size": self.vocab,
            "max_position_embeddings": self.max_position_embeddings,
            "dtype": dtype,
            "native_dtype": self.native_dtype,
            "moe": self.is_moe,
            "num_experts": self.num_experts,
            "experts_per_token": self.experts_per_token if self.is_moe else 0,
            "mla": self.is_mla,
            "source": self.source,
        }


# --------------------------------------------------------------------------------------------
# Weights and KV bytes
# --------------------------------------------------------------------------------------------

def activation_dtype(spec, dtype):
    """dtype of activations, norms, embeddings and unquantized layers."""
    if dtype in ("bf16", "fp16", "fp32"):
        return dtype
    native = spec.native_dtype
    return native if native in ("bf16", "fp16") else "bf16"


def _dtype_bytes(dtype):
    return {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1, "int8": 1}[dtype]


def linear_bytes(count, dtype, spec):
    """Bytes of ``count`` weights of quantizable linear layers stored as ``dtype`` (scales included)."""
    if dtype in ("bf16", "fp16", "fp32"):
        return count * _dtype_bytes(dtype)
    if dtype == "fp8":
        block = (spec.quantization_config or {}).get("weight_block_size") if spec.native_dtype == "fp8" else None
        if block and len(block) == 2:
            # DeepSeek-style block quantization: one fp32 scale per 128 x 128 block.
            return count * (1.0 + 4.0 / (block[0] * block[1]))
        return float(count)  # per-tensor scales: a few bytes per matrix
    if dtype == "int8":
        return count * (1.0 + 4.0 / spec.hidden)  # one fp32 scale per output channel
    return count * (0.5 + INT4_GROUP_OVERHEAD_BYTES / INT4_GROUP_SIZE)


def pipeline_partition(num_layers, pipeline_parallel_size):
    """Layer counts per pipeline stage, as vLLM's get_pp_indices splits them."""
    base = num_layers // pipeline_parallel_size
    partition = [base] * pipeline_parallel_size
    for offset in range(2, num_layers % pipeline_parallel_size + 2):
        partition[-offset] += 1
    return partition


def _padded_vocab(vocab):
    return int(math.ceil(vocab / float(VOCAB_PADDING)) * VOCAB_PADDING)


def rank_weight_bytes(spec, dtype, tp, layer_indexes, first, last, pp):
    act = _dtype_bytes(activation_dtype(spec, dtype))
    kv_share = float(max(1, spec.num_kv_heads // tp)) / spec.num_kv_heads if not spec.is_mla else 1.0
    total = 0.0
    for index in layer_indexes:
        layer = spec.layers[index]
        total += linear_bytes(layer["attn_sharded"] + layer["mlp_sharded"] + layer["experts"], dtype, spec) / tp
        total += linear_bytes(layer["attn_kv"], dtype, spec) * kv_share
        total += linear_bytes(layer["attn_replicated"], dtype, spec)
        total += (layer["router"] + layer["norms"]) * act + layer["bias_sharded"] * act / float(tp)
    vocab_shard = _padded_vocab(spec.vocab) * spec.hidden * act / float(tp)
    if first:
        total += vocab_shard
    if last:
        total += spec.hidden * act
        # A tied lm_head reuses the embedding, unless pipeline stages put them on different GPUs.
        if not spec.tied or (pp > 1 and not first):
            total += vocab_shard
    return int(total)


def weights_bytes(spec, dtype):
    """Whole-model weight bytes (before any parallel split)."""
    act = _dtype_bytes(activation_dtype(spec, dtype))
    total = 0.0
    for layer in spec.layers:
        total += linear_bytes(layer["attn_sharded"] + layer["mlp_sharded"] + layer["experts"] + layer["attn_kv"] + layer["attn_replicated"], dtype, spec)
        total += (layer["router"] + layer["norms"] + layer["bias_sharded"]) * act
    total += spec.vocab * spec.hidden * act * (1 if spec.tied else 2) + spec.hidden * act
    return int(total)


def kv_dtype_bytes(spec, dtype, kv_cache_dtype):
    if kv_cache_dtype != "auto":
        return 1
    return _dtype_bytes(activation_dtype(spec, dtype))


# --------------------------------------------------------------------------------------------
# Per-GPU memory of one layout
# --------------------------------------------------------------------------------------------

def _version(text):
    try:
        return tuple(int(part) for part in str(text).lstrip("v").split(".")[:2])
    except ValueError:
        raise SizingError("vllm_version", "vllm_version=%r is not a release number such as 0.34.0" % (text,))


def cuda_graphs_in_budget(vllm_version, v2):
    """Whether the CUDA-graph memory comes off the KV cache before it is sized.

    vLLM 0.27 and later estimate it in the profile run and subtract it on every runner
    (gpu_worker.py determine_available_memory, VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS on by default);
    in 0.26 only the V1 runner did (fixtures: the dense models' KV excludes it, Mixtral's includes it).
    """
    return _version(vllm_version) >= (0, 27) or not v2


# Architectures vLLM 0.27 and 0.28 run on Model Runner V2 although they are MoE (DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES,
# vllm/config/vllm.py).
V2_RUNNER_MOE_ARCHITECTURES = ("DeepseekV2ForCausalLM", "DeepseekV4ForCausalLM", "GraniteMoeForCausalLM",
                               "Qwen2MoeForCausalLM")


def runner_v2(spec, dtype, vllm_version=None):
    """Whether vLLM runs the model on Model Runner V2 (None: the pinned release).

    0.26: dense and unquantized models (vLLM #42665 gates the default on is_moe and is_quantized; fixtures: every dense
    model logs model_runner.py, Mixtral-8x7B the V1 gpu_model_runner.py). 0.27 and 0.28: every model that is not MoE, and
    a few MoE architectures (VllmConfig._is_default_v2_model_runner_model). 0.29 - 0.33: every model (use_v2_model_runner
    falls back to V1 only for features the planner never sets); 0.34 has no V1 runner left (gpu_worker.py:585).
    """
    version = _version(vllm_version or engine_facts.VLLM_VERSION)
    if version >= (0, 29):
        return True
    if version >= (0, 27):
        return not spec.is_moe or spec.architecture in V2_RUNNER_MOE_ARCHITECTURES
    return not spec.is_moe and dtype in ("bf16", "fp16", "fp32")


def block_size(vllm_version):
    """KV-cache block size in tokens of a release (CacheConfig.DEFAULT_BLOCK_SIZE: 64 from 0.34)."""
    return BLOCK_SIZE_FROM_0_34 if _version(vllm_version) >= (0, 34) else BLOCK_SIZE


def extensible_kv_cache(vllm_version):
    """Whether the release sizes the KV cache from memory measured after warmup (0.34: on by default on CUDA)."""
    return _version(vllm_version) >= (0, 34)


def group_size_factor(vllm_version):
    """How many times the smallest attention type's layer count the largest may be and still set the group size
    (_get_kv_cache_groups_uniform_page_size): 1.25 in 0.26, 1.5 from 0.27 (kv_cache_planning.py:570 at 0.34.0)."""
    return 1.5 if _version(vllm_version) >= (0, 27) else 1.25


def sampler_bytes_per_logit(vllm_version, v2):
    """Bytes per logit of the profile run's sampler: the V1 runner's top-k/top-p, V2's plain pass, and from 0.33 V2's
    second pass with warmup parameters (SAMPLER_V2_WARMUP_BYTES_PER_LOGIT)."""
    if not v2:
        return SAMPLER_BYTES_PER_LOGIT
    return SAMPLER_V2_WARMUP_BYTES_PER_LOGIT if _version(vllm_version) >= (0, 33) else SAMPLER_V2_BYTES_PER_LOGIT


def _cdiv(value, divisor):
    return -(-value // divisor)


def _activation_peak(spec, dtype, tp, layer_indexes, last, max_num_batched_tokens, max_num_seqs, v2=True,
                     sampler_bytes=None, prompt_logprobs=False):
    act = _dtype_bytes(activation_dtype(spec, dtype))
    heads = max(1, spec.num_heads // tp)
    if spec.is_mla:
        attention = ((spec.q_lora_rank or 0) + spec.kv_lora_rank + spec.qk_rope_head_dim
                     + heads * (2 * (spec.qk_nope_head_dim + spec.qk_rope_head_dim) + 2 * spec.v_head_dim + spec.qk_nope_head_dim))
    else:
        kv_heads = max(1, spec.num_kv_heads // tp)
        attention = (2 * heads + 2 * kv_heads) * spec.head_dim
    ffn = 0
    for index in set(layer_indexes):
        layer = spec.layers[index]
        if layer["moe"]:
            moe = spec.experts_per_token * (3 * spec.moe_intermediate // tp + spec.hidden) + 2 * spec.num_experts
            moe += 3 * spec.shared_intermediate // tp
            ffn = max(ffn, moe)
        else:
            ffn = max(ffn, 3 * (spec.intermediate or 0) // tp)
    # profile_run's forward over max_num_batched_tokens: one decoder layer's live set (4 hidden-size buffers plus the larger
    # of attention's q/k/v/o and the MLP/MoE intermediates); fixtures: Mistral-7B 0.45 GiB (+ workspace) vs 0.51 logged.
    forward = max_num_batched_tokens * (4 * spec.hidden + max(attention, ffn)) * act
    logits_phase = 0
    if last:
        # profile_run keeps the batch's hidden states alive until the sampler has run.
        hidden_states = max_num_batched_tokens * spec.hidden * act
        # Measured (fixtures): the logits pass peaks with a transient the size of this rank's lm_head, e.g. Llama-3.1-8B
        # at 2048 tokens logs 1.01 GiB (lm_head 0.98 GiB, forward 0.23 GiB), Gemma-2-27B 2.34 GiB (lm_head 2.20 GiB).
        lm_head = _padded_vocab(spec.vocab) * spec.hidden * act // tp
        # The profile sampler's logits: min(max_num_seqs, tokens) rows (V2 _dummy_run: one request per row up to max_num_reqs).
        rows = min(max_num_seqs, max_num_batched_tokens)
        if sampler_bytes is None:
            sampler_bytes = SAMPLER_V2_BYTES_PER_LOGIT if v2 else SAMPLER_BYTES_PER_LOGIT
        sampler = rows * spec.vocab * sampler_bytes
        # 0.34's KV sizing warmup: one chunk of prompt logits over the whole vocabulary (PROMPT_LOGPROBS_CHUNK_ROWS).
        chunk = min(PROMPT_LOGPROBS_CHUNK_ROWS, max_num_batched_tokens) * spec.vocab * act if prompt_logprobs else 0
        logits_phase = hidden_states + max(lm_head, sampler, chunk)
    return int(max(forward, logits_phase) + RUNNER_BUFFERS_BYTES)


def _non_torch(tp, pp):
    value = NON_TORCH_SINGLE_BYTES
    if tp > 1:
        value += NON_TORCH_TP_BASE_BYTES + NON_TORCH_TP_PER_RANK_BYTES * tp
    if pp > 1:
        value += NON_TORCH_PP_BYTES
    return value


def _cuda_graph(tp, local_layers, max_num_seqs, max_capture_size=CUDA_GRAPH_MAX_CAPTURE_SIZE):
    slots = min(max_num_seqs, max_capture_size)
    return CUDA_GRAPH_BASE_BYTES + CUDA_GRAPH_PER_LAYER_SLOT_BYTES * local_layers * slots + (CUDA_GRAPH_TP_BYTES if tp > 1 else 0)


def kv_cache_capacity(spec, kv_dtype_bytes, tp, layer_indexes, kv_memory, max_model_len, in_flight_tokens,
                      block=BLOCK_SIZE, group_factor=1.25):
    """(tokens, max concurrency) vLLM reports for ``kv_memory`` bytes on a rank holding ``layer_indexes``.

    vLLM 0.26: layers of one attention type form groups of equal size (the smallest type's layer count, or the
    largest's when within 25%: ``_get_kv_cache_groups_uniform_page_size``) sharing one pool of blocks,
    ``kv_memory // (16-token page x group size)`` of them (``get_num_blocks``). One request needs, per group,
    ``cdiv(max_model_len, 16)`` blocks of full attention (``FullAttentionSpec``) or
    ``cdiv(min(window - 1 + in-flight tokens, max_model_len), 16) + 1`` of a sliding window
    (``SlidingWindowSpec.max_admission_blocks_per_request``); concurrency = blocks / blocks per request
    (``get_max_concurrency_for_kv_cache_config``) and "GPU KV cache size" = int(concurrency x max_model_len)
    (``report_kv_cache_config``).

    ``block`` is the release's block size (16, 64 from 0.34: block_size()) and ``group_factor`` its grouping threshold
    (1.25, 1.5 from 0.27: group_size_factor()).
    """
    page = spec.kv_bytes_per_token(kv_dtype_bytes, tp, 1) * block
    layer_types = {}
    for index in layer_indexes:
        window = spec.layer_window(index)
        layer_types[window] = layer_types.get(window, 0) + 1
    if not layer_types or kv_memory <= 0:
        return 0, 0.0
    counts = list(layer_types.values())
    group_size = min(counts)
    if max(counts) < group_factor * group_size:
        group_size = max(counts)
    blocks = kv_memory // (page * group_size)
    needed = 0
    for window, count in layer_types.items():
        if window is None:
            per_group = _cdiv(max_model_len, block)
        else:
            per_group = _cdiv(min(window - 1 + in_flight_tokens, max_model_len), block) + 1
        needed += _cdiv(count, group_size) * per_group
    concurrency = blocks / float(needed)
    return int(concurrency * max_model_len), concurrency


def evaluate_layout(spec, settings, tp, pp):
    """Memory and KV capacity of TP x PP for one replica; the binding stage is the one with the fewest KV tokens."""
    if settings.get("engine") == "sglang":
        return _evaluate_layout_sglang(spec, settings, tp, pp)
    total = settings["gpu_memory_bytes"]
    requested = int(total * settings["gpu_memory_utilization"])
    kv_bytes = kv_dtype_bytes(spec, settings["dtype"], settings["kv_cache_dtype"])
    max_model_len = settings["max_model_len"]
    version = settings["vllm_version"]
    v2 = runner_v2(spec, settings["dtype"], version)
    extensible = extensible_kv_cache(version)
    # Tokens in flight per request: max_num_batched_tokens x max_concurrent_batches, which sliding-window layers hold on
    # top of their window: with async scheduling the pipeline depth + 1 on Model Runner V2 (0.27 and later), else 2 or
    # the pipeline depth (VllmConfig.max_concurrent_batches, vllm/config/vllm.py:560-566 at 0.34.0).
    batches = pp + 1 if v2 and _version(version) >= (0, 27) else max(ASYNC_SCHEDULING_BATCHES, pp)
    in_flight = batches * settings["max_num_batched_tokens"]
    capture = CUDA_GRAPH_MAX_CAPTURE_SIZE
    if _version(version) >= (0, 28) and str(settings.get("gpu_capability") or "").split(".", maxsplit=1)[0] == "10":
        capture = CUDA_GRAPH_MAX_CAPTURE_SIZE_BLACKWELL
    stages = []
    start = 0
    partition = pipeline_partition(spec.num_layers, pp)
    for stage, count in enumerate(partition):
        indexes = list(range(start, start + count))
        start += count
        first, last = stage == 0, stage == pp - 1
        peak = _activation_peak(spec, settings["dtype"], tp, indexes, last, settings["max_num_batched_tokens"],
                                settings["max_num_seqs"], v2, sampler_bytes_per_logit(version, v2), extensible)
        usable = requested
        if extensible:
            # measure_kv_cache_bytes: the budget is also capped by the memory free at start (the device less the CUDA
            # context) less a margin for what the measurement misses; kept in "usable" so that the breakdown adds up.
            margin = max(KV_CACHE_MARGIN_FLOOR_BYTES, int(peak * KV_CACHE_MARGIN_FRACTION))
            usable = min(requested, total - CUDA_CONTEXT_BYTES - margin)
        memory = {
            "total": total,
            "usable": usable,
            "weights": rank_weight_bytes(spec, settings["dtype"], tp, indexes, first, last, pp),
            "activation_peak": peak,
            "non_torch": _non_torch(tp, pp),
            "cuda_graph": _cuda_graph(tp, count, settings["max_num_seqs"], capture),
        }
        room = usable - memory["weights"] - memory["activation_peak"] - memory["non_torch"]
        # Model Runner V2 captures CUDA graphs after sizing the KV cache, outside the budget (fixtures: KV = usable -
        # weights - peak activation - non-torch for every dense model); the V1 runner subtracts its estimate first
        # (fixture: Mixtral-8x7B, "Estimated CUDA graph memory: 0.39 GiB" comes off its KV cache). From 0.34 the
        # extensible KV cache is measured after the graphs are captured, so they are resident ("used") by then.
        if extensible or cuda_graphs_in_budget(version, v2):
            room -= memory["cuda_graph"]
        memory["kv_cache"] = max(0, room)
        committed = memory["kv_cache"]
        if extensible:
            # Whole granules per layer region (KV_CACHE_GRANULE_BYTES).
            regions = KV_CACHE_GRANULE_BYTES * max(1, count)
            committed = committed // regions * regions
        tokens, concurrency = kv_cache_capacity(spec, kv_bytes, tp, indexes, committed, max_model_len, in_flight,
                                                block_size(version), group_size_factor(version))
        stages.append({"stage": stage, "layers": count, "memory": memory, "room": room,
                       "kv_bytes_per_token": spec.kv_bytes_per_token(kv_bytes, tp, count),
                       "tokens": tokens, "concurrency": concurrency})
    return _layout_result(settings, tp, pp, stages)


def _evaluate_layout_sglang(spec, settings, tp, pp):
    """SGLang's accounting of TP x PP (plan/sizing_sglang.py): each rank's pool is mem_fraction_static x the
    free memory before loading, minus what is resident after loading; the ranks take the smallest token count."""
    total = settings["gpu_memory_bytes"]
    kv_bytes = kv_dtype_bytes(spec, settings["dtype"], settings["kv_cache_dtype"])
    fraction = settings.get("mem_fraction_static") or sglang.planned_mem_fraction_static(
        total, tp, pp, settings["max_num_batched_tokens"], settings["max_num_seqs"], spec.is_mla)
    max_model_len = settings["max_model_len"]
    stages = []
    start = 0
    for stage, count in enumerate(sglang.pipeline_partition(spec.num_layers, pp)):
        indexes = list(range(start, start + count))
        start += count
        first, last = stage == 0, stage == pp - 1
        weights = rank_weight_bytes(spec, settings["dtype"], tp, indexes, first, last, pp)
        memory, room, tokens, cell = sglang.stage_memory(total, weights, spec, kv_bytes, tp, pp, count, fraction,
                                                         settings["max_num_batched_tokens"], settings["max_num_seqs"])
        stages.append({"stage": stage, "layers": count, "memory": memory, "room": room, "kv_bytes_per_token": cell,
                       "tokens": tokens, "concurrency": tokens / float(max_model_len)})
    layout = _layout_result(settings, tp, pp, stages)
    layout["mem_fraction_static"] = fraction
    return layout


def _layout_result(settings, tp, pp, stages):
    """The layout dict of evaluate_layout from its stages: the binding stage is the one with the fewest KV tokens."""
    max_model_len = settings["max_model_len"]
    binding = min(stages, key=lambda item: (item["tokens"], item["room"]))
    tokens = binding["tokens"]
    nodes = int(math.ceil(tp * pp / float(settings["gpus_per_node"])))
    try:
        pods = replica.replica_layout(tp, pp, nodes, settings["gpus_per_node"])
    except replica.LayoutError:
        # The ranks do not split evenly over the nodes: no pod shape can run it.
        pods = None
    return {
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "gpus_per_replica": tp * pp,
        "nodes": nodes,
        "replica_layout": pods,
        "gpus_per_pod": pods["gpus_per_pod"] if pods else None,
        "memory_per_gpu": binding["memory"],
        "shortfall_bytes": max(0, -binding["room"]),
        "kv_cache_tokens": tokens,
        "max_concurrency": binding["concurrency"],
        "holds_one_sequence": tokens >= max_model_len,
        "meets_targets": pods is not None and tokens >= max_model_len * settings["min_concurrency"] and binding["room"] > 0,
        "stages": stages,
    }


def summarize_layout(layout):
    return {
        "tensor_parallel_size": layout["tensor_parallel_size"],
        "pipeline_parallel_size": layout["pipeline_parallel_size"],
        "gpus": layout["gpus_per_replica"],
        "kv_cache_tokens": layout["kv_cache_tokens"],
        "kv_cache_gib_per_gpu": round(layout["memory_per_gpu"]["kv_cache"] / float(GIB), 2),
        "max_concurrency": round(layout["max_concurrency"], 2),
        "meets_targets": layout["meets_targets"],
    }


# --------------------------------------------------------------------------------------------
# Choosing a layout
# --------------------------------------------------------------------------------------------

def tp_problem(spec, tp):
    """Why ``tp`` cannot shard this model in vLLM, or None.

    vLLM's rule: the attention heads split evenly (ModelConfig.verify_with_parallel_config), and the KV heads split
    evenly or are replicated evenly (QKVParallelLinear: divide(num_kv_heads, tp) or divide(tp, num_kv_heads)); a
    power of two is not required. MoE experts split their intermediate size (FusedMoE: divide(intermediate, tp)).
    """
    if tp < 1:
        return "tensor_parallel_size=%d must be at least 1" % tp
    if spec.num_heads % tp:
        return "tensor_parallel_size=%d does not divide the %d attention heads" % (tp, spec.num_heads)
    if not spec.is_mla and spec.num_kv_heads % tp and tp % spec.num_kv_heads:
        return "tensor_parallel_size=%d and the %d KV heads do not divide one another" % (tp, spec.num_kv_heads)
    if spec.is_moe and spec.moe_intermediate % tp:
        return "tensor_parallel_size=%d does not divide moe_intermediate_size %d" % (tp, spec.moe_intermediate)
    return None


def valid_tensor_parallel_sizes(spec, gpus_per_node):
    return [tp for tp in range(1, gpus_per_node + 1) if tp_problem(spec, tp) is None]


def search_layout(spec, settings):
    """(chosen layout, every layout evaluated) following the planning rules.

    One node first (TP only, fewest GPUs); else whole nodes with TP = the largest valid TP inside a
    node and PP = the fewest nodes; user-fixed TP/PP are evaluated instead of chosen.
    """
    gpus_per_node = settings["gpus_per_node"]
    fixed_tp = settings.get("tensor_parallel_size")
    fixed_pp = settings.get("pipeline_parallel_size")
    tried = []

    def attempt(tp, pp):
        layout = evaluate_layout(spec, settings, tp, pp)
        tried.append(layout)
        return layout

    if fixed_tp and fixed_pp:
        return attempt(fixed_tp, fixed_pp), tried
    tp_options = [fixed_tp] if fixed_tp else valid_tensor_parallel_sizes(spec, gpus_per_node)
    if not tp_options:
        raise SizingError("gpus_per_node", "gpus_per_node=%d allows no tensor parallel size that divides the %d attention heads"
                          % (gpus_per_node, spec.num_heads))
    if fixed_pp:
        for tp in tp_options:
            layout = attempt(tp, fixed_pp)
            if layout["meets_targets"]:
                return layout, tried
        return tried[-1], tried
    single_node = [tp for tp in tp_options if tp <= gpus_per_node]
    for tp in single_node:
        layout = attempt(tp, 1)
        if layout["meets_targets"]:
            return layout, tried
    node_tp = max(tp_options)
    max_pp = min(spec.num_layers, max(1, settings["max_nodes"] * gpus_per_node // node_tp))
    best = tried[-1] if tried else None
    for pp in range(2, max_pp + 1):
        if node_tp * pp > settings["max_nodes"] * gpus_per_node:
            break
        layout = attempt(node_tp, pp)
        best = layout
        if layout["meets_targets"]:
            return layout, tried
    return best, tried


# --------------------------------------------------------------------------------------------
# Top level
# --------------------------------------------------------------------------------------------

def default_batch_limits(gpu_name, gpu_memory_bytes, vllm_version=None):
    """vLLM's OpenAI-server defaults (EngineArgs.get_batch_defaults): larger on >= 70 GiB GPUs other than A100, and
    from 0.28 16384 batched tokens on >= 160 GiB GPUs (B200; vllm/engine/arg_utils.py:3010 at 0.34.0)."""
    if gpu_memory_bytes >= 160 * GIB and _version(vllm_version or engine_facts.VLLM_VERSION) >= (0, 28):
        return (16384, 1024)
    big = gpu_memory_bytes >= 70 * GIB and "a100" not in (gpu_name or "").lower()
    return (8192, 1024) if big else (2048, 256)


def _check_positive_number(name, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise SizingError(name, "%s=%r must be a positive number" % (name, value))


def _gib(value):
    return "%.1f GiB" % (value / float(GIB))


def plan(spec, model_id, hf_id, gpu_name=None, gpu_spec=None, gpu_memory_gib=None, dtype=None, kv_cache_dtype="auto",
         gpus_per_node=None, max_nodes=None, max_model_len=None, min_concurrency=None, gpu_memory_utilization=None,
         max_num_seqs=None, max_num_batched_tokens=None, tensor_parallel_size=None, pipeline_parallel_size=None,
         replicas=None, served_model_name=None, revision=None, vllm_version=None, engine=None):
    """The full gpu_sizing result (see docs/conventions.md) for one model and one GPU type.

    None means the default: max_nodes 8, min_concurrency 1, replicas 1, vLLM's defaults for the rest.
    ``engine``: vllm (default) and nim (NIM runs vLLM inside) size memory with vLLM's accounting; sglang with SGLang's
    (sizing_sglang.py), and then ``gpu_memory_utilization`` is SGLang's --mem-fraction-static (SGLang's own default
    reserve for the GPU, TP, PP and chunked-prefill size when unset).
    """
    engine = str(engine or "vllm").lower()
    if engine not in ENGINES:
        raise SizingError("engine", "engine=%r is not supported; allowed: %s" % (engine, ", ".join(ENGINES)))
    for name, value in (("gpu_memory_gib", gpu_memory_gib), ("min_concurrency", min_concurrency)):
        _check_positive_number(name, value)
    (gpus_per_node, max_nodes, max_model_len, max_num_seqs, max_num_batched_tokens, tensor_parallel_size,
     pipeline_parallel_size, replicas) = [
        None if value is None else inputs.whole_number(value, name=name, error=functools.partial(SizingError, name))
        for name, value in (("gpus_per_node", gpus_per_node), ("max_nodes", max_nodes), ("max_model_len", max_model_len),
                            ("max_num_seqs", max_num_seqs), ("max_num_batched_tokens", max_num_batched_tokens),
                            ("tensor_parallel_size", tensor_parallel_size), ("pipeline_parallel_size", pipeline_parallel_size),
                            ("replicas", replicas))]
    max_nodes = DEFAULT_MAX_NODES if max_nodes is None else max_nodes
    min_concurrency = 1 if min_concurrency is None else min_concurrency
    replicas = 1 if replicas is None else replicas
    if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
        raise SizingError("gpu_memory_utilization", "gpu_memory_utilization=%r must be in (0, 1] (a fraction of total GPU memory)"
                          % (gpu_memory_utilization,))
    if gpu_spec is None and gpu_memory_gib is None:
        raise SizingError("gpu", "set gpu (a catalog product or GFD label) or gpu_memory_gib")

    dtype = spec.native_dtype if dtype in (None, "auto") else normalize_dtype(dtype)
    check_servable_dtype(spec, model_id, dtype)
    kv_cache_dtype = str(kv_cache_dtype or "auto").lower()
    if kv_cache_dtype not in KV_CACHE_DTYPES:
        raise SizingError("kv_cache_dtype", "kv_cache_dtype=%r is not supported; allowed: %s" % (kv_cache_dtype, ", ".join(KV_CACHE_DTYPES)))

    memory_bytes = int(gpu_memory_gib * GIB) if gpu_memory_gib else gpu_spec["memory_bytes"]
    gpu_label = gpu_name or ("%g GiB GPU" % gpu_memory_gib)
    gpus_per_node = gpus_per_node or (gpu_spec["gpus_per_node"] if gpu_spec else 8)
    # NIM runs the vLLM release of its image (engine_facts.NIM_VLLM_VERSION), not the vllm role's.
    version = str(vllm_version or (engine_facts.NIM_VLLM_VERSION if engine == "nim" else engine_facts.VLLM_VERSION)).lstrip("v")
    _version(version)
    default_tokens, default_seqs = default_batch_limits(gpu_name, memory_bytes, version)
    max_model_len = max_model_len or spec.max_position_embeddings
    if not max_model_len:
        raise SizingError("max_model_len", "the config has no max_position_embeddings: set max_model_len")
    if spec.max_position_embeddings and max_model_len > spec.max_position_embeddings:
        raise SizingError("max_model_len", "max_model_len=%d exceeds the model's max_position_embeddings %d (vLLM refuses it)"
                          % (max_model_len, spec.max_position_embeddings))
    settings = {
        "gpu_memory_bytes": memory_bytes,
        "gpu_memory_utilization": gpu_memory_utilization or VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
        "dtype": dtype,
        "kv_cache_dtype": kv_cache_dtype,
        "gpus_per_node": gpus_per_node,
        "max_nodes": max_nodes,
        "max_model_len": max_model_len,
        "min_concurrency": min_concurrency,
        "max_num_seqs": max_num_seqs or default_seqs,
        "max_num_batched_tokens": max_num_batched_tokens or default_tokens,
        "tensor_parallel_size": tensor_parallel_size,
        "pipeline_parallel_size": pipeline_parallel_size,
        # The release whose memory accounting the plan follows (the pinned image's by default).
        "vllm_version": version,
        "gpu_capability": gpu_spec.get("compute_capability") if gpu_spec else None,
        "engine": engine,
        # SGLang: an explicit fraction is --mem-fraction-static as given; None lets each layout take SGLang's default.
        "mem_fraction_static": gpu_memory_utilization if engine == "sglang" else None,
    }
    if tensor_parallel_size:
        problem = tp_problem(spec, tensor_parallel_size)
        if problem:
            valid = valid_tensor_parallel_sizes(spec, max(gpus_per_node, tensor_parallel_size))
            raise SizingError("tensor_parallel_size", "%s; allowed for %s: %s" % (problem, model_id, ", ".join(str(v) for v in valid)))
        if tensor_parallel_size > gpus_per_node:
            raise SizingError("tensor_parallel_size", "tensor_parallel_size=%d exceeds gpus_per_node=%d: tensor parallelism must stay inside "
                              "one node's NVLink domain; use pipeline_parallel_size across nodes" % (tensor_parallel_size, gpus_per_node))
    if pipeline_parallel_size and pipeline_parallel_size > spec.num_layers:
        raise SizingError("pipeline_parallel_size", "pipeline_parallel_size=%d exceeds the model's %d layers"
                          % (pipeline_parallel_size, spec.num_layers))

    layout, tried = search_layout(spec, settings)
    warnings, advice = list(spec.assumption_warnings()), []
    if layout["nodes"] > max_nodes:
        warnings.append("the layout needs %d nodes of %d GPUs but max_nodes is %d" % (layout["nodes"], gpus_per_node, max_nodes))
    fits = layout["meets_targets"] and layout["nodes"] <= max_nodes
    if not fits:
        warnings.extend(_no_fit_reasons(spec, settings, layout, model_id, gpu_label, gpu_spec, tried))
    _explain_smaller_layouts(layout, tried, settings, advice)
    _advise(spec, settings, layout, gpu_spec, gpu_label, advice, warnings, replicas, fits)
    if engine == "sglang":
        _sglang_warnings(spec, settings, layout, warnings)

    memory = dict(layout["memory_per_gpu"])
    warnings = _dedupe(warnings)
    advice = _dedupe(advice)
    kv_whole = spec.kv_bytes_per_token(kv_dtype_bytes(spec, dtype, kv_cache_dtype))
    result = {
        "model": dict(spec.describe(model_id, hf_id, dtype), revision=revision or "main"),
        "params": spec.params,
        "active_params": spec.active_params,
        "weights_bytes": weights_bytes(spec, dtype),
        "kv_cache_bytes_per_token": kv_whole,
        "plan": {
            "tensor_parallel_size": layout["tensor_parallel_size"],
            "pipeline_parallel_size": layout["pipeline_parallel_size"],
            "nodes": layout["nodes"],
            "gpus_per_node": gpus_per_node,
            "gpus_per_replica": layout["gpus_per_replica"],
            "gpus_per_pod": layout["gpus_per_pod"],
            # Pods per replica, GPUs per pod, Deployment or LeaderWorkerSet: decided once, in plan/layout.py.
            "layout": layout["replica_layout"],
            "replicas": replicas,
            "total_gpus": layout["gpus_per_replica"] * replicas,
            "gpu": gpu_label,
            "gpu_labels": list(gpu_spec["gfd_products"]) if gpu_spec else [],
            "gpu_memory_gib": round(memory_bytes / float(GIB), 2),
            "dtype": dtype,
            "kv_cache_dtype": kv_cache_dtype,
            "checkpoint_dtype": spec.native_dtype,
            "quantization": _quantization(spec, dtype),
            "quantize_online": dtype == "fp8" and spec.native_dtype in FLOAT_DTYPES,
            "max_model_len": max_model_len,
            "min_concurrency": min_concurrency,
            "max_num_seqs": settings["max_num_seqs"],
            "max_num_batched_tokens": settings["max_num_batched_tokens"],
            "gpu_memory_utilization": settings["gpu_memory_utilization"],
            "vllm_version": settings["vllm_version"],
            "served_model_name": served_model_name or hf_id,
            "stage_layers": [stage["layers"] for stage in layout["stages"]],
            "alternatives": [summarize_layout(item) for item in tried],
            "warnings": warnings,
        },
        "memory_per_gpu": memory,
        "kv_cache_tokens": layout["kv_cache_tokens"],
        "max_concurrency": round(layout["max_concurrency"], 2),
        "fits": fits,
        "vllm_args": [],
        "warnings": warnings,
        "advice": advice,
    }
    if engine != "vllm":
        result["plan"]["engine"] = engine
    if engine == "sglang":
        # The fraction engine_facts.sglang_plan_flags renders as --mem-fraction-static; gpu_memory_utilization says the same.
        result["plan"]["mem_fraction_static"] = layout["mem_fraction_static"]
        result["plan"]["gpu_memory_utilization"] = layout["mem_fraction_static"]
        result["plan"]["sglang_version"] = engine_facts.SGLANG_VERSION
    result["vllm_args"] = engine_facts.vllm_plan_flags(result) + (
        ["--served-model-name=%s" % served_model_name] if served_model_name else [])
    return result


def _sglang_warnings(spec, settings, layout, warnings):
    """What SGLang's accounting adds: a fraction that leaves less than SGLang's own reserve, and what is not modelled."""
    tp, pp = layout["tensor_parallel_size"], layout["pipeline_parallel_size"]
    fraction = layout["mem_fraction_static"]
    memory = layout["memory_per_gpu"]
    default = sglang.planned_mem_fraction_static(memory["total"], tp, pp, settings["max_num_batched_tokens"],
                                                 settings["max_num_seqs"], spec.is_mla)
    if fraction > default:
        warnings.append("mem_fraction_static=%g leaves %s per GPU for activations and CUDA graphs; SGLang's own default for "
                        "TP%d x PP%d with chunked prefill %d on this GPU (%g) reserves %s: expect out-of-memory errors under "
                        "load (leave gpu_memory_utilization unset to get it)"
                        % (fraction, _gib(memory["runtime_reserve"]), tp, pp, settings["max_num_batched_tokens"], default,
                           _gib(memory["activation_peak"] + memory["cuda_graph"])))
    if spec.sliding_window and spec.sliding_window < settings["max_model_len"] and not spec.is_mla:
        warnings.append("the model uses sliding-window attention (window %d): the SGLang estimate sizes one full-attention "
                        "pool; SGLang's hybrid SWA pool, where it uses one, holds a different number of tokens" % spec.sliding_window)


def _dedupe(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def check_servable_dtype(spec, model_id, dtype):
    """Refuse a precision vLLM cannot serve this checkpoint at.

    A dtype means "serve this checkpoint at this precision": a float checkpoint can be served at any
    float precision or quantized online to FP8 (the one method vLLM can apply to unquantized weights);
    INT8/INT4 need a checkpoint quantized offline (AWQ, GPTQ, compressed-tensors), and a quantized
    checkpoint is served at its own precision.
    """
    native = spec.native_dtype
    if native in FLOAT_DTYPES:
        if dtype in ("int8", "int4"):
            raise SizingError("dtype", "dtype=%r: %s is a %s checkpoint and vLLM can only quantize unquantized weights online to fp8; "
                              "plan with a pre-quantized model (an AWQ, GPTQ or compressed-tensors checkpoint, e.g. a '...-AWQ' "
                              "repository, as a config.json path with hub_id) or use dtype=fp8" % (dtype, model_id, native))
        return
    if dtype != native:
        method = _checkpoint_method(spec) or native
        raise SizingError("dtype", "dtype=%r: %s is already quantized (%s, %s) and vLLM serves it at that precision; "
                          "use dtype=auto (or %s), or plan the unquantized checkpoint" % (dtype, model_id, native, method, native))


def _checkpoint_method(spec):
    quant = spec.quantization_config if isinstance(spec.quantization_config, dict) else {}
    return str(quant.get("quant_method") or "") or None


def _quantization(spec, dtype):
    """The quantization method vLLM will run: the checkpoint's own, or fp8 applied online."""
    if spec.native_dtype not in FLOAT_DTYPES:
        return _checkpoint_method(spec) or spec.native_dtype
    return "fp8" if dtype == "fp8" else None


def _variant(spec, settings, **changes):
    """The layout search rerun with some settings changed (for advice); None if it raises."""
    trial = dict(settings)
    trial.update(changes)
    try:
        layout, _tried = search_layout(spec, trial)
    except SizingError:
        return None
    return layout


def _max_len_for(layout, settings):
    """A shorter max_model_len (a multiple of 1024, 16 minimum) at which layout meets min_concurrency, or 0 when there
    is none: never the max_model_len asked for or more (which is at most the model's max_position_embeddings)."""
    if layout["shortfall_bytes"] > 0 or layout["meets_targets"]:
        return 0
    tokens = layout["kv_cache_tokens"]
    length = min(int(tokens / float(settings["min_concurrency"])), settings["max_model_len"] - 1)
    length = (length // 1024) * 1024 if length >= 1024 else (length // BLOCK_SIZE) * BLOCK_SIZE
    return length if length >= BLOCK_SIZE else 0


def _no_fit_reasons(spec, settings, layout, model_id, gpu_label, gpu_spec, tried=None):
    reasons = []
    memory = layout["memory_per_gpu"]
    max_model_len = settings["max_model_len"]
    where = "TP%d x PP%d on %s" % (layout["tensor_parallel_size"], layout["pipeline_parallel_size"], gpu_label)
    needed = max_model_len * settings["min_concurrency"]
    if layout["shortfall_bytes"] > 0:
        reasons.append("%s does not fit on %s: each GPU needs %s more than its usable %s (weights %s, activations %s, non-torch %s, CUDA graphs %s)"
                       % (model_id, where, _gib(layout["shortfall_bytes"]), _gib(memory["usable"]), _gib(memory["weights"]),
                          _gib(memory["activation_peak"]), _gib(memory["non_torch"]), _gib(memory["cuda_graph"])))
    elif layout["kv_cache_tokens"] >= needed:
        # The layout holds the targets; what it breaks is max_nodes (or no pod shape splits it over its nodes).
        reasons.append("%s on %s holds %d KV-cache tokens (%.2fx max_model_len=%d) but needs %d GPUs on %d node(s) of %d, "
                       "more than max_nodes=%d allows%s"
                       % (model_id, where, layout["kv_cache_tokens"], layout["max_concurrency"], max_model_len,
                          layout["gpus_per_replica"], layout["nodes"], settings["gpus_per_node"], settings["max_nodes"],
                          "" if layout["replica_layout"] else " (and its ranks do not split evenly over the nodes)"))
    else:
        reasons.append("%s on %s holds %d KV-cache tokens, short of the %d needed for min_concurrency=%g at max_model_len=%d (%.2fx)"
                       % (model_id, where, layout["kv_cache_tokens"], needed, settings["min_concurrency"], max_model_len, layout["max_concurrency"]))
    # What would fit: more nodes, FP8, a shorter context.
    more_nodes = _variant(spec, settings, max_nodes=max(settings["max_nodes"] * 8, 16))
    if more_nodes is not None and more_nodes["meets_targets"]:
        reasons.append("fits with more GPUs: TP%d x PP%d = %d GPUs on %d node(s) (max_nodes=%d now)"
                       % (more_nodes["tensor_parallel_size"], more_nodes["pipeline_parallel_size"], more_nodes["gpus_per_replica"],
                          more_nodes["nodes"], settings["max_nodes"]))
    if settings["dtype"] in ("bf16", "fp16", "fp32"):
        fp8 = _variant(spec, settings, dtype="fp8")
        if fp8 is not None and fp8["meets_targets"] and fp8["nodes"] <= settings["max_nodes"]:
            reasons.append("fits with FP8 weights (dtype=fp8%s): TP%d x PP%d"
                           % ("" if not gpu_spec or gpu_spec["fp8"] else ", weight-only on this pre-Hopper GPU",
                              fp8["tensor_parallel_size"], fp8["pipeline_parallel_size"]))
    # A shorter context on a layout max_nodes allows (the layout above may not be one).
    candidates = [item for item in [layout] + list(tried or []) if item["nodes"] <= settings["max_nodes"] and item["replica_layout"]]
    within = max(candidates, key=lambda item: item["kv_cache_tokens"]) if candidates else None
    shorter = _max_len_for(within, settings) if within is not None else 0
    if shorter:
        reasons.append("fits with a shorter context: max_model_len=%d on TP%d x PP%d"
                       % (shorter, within["tensor_parallel_size"], within["pipeline_parallel_size"]))
    return reasons


def _explain_smaller_layouts(layout, tried, settings, advice):
    """Say what the next-smaller single-node layout would hold (e.g. the common 'TP=2' answer)."""
    smaller = [item for item in tried if item["gpus_per_replica"] < layout["gpus_per_replica"]]
    if not smaller or not layout["meets_targets"]:
        return
    item = smaller[-1]
    room = item["memory_per_gpu"]["kv_cache"]
    if item["shortfall_bytes"] > 0:
        detail = "does not fit at all (%s short per GPU)" % _gib(item["shortfall_bytes"])
    else:
        detail = "leaves %s per GPU for KV cache: %d tokens, %.2fx max_model_len=%d" % (
            _gib(room), item["kv_cache_tokens"], item["max_concurrency"], settings["max_model_len"])
    advice.append("TP%d x PP%d %s; min_concurrency=%g needs TP%d x PP%d (%d tokens, %.2fx)" % (
        item["tensor_parallel_size"], item["pipeline_parallel_size"], detail, settings["min_concurrency"],
        layout["tensor_parallel_size"], layout["pipeline_parallel_size"], layout["kv_cache_tokens"], layout["max_concurrency"]))


def _advise(spec, settings, layout, gpu_spec, gpu_label, advice, warnings, replicas, fits):
    tp, pp = layout["tensor_parallel_size"], layout["pipeline_parallel_size"]
    fp8_capable = bool(gpu_spec and gpu_spec["fp8"])
    if settings["dtype"] in ("bf16", "fp16", "fp32") and fp8_capable and not (settings.get("tensor_parallel_size") or settings.get("pipeline_parallel_size")):
        fp8 = _variant(spec, settings, dtype="fp8")
        if fp8 is not None and fp8["meets_targets"] and fp8["gpus_per_replica"] < layout["gpus_per_replica"]:
            advice.append("FP8 fits this on %d GPU%s instead of %d: quantize first (an FP8 checkpoint, or --quantization=fp8)"
                          % (fp8["gpus_per_replica"], "" if fp8["gpus_per_replica"] == 1 else "s", layout["gpus_per_replica"]))
    if settings["kv_cache_dtype"] == "auto" and fp8_capable and layout["shortfall_bytes"] == 0:
        doubled = evaluate_layout(spec, dict(settings, kv_cache_dtype="fp8"), tp, pp)
        advice.append("--kv-cache-dtype=fp8 on %s holds %d tokens instead of %d (%.2fx max_model_len)"
                      % (gpu_label, doubled["kv_cache_tokens"], layout["kv_cache_tokens"], doubled["max_concurrency"]))
    if not layout["meets_targets"] and layout["shortfall_bytes"] == 0 and layout["nodes"] <= settings["max_nodes"]:
        shorter = _max_len_for(layout, settings)
        if shorter:
            advice.append("a shorter context fits: max_model_len=%d meets min_concurrency=%g on this layout" % (shorter, settings["min_concurrency"]))
    if fits and replicas == 1 and layout["nodes"] == 1 and settings["gpus_per_node"] >= 2 * layout["gpus_per_replica"]:
        advice.append("one %d-GPU node holds %d replicas of this %d-GPU layout: set replicas for data parallel throughput"
                      % (settings["gpus_per_node"], settings["gpus_per_node"] // layout["gpus_per_replica"], layout["gpus_per_replica"]))

    if gpu_spec and gpu_spec["nvlink"] != "all" and tp > 2:
        warnings.append("%s GPUs are joined by PCIe%s: tensor_parallel_size=%d all-reduces over PCIe every layer; expect lower throughput "
                        "than NVLink systems (prefer TP<=2 with more replicas, or pipeline parallel)"
                        % (gpu_label, " and NVLink pairs only" if gpu_spec["nvlink"] == "pairs" else "", tp))
    if gpu_spec and not gpu_spec["fp8"]:
        if settings["dtype"] == "fp8":
            warnings.append("%s has no FP8 tensor cores: vLLM runs FP8 weights weight-only (Marlin), saving memory but not compute" % gpu_label)
        if settings["kv_cache_dtype"] != "auto":
            warnings.append("%s has no FP8 tensor cores: an FP8 KV cache saves memory but some attention backends do not support it there" % gpu_label)
    if layout["nodes"] > 1:
        warnings.append("the layout spans %d nodes (TP%d inside each, PP%d across): use InfiniBand/RoCE between them; pipeline traffic over TCP is slow"
                        % (layout["nodes"], tp, pp))
    if spec.sliding_window and spec.window_layers is None and spec.sliding_window < settings["max_model_len"] and settings.get("engine") != "sglang":
        warnings.append("the model uses sliding-window attention (window %d): the KV estimate treats every layer as full attention, "
                        "so vLLM may hold more tokens than predicted" % spec.sliding_window)
