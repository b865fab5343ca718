# -*- coding: utf-8 -*-
"""What loading the collection's filter files costs each task that uses one of them.

ansible-core loads every filter file of a collection, in the task's worker process, whenever a task uses any
filter of that collection. The log parser and the waiting code are imported only by the filters that call
them, and a filter's lazy-container arguments are turned into plain data before a module_utils copies them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import subprocess
import sys

from ansible_collections.gpuinfer.serving.plugins.module_utils.inputs import plain

FILTERS = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "plugins", "filter"))
COLLECTIONS = os.path.abspath(os.path.join(FILTERS, *[os.pardir] * 5))


def test_loading_every_filter_file_leaves_the_log_parser_and_the_waiting_code_unloaded():
    names = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(FILTERS, "*.py")))
    assert "engine_verify" in names and "k8s_state" in names
    code = "import json, sys\n" + "".join("import ansible_collections.gpuinfer.serving.plugins.filter.%s\n" % name for name in names) + (
        "print(json.dumps(sorted(name.rsplit('.', 1)[1] for name in sys.modules if name.startswith("
        "'ansible_collections.gpuinfer.serving.plugins.module_utils.'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env=dict(os.environ, PYTHONPATH=COLLECTIONS))
    loaded = json.loads(proc.stdout)
    assert "engine_log" not in loaded and "k8s_wait" not in loaded
    assert "registry" in loaded  # the check sees what the filter files do import (deploy/engines/registry.py)


class Lazy(dict):
    """Stands in for a lazy container: values are produced on access."""

    def __getitem__(self, key):
        return "templated:%s" % dict.__getitem__(self, key)

    def items(self):
        return [(key, self[key]) for key in self]


class TaggedStr(str):
    pass


def test_plain_reads_through_the_mapping_interface_and_drops_subclasses():
    value = {"a": Lazy(x="1"), "b": [TaggedStr("s"), (1, 2.5, True, None)], 3: {"n": 7}}
    result = plain(value)
    assert result == {"a": {"x": "templated:1"}, "b": ["s", [1, 2.5, True, None]], 3: {"n": 7}}
    assert result["b"][0].__class__ is str and result["a"].__class__ is dict and result["b"][1][2] is True
