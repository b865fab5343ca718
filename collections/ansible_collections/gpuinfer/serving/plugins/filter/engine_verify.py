# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: engine_verify
short_description: Compare an engine's start-up log with its gpu_sizing plan
version_added: 0.2.0
description:
  - Parses what vLLM (or NIM, which runs vLLM) logged at start-up - weights, KV-cache memory and tokens, maximum
    concurrency, peak activation, non-torch and CUDA-graph memory, in the wordings of vLLM 0.4 to 0.34 - and compares
    every figure with the plan.
  - The status is C(no_log) when the log holds no C(GPU KV cache size) line, C(fail) when the engine holds fewer
    full-context requests than the plan's C(min_concurrency), C(warn) when its KV-cache tokens differ from the plan by
    more than O(tolerance) percent, else C(ok).
options:
  _input:
    description: The gpu_sizing result (C(gpuinfer_plan)).
    type: dict
    required: true
  log:
    description: The engine's start-up log text.
    type: str
    required: true
  tolerance:
    description: Largest KV-cache token error, in percent, that is not worth a warning.
    type: float
    default: 10
  source:
    description: Where the log came from, for the messages (a pod or a file name).
    type: str
    default: engine log
author:
  - gpuinfer.serving maintainers
"""

EXAMPLES = r"""
- name: Compare a recorded start-up log with the plan
  ansible.builtin.debug:
    msg: "{{ (gpuinfer_plan | gpuinfer.serving.engine_verify(lookup('ansible.builtin.file', 'vllm.log'))).report }}"
"""

RETURN = r"""
_value:
  description:
    - status, source, rows (figure, planned, actual, error_pct), parsed (the log's numbers), kv_tokens_error_pct,
      engine_concurrency, min_concurrency, messages, and report (the planned-vs-actual table as lines).
  type: dict
"""

from ansible.errors import AnsibleFilterError


def engine_verify(plan, log, tolerance=10, source="engine log"):
    # Ansible loads every filter file of this collection, in the task's worker process, whenever a task
    # uses any of its filters: the log parser (module_utils/deploy/engines/engine_log.py) is imported here so that only
    # the tasks calling this filter compile it.
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import engine_log

    if not isinstance(plan, dict):
        raise AnsibleFilterError("engine_verify expects the gpu_sizing result (a dict), got %s" % type(plan).__name__)
    try:
        result = engine_log.verify(plan, log or "", float(tolerance), source)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(str(exc))
    result["report"] = engine_log.render_verification(result)
    return result


class FilterModule(object):
    def filters(self):
        return {"engine_verify": engine_verify}
