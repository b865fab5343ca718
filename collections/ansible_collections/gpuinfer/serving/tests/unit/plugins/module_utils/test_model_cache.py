# -*- coding: utf-8 -*-
"""module_utils/deploy/model_cache.py: the model cache's decisions, rule by rule."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import model_cache
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.layout import replica_layout

WEIGHTS = 141107412992  # Llama-3.1-70B in BF16
PLAN = {"weights_bytes": WEIGHTS, "model": {"id": "meta-llama/Llama-3.1-70B-Instruct"},
        "plan": {"tensor_parallel_size": 8, "pipeline_parallel_size": 1, "nodes": 1, "replicas": 1, "gpus_per_node": 8,
                 "layout": replica_layout(8, 1, 1, 8)}}


def settings(**overrides):
    base = dict(
        engine="vllm", engines=["nim", "sglang", "vllm"], layout="huggingface", instance="llm", namespace="llm-serving",
        state="present", model="meta-llama/Llama-3.1-70B-Instruct", revision="main", size="", headroom=0.25,
        access_mode="", mount_path="/models", existing_claim="", claim_name="llm-model-cache", hf_token_given=False,
        ngc_api_key_given=False, hf_token_existing_secret="", ngc_existing_secret="", pull_existing_secret="",
        hf_token_secret_name="llm-hf-token", ngc_secret_name="llm-ngc-api", pull_secret_name="llm-nvcr-pull",
        render_mode=False, download=True, download_image="vllm/vllm-openai:v0.34.0", nim_image="", nim_profiles=[],
        shm_size_override="", node_memory_bytes=0, shm_max_node_fraction=0.25)
    base.update(overrides)
    return base


def test_claim_is_the_weights_plus_headroom_in_whole_gib():
    resolved = model_cache.resolve(settings(), PLAN)
    assert resolved["problems"] == []
    assert resolved["claim_size"] == "165Gi"  # 131.4 GiB * 1.25 = 164.3, rounded up
    assert resolved["access_mode"] == "ReadWriteOnce"
    assert resolved["claim"] == "llm-model-cache"
    assert resolved["prefilled"] is True


def test_a_plan_over_several_nodes_shares_the_claim_and_warns_on_a_single_node_mode():
    plan = dict(PLAN, plan=dict(PLAN["plan"], nodes=2, layout=replica_layout(8, 1, 2, 8)))
    assert model_cache.resolve(settings(), plan)["access_mode"] == "ReadWriteMany"
    resolved = model_cache.resolve(settings(access_mode="ReadWriteOnce"), plan)
    assert resolved["access_mode"] == "ReadWriteOnce"
    assert "pods on different nodes cannot all mount this claim" in resolved["notes"][0]


def test_given_credentials_get_the_role_secret_names_and_render_mode_says_so():
    resolved = model_cache.resolve(settings(hf_token_given=True, render_mode=True), PLAN)
    assert resolved["hf_secret"] == "llm-hf-token"
    assert resolved["notes"][0].startswith("Render mode never writes Secrets: create llm-hf-token (key HF_TOKEN)")
    assert model_cache.resolve(settings(hf_token_existing_secret="mine"), PLAN)["hf_secret"] == "mine"


@pytest.mark.parametrize("overrides, plan, message", [
    ({"size": "100Gi"}, PLAN, "model_cache_size=100Gi (107374182400 bytes) is smaller than the model weights"),
    ({"size": "lots"}, PLAN, "model_cache_size=lots is not a Kubernetes quantity such as 500Gi"),
    ({"engine": "tgi"}, PLAN, "model_cache_engine=tgi (nim|sglang|vllm)"),
    ({}, {"plan": {"tensor_parallel_size": 1}}, "plan weights_bytes=missing"),
    ({}, dict(PLAN, weights_bytes="-3"), "plan weights_bytes=-3"),
    ({"mount_path": "models"}, PLAN, "model_cache_mount_path=models (absolute path)"),
    ({"instance": "Bad_Name"}, PLAN, "model_cache_instance=Bad_Name (a DNS label)"),
    ({"access_mode": "ReadWriteAll"}, PLAN, "model_cache_access_mode='ReadWriteAll'"),
    ({"hf_token_given": True, "hf_token_existing_secret": "hf"}, PLAN, "Give model_cache_hf_token or"),
    ({"model": ""}, PLAN, "The vLLM download Job needs model_cache_model (got '')"),
    ({"layout": "nim", "engine": "nim"}, PLAN, "The NIM download Job needs model_cache_nim_image"),
])
def test_bad_settings_name_the_variable(overrides, plan, message):
    problems = model_cache.resolve(settings(**overrides), plan)["problems"]
    assert any(message in problem for problem in problems), problems


def test_no_download_needs_no_model():
    assert model_cache.resolve(settings(model="", download=False), PLAN)["problems"] == []


def test_the_job_name_changes_with_what_it_downloads_and_stays_a_dns_label():
    first = model_cache.resolve(settings(), PLAN)["job_name"]
    assert first == model_cache.resolve(settings(), PLAN)["job_name"]
    assert first != model_cache.resolve(settings(revision="abc123"), PLAN)["job_name"]
    long_name = model_cache.resolve(settings(instance="a" * 39 + "-b" * 10), PLAN)["job_name"]
    assert long_name.startswith("a" * 39 + "-model-download-")


def resolved_for(named):
    return model_cache.resolve(named, PLAN)


def test_existing_secrets_and_claim_are_checked_by_name_and_key():
    named = settings(hf_token_existing_secret="hf", pull_existing_secret="pull", existing_claim="weights")
    found = {"hf": {"exists": True, "keys": ["HF_TOKEN"]}, "pull": {"exists": True, "keys": ["token"]}}
    problems = model_cache.existing_problems(resolved_for(named), found, {"exists": True, "capacity": "100Gi"})
    assert problems == [
        "Secret pull (model_cache_pull_existing_secret) has no key .dockerconfigjson (keys: token)",
        "PersistentVolumeClaim weights holds 100Gi (107374182400 bytes), less than the model weights, %d bytes." % WEIGHTS,
    ]
    assert model_cache.existing_problems(resolved_for(named), {}, {"exists": False})[-1] == (
        "PersistentVolumeClaim weights (model_cache_existing_claim) does not exist in namespace llm-serving.")
    fine = dict(found, pull={"exists": True, "keys": [".dockerconfigjson"]})
    assert model_cache.existing_problems(resolved_for(named), fine, {"exists": True, "capacity": "500Gi"}) == []


def test_lookups_fill_in_what_the_cluster_read_did_not_cover():
    lookups = [{"item": {"name": "hf"}, "resources": [{"data": {"HF_TOKEN": "c2VjcmV0"}}]},
               {"item": {"name": "gone"}, "resources": []},
               {"item": {"name": "known"}, "skipped": True}]
    found = model_cache.found_from_lookups({"known": {"exists": True, "keys": ["X"]}}, lookups)
    assert found == {"known": {"exists": True, "keys": ["X"]}, "hf": {"exists": True, "keys": ["HF_TOKEN"]},
                     "gone": {"exists": False, "keys": []}}
    claim = {"resources": [{"spec": {"resources": {"requests": {"storage": "200Gi"}}}, "status": {}}]}
    assert model_cache.claim_from({}, claim, "weights") == {"exists": True, "capacity": "200Gi"}
    assert model_cache.claim_from({}, {"resources": []}, "weights") == {"exists": False, "capacity": "0"}
    assert model_cache.claim_from({}, {}, "") is None
