"""The pinned vLLM's memory accounting, as source lines (tests/contracts/vllm/memory-accounting-<ver>.json), against
the planner's constants: bumping the pin without refreshing the evidence, or changing a constant away from the
source, fails here. The behaviour each term gates is tested in the collection's test_sizing_vllm_versions.py."""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT))

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_vllm  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import gpu_catalog, sizing  # noqa: E402
from tests.contracts import check as contracts  # noqa: E402

PINNED = contracts.pinned_versions()["vllm"]
EVIDENCE = ROOT / "tests" / "contracts" / "vllm" / ("memory-accounting-%s.json" % PINNED)


@pytest.fixture(scope="module")
def evidence():
    assert EVIDENCE.is_file(), "no memory-accounting evidence for vLLM %s: run tests/contracts/vllm/memory_accounting.py" % PINNED
    return json.loads(EVIDENCE.read_text())


def test_the_evidence_is_the_pinned_release_and_complete(evidence):
    assert evidence["version"] == PINNED == engine_vllm.VERSION
    assert evidence["missing"] == []
    # The same sdist as the flags contract.
    assert evidence["source"]["sha256"] == contracts.load("vllm")["source"]["sha256"]
    for term in evidence["terms"]:
        assert term["file"] and term["line"] > 0 and term["text"], term


# What the planner does for each term that names it, at the pinned release.
PLANNER = {
    "sizing.BLOCK_SIZE_FROM_0_34": lambda: sizing.block_size(PINNED),
    "sizing.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION": lambda: sizing.VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
    "sizing.extensible_kv_cache": lambda: sizing.extensible_kv_cache(PINNED),
    "sizing.KV_CACHE_MARGIN_FLOOR_BYTES": lambda: sizing.KV_CACHE_MARGIN_FLOOR_BYTES,
    "sizing.KV_CACHE_MARGIN_FRACTION": lambda: sizing.KV_CACHE_MARGIN_FRACTION,
    "sizing.KV_CACHE_GRANULE_BYTES": lambda: sizing.KV_CACHE_GRANULE_BYTES,
    "sizing.cuda_graphs_in_budget": lambda: sizing.cuda_graphs_in_budget(PINNED, True),
    "sizing.runner_v2": lambda: all(sizing.runner_v2(spec, "bf16", PINNED) for spec in _moe_and_dense()),
    "sizing.SAMPLER_V2_WARMUP_BYTES_PER_LOGIT": lambda: sizing.sampler_bytes_per_logit(PINNED, True),
    "sizing.PROMPT_LOGPROBS_CHUNK_ROWS": lambda: sizing.PROMPT_LOGPROBS_CHUNK_ROWS,
    "sizing.group_size_factor": lambda: sizing.group_size_factor(PINNED),
    "sizing.default_batch_limits": lambda: list(sizing.default_batch_limits("B200", gpu_catalog.GPUS["B200"]["memory_bytes"],
                                                                          PINNED)),
    "sizing.CUDA_GRAPH_MAX_CAPTURE_SIZE_BLACKWELL": lambda: sizing.CUDA_GRAPH_MAX_CAPTURE_SIZE_BLACKWELL,
    "engine_vllm.ENGINE.image_cuda": lambda: engine_vllm.ENGINE.image_cuda,
}


def _moe_and_dense():
    from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import model_catalog
    for name in ("mistralai/Mixtral-8x7B-Instruct-v0.1", "meta-llama/Llama-3.1-8B-Instruct"):
        hf_id, config = model_catalog.lookup(name)
        yield sizing.ModelSpec(config, hf_id)


def test_the_planner_follows_each_term_of_the_pinned_release(evidence):
    named = [term for term in evidence["terms"] if term["planner"]]
    assert set(term["planner"] for term in named) == set(PLANNER)
    for term in named:
        assert PLANNER[term["planner"]]() == term["value"], "%s (%s:%d: %s)" % (term["id"], term["file"], term["line"],
                                                                            term["text"])
    # The image's CUDA is what the source's Dockerfile says.
    cuda = next(term for term in evidence["terms"] if term["id"] == "image_cuda")
    assert cuda["text"].split("=")[1].startswith(engine_vllm.ENGINE.image_cuda + ".")
    assert contracts.load("vllm")["image"]["CUDA_VERSION"] == cuda["text"].split("=")[1]
