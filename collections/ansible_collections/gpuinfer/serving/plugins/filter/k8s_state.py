# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Filters over objects the API server returned: find one in an apply result, and say whether it is Ready.

Readiness is module_utils/kube/k8s_wait.py's, the same predicate the k8s_wait module waits on, so a
re-run that finds its workload Ready already skips the wait for the same reason the wait would end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError


def applied_object(result, kind, name=None):
    """The object of ``kind`` (and ``name``) in a kubernetes.core.k8s result, or {}."""
    if not isinstance(result, dict):
        return {}
    body = result.get("result")
    entries = body.get("results") if isinstance(body, dict) and "results" in body else [result]
    for entry in entries or []:
        obj = entry.get("result") if isinstance(entry, dict) else None
        if isinstance(obj, dict) and obj.get("kind") == kind and (name is None or (obj.get("metadata") or {}).get("name") == name):
            return obj
    return {}


def k8s_ready(obj, condition="ready"):
    """True when ``obj`` (as the API server returned it) meets ``condition`` (ready, complete, exists)."""
    # Ansible loads every filter file of this collection, in the task's worker process, whenever a task
    # uses any of its filters: the waiting code (module_utils/kube/k8s_wait.py, with ssl) is imported here so that only
    # the tasks calling this filter compile it.
    from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_wait

    if not obj:
        return False
    if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
        raise AnsibleFilterError("k8s_ready needs a Kubernetes object with apiVersion and kind, got %r" % (obj,))
    metadata = obj.get("metadata") or {}
    target = k8s_wait.Target(obj["apiVersion"], obj["kind"], metadata.get("name"), metadata.get("namespace"))
    try:
        return k8s_wait.evaluate(obj, condition, target).state == k8s_wait.DONE
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"applied_object": applied_object, "k8s_ready": k8s_ready}
