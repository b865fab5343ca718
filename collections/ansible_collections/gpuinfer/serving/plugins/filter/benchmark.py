# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Filters of the benchmark role: the load-generator Job, and what it measured next to the plan.

The computation lives in module_utils (deploy/benchmark.py builds the Job, deploy/engines/bench_log.py parses and
compares), unit tested without Ansible; these filters only translate errors into AnsibleFilterError. Documentation:
the .yml files of the same names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError


def _plain(value):
    # Tagged lazy containers (Ansible 2.19 templating) copy slowly and dump oddly: plain data in.
    from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

    return inputs.plain(value)


def benchmark_job(plan, settings):
    # Imported here: Ansible loads every filter file of the collection whenever a task uses any of its filters.
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy import benchmark

    if not isinstance(plan, dict) or not isinstance(settings, dict):
        raise AnsibleFilterError("benchmark_job expects the gpu_sizing result and the settings (two dicts)")
    try:
        return benchmark.build_job(_plain(plan), _plain(settings))
    except (benchmark.BenchmarkError, ValueError) as exc:
        raise AnsibleFilterError(str(exc))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("benchmark_job: malformed input (%s: %s)" % (type(exc).__name__, exc))


def benchmark_compare(plan, log, source="benchmark output"):
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import bench_log

    if not isinstance(plan, dict):
        raise AnsibleFilterError("benchmark_compare expects the gpu_sizing result (a dict), got %s" % type(plan).__name__)
    try:
        results = bench_log.parse_any(log or "")
        comparison = bench_log.compare(_plain(plan), results, source)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(str(exc))
    comparison["results"] = results
    comparison["report"] = bench_log.render(comparison)
    return comparison


def benchmark_report_section(report_text, lines):
    from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import bench_log

    return bench_log.append_section(report_text or "", [str(line) for line in lines or []])


class FilterModule(object):
    def filters(self):
        return {
            "benchmark_job": benchmark_job,
            "benchmark_compare": benchmark_compare,
            "benchmark_report_section": benchmark_report_section,
        }
