# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import model_catalog

REQUIRED = (
    "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1", "mistralai/Mixtral-8x22B-Instruct-v0.1", "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen3-14B", "Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-235B-A22B",
    "google/gemma-2-27b-it", "microsoft/Phi-3-mini-4k-instruct", "deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1",
)


def test_catalog_holds_every_model_the_issue_names():
    assert set(REQUIRED) <= set(model_catalog.model_ids())


@pytest.mark.parametrize("spelling", [
    "meta-llama/Llama-3.1-70B-Instruct", "META-LLAMA/LLAMA-3.1-70B-INSTRUCT", " llama-3.1-70b ",
    "hf://meta-llama/Llama-3.1-70B-Instruct", "https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct/",
    "meta-llama/Meta-Llama-3.1-70B-Instruct",
])
def test_lookup_is_case_insensitive_and_accepts_aliases(spelling):
    hf_id, config = model_catalog.lookup(spelling)
    assert hf_id == "meta-llama/Llama-3.1-70B-Instruct"
    assert config["num_key_value_heads"] == 8


def test_base_checkpoint_keeps_its_id_and_shares_the_instruct_architecture():
    hf_id, config = model_catalog.lookup("meta-llama/Llama-3.1-8B")
    assert hf_id == "meta-llama/Llama-3.1-8B"
    assert config == model_catalog.MODELS["meta-llama/Llama-3.1-8B-Instruct"]


def test_lookup_returns_a_private_copy():
    _hf_id, config = model_catalog.lookup("deepseek-v3")
    config["quantization_config"]["weight_block_size"] = [1, 1]
    assert model_catalog.MODELS["deepseek-ai/DeepSeek-V3"]["quantization_config"]["weight_block_size"] == [128, 128]


def test_unknown_model_lists_close_matches():
    with pytest.raises(model_catalog.UnknownModelError) as error:
        model_catalog.lookup("mixtral-8x7")
    message = str(error.value)
    assert "'mixtral-8x7'" in message
    assert "close matches: mistralai/Mixtral-8x7B-Instruct-v0.1" in message


@pytest.mark.parametrize("hf_id, fields", [
    # Spot checks against the published config.json files on the Hugging Face Hub.
    ("meta-llama/Llama-3.1-405B-Instruct", {"hidden_size": 16384, "intermediate_size": 53248, "num_hidden_layers": 126,
                                            "num_attention_heads": 128, "num_key_value_heads": 8, "vocab_size": 128256}),
    ("meta-llama/Llama-3.2-3B-Instruct", {"tie_word_embeddings": True, "head_dim": 128, "num_attention_heads": 24}),
    ("Qwen/Qwen2.5-7B-Instruct", {"num_key_value_heads": 4, "vocab_size": 152064, "intermediate_size": 18944}),
    ("Qwen/Qwen3-30B-A3B", {"num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768, "head_dim": 128}),
    ("google/gemma-2-27b-it", {"head_dim": 128, "num_key_value_heads": 16, "vocab_size": 256000, "query_pre_attn_scalar": 144}),
    ("deepseek-ai/DeepSeek-R1", {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "n_routed_experts": 256, "n_shared_experts": 1,
                                 "first_k_dense_replace": 3, "q_lora_rank": 1536}),
    ("mistralai/Mixtral-8x22B-Instruct-v0.1", {"num_local_experts": 8, "vocab_size": 32768, "max_position_embeddings": 65536}),
])
def test_catalog_values_match_the_published_configs(hf_id, fields):
    config = model_catalog.MODELS[hf_id]
    for key, value in fields.items():
        assert config[key] == value, key


def test_deepseek_ships_block_fp8():
    quant = model_catalog.MODELS["deepseek-ai/DeepSeek-V3"]["quantization_config"]
    assert quant["quant_method"] == "fp8" and quant["weight_block_size"] == [128, 128]
