# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Filters for day-2 rollouts: the revision stamp, the revision history, the rollback plan, the workloads a layout
change leaves behind and those an earlier version patched (handed over to server-side apply).

The logic lives in module_utils/deploy/rollout.py; these filters translate its errors into AnsibleFilterError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import rollout


def _call(function, *args):
    try:
        return function(*[inputs.plain(arg) for arg in args])
    except rollout.RolloutError as exc:
        raise AnsibleFilterError(str(exc))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise AnsibleFilterError("%s: malformed input (%s: %s)" % (function.__name__, type(exc).__name__, exc))


def rollout_stamp(objects):
    stamped, revision = _call(rollout.stamp, objects)
    return {"objects": stamped, "revision": revision}


def rollout_history(objects, configmap_data, instance, namespace, labels, when, keep=5):
    return _call(rollout.record, configmap_data, objects, instance, namespace, labels, when, int(keep))


def rollback_plan(configmap_data, live_workloads, revision=None):
    return _call(rollout.rollback_plan, configmap_data, live_workloads, revision)


def stale_workloads(live_workloads, objects):
    return _call(rollout.stale_objects, live_workloads, objects)


def ownership_handover(live_workloads, objects):
    return _call(rollout.ownership_handover, live_workloads, objects)


class FilterModule(object):
    def filters(self):
        return {
            "rollout_stamp": rollout_stamp,
            "rollout_history": rollout_history,
            "rollback_plan": rollback_plan,
            "stale_workloads": stale_workloads,
            "ownership_handover": ownership_handover,
        }
