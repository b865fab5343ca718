# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: plan_report
short_description: Readable report of a gpu_sizing plan
version_added: 0.1.0
description:
  - Turns the result of M(gpuinfer.serving.gpu_sizing) into lines of text, a summary table and a
    per-GPU memory bar (weights, activations, CUDA context, CUDA graphs, KV cache, free).
  - The flags section is titled with the engine the plan is for (C(plan.engine); absent is vLLM) and holds that
    engine's own flags from the plan - vLLM's RV(gpuinfer.serving.gpu_sizing#module:vllm_args), SGLang's server
    arguments, or NVIDIA NIM's C(NIM_PASSTHROUGH_ARGS) and C(NIM_*) variables.
options:
  _input:
    description: The registered result of M(gpuinfer.serving.gpu_sizing).
    type: dict
    required: true
  verification:
    description:
      - The result of the P(gpuinfer.serving.engine_verify#filter) filter; adds a "Verified" section with the
        planned-vs-actual table.
    type: dict
author:
  - gpuinfer.serving maintainers
"""

EXAMPLES = r"""
- name: Print the plan
  ansible.builtin.debug:
    msg: "{{ sizing | gpuinfer.serving.plan_report }}"
"""

RETURN = r"""
_value:
  description: Report lines.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.plan_report import render_report


def plan_report(result, verification=None):
    if not isinstance(result, dict):
        raise AnsibleFilterError("plan_report expects the gpu_sizing result (a dict), got %s" % type(result).__name__)
    lines = render_report(result)
    if verification:
        # Only a verified plan needs the log parser's module (see engine_verify.py for why it is imported here).
        from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines.engine_log import render_verification

        lines.extend([""] + render_verification(verification))
    return lines


class FilterModule(object):
    def filters(self):
        return {"plan_report": plan_report}
