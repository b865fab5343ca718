#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: check_inputs
short_description: Type- and range-check every user-facing variable before anything is created
version_added: "0.1.0"
description:
  - Checks, on the controller, the variables the collection's playbooks and roles read, as the play sees them
    (inventory, play and extra variables, templated). A variable that is not defined is not checked.
  - The table of shared variables (names and namespaces are DNS labels, ports are 1-65535, StorageClass and Secret
    names are DNS subdomains, sizes are Kubernetes quantities, lists are lists, mount paths are absolute, URLs are
    http(s)) is in C(plugins/module_utils/inputs.py) (C(SHARED_INPUTS)). The engine roles' own variables (C(vllm_*),
    C(nim_*), C(sglang_*)) are checked too, each from its engine description's table (C(inputs) of the C(Engine) in
    C(plugins/module_utils/deploy/engines/engine_vllm.py), C(engine_nim.py), C(engine_sglang.py)), for every engine whatever
    O(engine) says.
  - Also reads every role argument spec of the collection and refuses, for each option that is defined, a value that
    is not a real list or dict where the spec declares C(type=list) or C(type=dict) (Ansible's own validation would
    turn C(-e vllm_extra_args=notalist) into C(['notalist'])), and a value outside the option's C(choices).
  - Refuses a variable whose name starts with one of the collection's prefixes (C(plan_), C(gpuinfer_), C(vllm_),
    C(nim_), C(sglang_), C(model_cache_), C(inference_service_), C(inference_common_), C(gpu_operator_), C(verify_),
    C(benchmark_), C(manifests_)) that the collection does not declare (an option of a role argument spec, a key of a
    role's C(vars/main.yml), or a fact, registered result or role parameter its own task files set), naming the closest
    declared variable. The variable C(gpuinfer_unknown_variables) (C(fail), C(warn) or C(ignore)) relaxes this for
    inventories that keep variables of their own under those prefixes.
  - Fails with one message per bad variable, each naming the variable, its value (masked for secrets) and what is
    allowed. Variables whose value cannot be templated yet (they refer to facts set later) are listed in
    RV(unresolved) and not checked.
  - This is an action plugin; it runs on the controller and never on a target host.
author:
  - gpuinfer.serving contributors (!UNKNOWN)
options:
  engine:
    description:
      - The engine the play deploys, one of the engines registered in C(plugins/module_utils/deploy/engines/registry.py) - C(vllm),
        C(nim) or C(sglang). Only the name is validated; another value fails naming the registered engines.
      - It does not choose which variables are checked - every engine's own variables are checked whatever it says.
      - Unset or empty, no engine name is checked.
    type: str
  extra:
    description:
      - More variables to check, as variable name to validator spec (a dict with the key C(check) and the check's
        parameters, see EXAMPLES).
      - Checks - C(str), C(dns_label), C(dns_subdomain), C(port), C(int_range) (C(min), C(max)), C(number_range),
        C(quantity), C(list), C(list_of_str), C(list_of_dicts), C(dict), C(dict_of_str), C(bool), C(absolute_path),
        C(http_url), C(choices) (C(choices)), C(duration), C(regex) (C(pattern), C(what)). C(empty_ok=true) accepts
        an empty string as unset; C(secret=true) never shows the value.
    type: dict
    default: {}
attributes:
  check_mode:
    description: Only reads variables; behaves the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  platform:
    description: Runs on the controller.
    support: full
    platforms: all
notes:
  - Run it as the first task of a play, so a bad variable fails before any object exists.
seealso:
  - module: ansible.builtin.validate_argument_spec
"""

EXAMPLES = r"""
- name: Check every input before anything is planned or created
  gpuinfer.serving.check_inputs:
    engine: "{{ gpuinfer_engine | default('vllm') }}"

- name: Check the variables of a play of your own too
  gpuinfer.serving.check_inputs:
    engine: vllm
    extra:
      my_proxy_port: {check: port}
      my_scratch_size: {check: quantity, empty_ok: true}
      my_pool: {check: dns_label}
"""

RETURN = r"""
checked:
  description: Number of defined variables that were checked.
  returned: always
  type: int
  sample: 12
problems:
  description: One message per bad variable, each starting with C(name=value).
  returned: failure
  type: list
  elements: str
  sample:
    - "inference_service_port=70000: must be a port number 1-65535"
unknown:
  description: Variables with a collection prefix that the collection does not declare (misspellings, most likely).
  returned: when any
  type: list
  elements: str
  sample: [plan_modle]
unresolved:
  description: Variables that could not be templated yet (name to reason); they were not checked.
  returned: when any
  type: dict
  sample: {vllm_served_model_name: "undefined: 'gpuinfer_plan' is undefined"}
msg:
  description: C(Bad input, nothing was created) followed by the problems, or how many variables were checked.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(engine=dict(type="str"), extra=dict(type="dict", default={})),
                           supports_check_mode=True)
    module.fail_json(msg="gpuinfer.serving.check_inputs is an action plugin: it runs on the controller and must not be "
                         "executed as a module")


if __name__ == "__main__":
    main()
