# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""quantity_bytes: a Kubernetes quantity as a whole number, through the collection's one parser (module_utils/inputs.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

_NO_DEFAULT = object()


def quantity_bytes(value, default=_NO_DEFAULT):
    """'500Gi' -> 536870912000; a value that is not a quantity gives ``default``, or fails without one."""
    try:
        return inputs.parse_quantity(value)
    except inputs.InputError as exc:
        if default is _NO_DEFAULT:
            raise AnsibleFilterError("quantity_bytes: %s" % exc)
        return default


class FilterModule(object):
    def filters(self):
        return {"quantity_bytes": quantity_bytes}
