# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import sizing
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing


def params(**changes):
    base = dict(model="meta-llama/Llama-3.1-8B-Instruct", gpus_per_node=1, max_model_len=8192, replicas=1,
                revision="main", fail_on_no_fit=False)
    base.update(changes)
    return base


def test_gpu_memory_gib_sizes_a_gpu_the_catalog_does_not_list():
    result = gpu_sizing.size(params(gpu="RTX4090", gpu_memory_gib=23.6))
    assert result["fits"]
    assert result["plan"]["gpu"] == "RTX4090"
    assert result["plan"]["gpu_memory_gib"] == 23.6
    assert result["plan"]["gpu_labels"] == []
    assert any(w.startswith("RTX4090 is not in the GPU catalog: sized as an unlisted GPU of 23.6 GiB")
               for w in result["plan"]["warnings"])
    assert result["performance"] is None  # no datasheet figures to predict speed from


def test_an_unlisted_gpu_without_its_memory_is_refused_saying_how_to_size_it():
    with pytest.raises(sizing.SizingError, match="give gpu_memory_gib to size a GPU the catalog does not list"):
        gpu_sizing.size(params(gpu="RTX4090"))
