# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""The engine registry: every engine the collection can deploy, by the name users give it.

Adding an engine is one module that builds an engine_base.Engine (see engine_sglang.py), its
name, title and plan flags in plan/engine_facts.py, its role (defaults and argument spec) and
its tests, plus one line in ENGINES below.

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_base, engine_nim, engine_sglang, engine_vllm

ENGINES = {
    "vllm": engine_vllm.ENGINE,
    "nim": engine_nim.ENGINE,
    "sglang": engine_sglang.ENGINE,
}

EngineError = engine_base.EngineError
API_PORT = engine_base.API_PORT

hf_cache_env = engine_base.hf_cache_env
hf_download_args = engine_base.hf_download_args


def names():
    return sorted(ENGINES)


def get(name):
    """The engine called ``name``, or an EngineError listing the registered ones."""
    engine = ENGINES.get(str(name or ""))
    if engine is None:
        raise EngineError("gpuinfer_engine=%r is not an engine of this collection; allowed: %s" % (name, ", ".join(names())))
    return engine


def info(name):
    return get(name).info()


# The CUDA of each pinned engine image, from the engine descriptions.
IMAGE_CUDA = dict((engine.image, engine.image_cuda) for engine in ENGINES.values() if engine.image_repository and engine.image_cuda)


def image_driver_requirement(image):
    """{image, cuda, min_driver_major} for an image whose CUDA is known, else None."""
    cuda = IMAGE_CUDA.get(str(image or ""))
    if cuda is None:
        return None
    return {"image": str(image), "cuda": cuda, "min_driver_major": engine_base.CUDA_MIN_DRIVER_MAJOR[cuda]}
