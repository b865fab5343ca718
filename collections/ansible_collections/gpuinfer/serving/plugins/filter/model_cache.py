# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the model_cache role: its decisions in one call each (module_utils/deploy/model_cache.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import model_cache


def _call(function, *args):
    try:
        return function(*args)
    except ValueError as exc:  # shm sizing and quantity parsing say what is wrong with a ValueError
        raise AnsibleFilterError("%s: %s" % (function.__name__, exc))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("%s: malformed input (%s: %s)" % (function.__name__, type(exc).__name__, exc))


def model_cache_resolve(settings, plan):
    return _call(model_cache.resolve, settings, plan)


def model_cache_existing_problems(resolved, known_objects, secret_lookup, claim_lookup):
    known = known_objects or {}
    found = _call(model_cache.found_from_lookups, known.get("secrets"), (secret_lookup or {}).get("results"))
    claim = _call(model_cache.claim_from, known.get("claims"), claim_lookup, resolved.get("existing_claim"))
    own = (known.get("claims") or {}).get(resolved.get("claim")) if not resolved.get("existing_claim") else None
    return _call(model_cache.existing_problems, resolved, found, claim, own)


class FilterModule(object):
    def filters(self):
        return {
            "model_cache_resolve": model_cache_resolve,
            "model_cache_existing_problems": model_cache_existing_problems,
        }
