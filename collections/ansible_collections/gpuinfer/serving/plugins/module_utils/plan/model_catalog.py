# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Embedded Hugging Face config.json values of the models gpu_sizing knows by name.

Only the fields that decide parameter count, weight bytes and KV-cache size are kept; they are
copied from each model's published config.json on the Hugging Face Hub (the values are public
facts, the Hub is never contacted at run time). DeepSeek-R1 shares DeepSeek-V3's architecture.
Lookups are case-insensitive on the Hugging Face id, with short aliases for convenience.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import difflib


def _llama(hidden, intermediate, layers, heads, kv_heads, vocab=128256, tied=False, max_pos=131072, head_dim=None):
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "max_position_embeddings": max_pos,
        "torch_dtype": "bfloat16",
        "attention_bias": False,
        "mlp_bias": False,
        "rope_theta": 500000.0,
    }
    if head_dim is not None:
        config["head_dim"] = head_dim
    return config


_LLAMA_31_70B = _llama(8192, 28672, 80, 64, 8)

_DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    # The multi-token-prediction layer ships in the checkpoint (685B on the Hub card) but neither
    # transformers nor vLLM (without speculative decoding) loads it, so the 671B count excludes it.
    "num_nextn_predict_layers": 1,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "n_group": 8,
    "topk_group": 4,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "tie_word_embeddings": False,
    "max_position_embeddings": 163840,
    "rope_theta": 10000,
    "torch_dtype": "bfloat16",
    "attention_bias": False,
    "quantization_config": {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
    },
}

MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": _llama(4096, 14336, 32, 32, 8),
    "meta-llama/Llama-3.1-70B-Instruct": copy.deepcopy(_LLAMA_31_70B),
    "meta-llama/Llama-3.1-405B-Instruct": _llama(16384, 53248, 126, 128, 8),
    "meta-llama/Llama-3.2-3B-Instruct": _llama(3072, 8192, 28, 24, 8, tied=True, head_dim=128),
    "meta-llama/Llama-3.3-70B-Instruct": copy.deepcopy(_LLAMA_31_70B),
    "mistralai/Mistral-7B-Instruct-v0.3": {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 32768,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
        "sliding_window": None,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "mistralai/Mixtral-8x7B-Instruct-v0.1": {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 32000,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
        "sliding_window": None,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "mistralai/Mixtral-8x22B-Instruct-v0.1": {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "hidden_size": 6144,
        "intermediate_size": 16384,
        "num_hidden_layers": 56,
        "num_attention_heads": 48,
        "num_key_value_heads": 8,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 32768,
        "tie_word_embeddings": False,
        "max_position_embeddings": 65536,
        "sliding_window": None,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
        "use_sliding_window": False,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "Qwen/Qwen2.5-72B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 8192,
        "intermediate_size": 29568,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
        "use_sliding_window": False,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "Qwen/Qwen3-14B": {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": 5120,
        "intermediate_size": 17408,
        "num_hidden_layers": 40,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "tie_word_embeddings": False,
        "max_position_embeddings": 40960,
        "attention_bias": False,
        "rope_theta": 1000000,
        "torch_dtype": "bfloat16",
    },
    "Qwen/Qwen3-32B": {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": 5120,
        "intermediate_size": 25600,
        "num_hidden_layers": 64,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "tie_word_embeddings": False,
        "max_position_embeddings": 40960,
        "attention_bias": False,
        "rope_theta": 1000000,
        "torch_dtype": "bfloat16",
    },
    "Qwen/Qwen3-30B-A3B": {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "moe_intermediate_size": 768,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "norm_topk_prob": True,
        "vocab_size": 151936,
        "tie_word_embeddings": False,
        "max_position_embeddings": 40960,
        "attention_bias": False,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "Qwen/Qwen3-235B-A22B": {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "moe_intermediate_size": 1536,
        "num_hidden_layers": 94,
        "num_attention_heads": 64,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "norm_topk_prob": True,
        "vocab_size": 151936,
        "tie_word_embeddings": False,
        "max_position_embeddings": 40960,
        "attention_bias": False,
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
    },
    "google/gemma-2-27b-it": {
        "architectures": ["Gemma2ForCausalLM"],
        "model_type": "gemma2",
        "hidden_size": 4608,
        "intermediate_size": 36864,
        "num_hidden_layers": 46,
        "num_attention_heads": 32,
        "num_key_value_heads": 16,
        "head_dim": 128,
        "query_pre_attn_scalar": 144,
        "sliding_window": 4096,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "hidden_activation": "gelu_pytorch_tanh",
        "vocab_size": 256000,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
        "attention_bias": False,
        "torch_dtype": "bfloat16",
    },
    "microsoft/Phi-3-mini-4k-instruct": {
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32064,
        "tie_word_embeddings": False,
        "max_position_embeddings": 4096,
        "sliding_window": 2047,
        "rope_theta": 10000.0,
        "torch_dtype": "bfloat16",
    },
    "deepseek-ai/DeepSeek-V3": copy.deepcopy(_DEEPSEEK_V3),
    "deepseek-ai/DeepSeek-R1": copy.deepcopy(_DEEPSEEK_V3),
}

ALIASES = {
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
    "llama-3.1-405b": "meta-llama/Llama-3.1-405B-Instruct",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B-Instruct",
    "llama-3.3-70b": "meta-llama/Llama-3.3-70B-Instruct",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.3",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct",
    "qwen3-14b": "Qwen/Qwen3-14B",
    "qwen3-32b": "Qwen/Qwen3-32B",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B",
    "gemma-2-27b": "google/gemma-2-27b-it",
    "phi-3-mini": "microsoft/Phi-3-mini-4k-instruct",
    "deepseek-v3": "deepseek-ai/DeepSeek-V3",
    "deepseek-r1": "deepseek-ai/DeepSeek-R1",
}

# Base (non-Instruct) checkpoints share the architecture of their Instruct sibling.
_SAME_ARCHITECTURE = {
    "meta-llama/Llama-3.1-8B": "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.1-405B": "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/Llama-3.2-3B": "meta-llama/Llama-3.2-3B-Instruct",
    "mistralai/Mistral-7B-v0.3": "mistralai/Mistral-7B-Instruct-v0.3",
    "Qwen/Qwen2.5-7B": "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-72B": "Qwen/Qwen2.5-72B-Instruct",
    "google/gemma-2-27b": "google/gemma-2-27b-it",
}

# Every spelling a user may type, lower-cased, to the id reported back (a base checkpoint keeps its own id).
_BY_LOWER = {}
for _hf_id in list(MODELS) + list(_SAME_ARCHITECTURE):
    _BY_LOWER[_hf_id.lower()] = _hf_id
for _alias, _hf_id in ALIASES.items():
    _BY_LOWER[_alias.lower()] = _hf_id
# Meta's older repository names (Meta-Llama-3.1-...) still resolve on the Hub.
for _hf_id in list(MODELS) + list(_SAME_ARCHITECTURE):
    if _hf_id.startswith("meta-llama/Llama-3.1-"):
        _BY_LOWER[_hf_id.replace("Llama-3.1-", "Meta-Llama-3.1-").lower()] = _hf_id


# Hugging Face model types whose layers the planner models field by field (sizing.ModelSpec): the catalog's families
# and their close relatives. A config.json of another type is sized as a standard decoder with a warning naming the
# assumptions (sizing.ModelSpec.assumption_warnings).
KNOWN_MODEL_TYPES = (
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "phi3",
    "deepseek_v2", "deepseek_v3",
)
# Config fields of layer designs the planner does not model; present in an unknown architecture's config, the warning
# names them (e.g. Llama 4: MoE on some layers only, a separate dense MLP size, chunked attention, NoPE layers).
UNMODELLED_FIELDS = (
    "interleave_moe_layer_step", "intermediate_size_mlp", "attention_chunk_size", "no_rope_layers", "layer_types",
    "sliding_window_pattern", "linear_attention", "full_attention_interval", "moe_layers", "mamba_d_state",
    "cross_attention_layers", "num_nextn_predict_layers",
)


def is_known_model_type(model_type):
    return str(model_type or "").lower() in KNOWN_MODEL_TYPES


class UnknownModelError(ValueError):
    """Raised for a name the catalog does not hold; the message lists close matches."""


def model_ids():
    """The Hugging Face ids the catalog holds a config for, sorted."""
    return sorted(MODELS)


def close_matches(name, limit=5):
    """Catalog ids and aliases that look like ``name`` (for error messages)."""
    lowered = (name or "").strip().lower()
    names = {}
    for key, hf_id in _BY_LOWER.items():
        names.setdefault(key, hf_id)
    matches = difflib.get_close_matches(lowered, list(names), n=limit * 2, cutoff=0.5)
    # A bare family word ("mixtral", "qwen3") deserves the ids containing it even when difflib finds them too different.
    matches.extend(key for key in sorted(names) if lowered and lowered in key)
    seen = []
    for key in matches:
        if names[key] not in seen:
            seen.append(names[key])
    return seen[:limit]


def resolve_id(name):
    """Canonical Hugging Face id for ``name`` (an id or alias, any case, optional 'hf://' or trailing '/')."""
    key = (name or "").strip()
    for prefix in ("hf://", "https://huggingface.co/"):
        if key.lower().startswith(prefix):
            key = key[len(prefix):]
    key = key.strip("/").lower()
    if key in _BY_LOWER:
        return _BY_LOWER[key]
    matches = close_matches(name)
    raise UnknownModelError(
        "model %r is not in the embedded catalog%s; pass a catalog id (%s) or a path to a config.json"
        % (name, (" (close matches: %s)" % ", ".join(matches)) if matches else "", ", ".join(model_ids())))


def lookup(name):
    """(canonical id, a private copy of its config dict) for ``name``."""
    hf_id = resolve_id(name)
    return hf_id, copy.deepcopy(MODELS[_SAME_ARCHITECTURE.get(hf_id, hf_id)])
