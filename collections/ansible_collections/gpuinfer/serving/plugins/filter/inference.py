# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Filters that turn a gpu_sizing plan into inference workload objects.

The computation lives in module_utils (deploy/: probes, workload, service, engines/registry; plan/layout) so it is unit
tested without Ansible; these filters only translate errors into AnsibleFilterError.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import layout
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import probes, service, workload


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (probes.ProbeBudgetError, workload.WorkloadError, engines.EngineError, layout.LayoutError) as exc:
        raise AnsibleFilterError(str(exc))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("%s: malformed input (%s: %s)" % (function.__name__, type(exc).__name__, exc))


def hf_cache_env(mount_path, offline=False):
    return _call(engines.hf_cache_env, mount_path, offline)


def hf_download_args(model, revision, mount_path):
    return _call(engines.hf_download_args, model, revision, mount_path)


def engine_objects(plan, engine, settings):
    # build_engine_objects copies the settings it changes: plain data copies cheaply, tagged lazy containers do not.
    return _call(workload.build_engine_objects, plan, engine, inputs.plain(settings))


def engine_info(engine):
    return _call(engines.info, engine)


def engine_names(_ignored=None):
    return engines.names()


def replica_layout(plan):
    return _call(layout.of_plan, plan)


def service_resolve(settings, components=None, object_settings=None):
    # Plain data: the objects are made of these values, and the adapter rule is dumped as YAML.
    return _call(service.resolve, inputs.plain(settings), inputs.plain(components), inputs.plain(object_settings))


class FilterModule(object):
    def filters(self):
        return {
            "hf_cache_env": hf_cache_env,
            "hf_download_args": hf_download_args,
            "engine_objects": engine_objects,
            "engine_info": engine_info,
            "engine_names": engine_names,
            "replica_layout": replica_layout,
            "service_resolve": service_resolve,
        }
