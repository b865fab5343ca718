# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Start-up probe budget for inference pods.

A pod that downloads and loads hundreds of GB of weights must not be killed by
its probes while it does so. The startupProbe budget (failureThreshold x
periodSeconds) is sized from the model: time to download the weights into the
cache, plus time to read them from the cache into GPU memory, plus a margin for
engine initialisation (CUDA graphs, compilation, NCCL set-up).

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs

DEFAULT_DOWNLOAD_MB_S = 100.0
DEFAULT_DISK_READ_MB_S = 500.0
DEFAULT_MARGIN_SECONDS = 600
DEFAULT_PERIOD_SECONDS = 10
_MB = 1000 * 1000


class ProbeBudgetError(ValueError):
    """Raised for inputs the budget cannot be computed from."""


def _positive_number(name, value, allow_zero=False):
    if isinstance(value, bool):
        raise ProbeBudgetError("%s must be a number, got %r" % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProbeBudgetError("%s must be a number, got %r" % (name, value))
    if math.isnan(number) or number < 0 or (number == 0 and not allow_zero):
        raise ProbeBudgetError("%s must be %s, got %r" % (name, "0 or more" if allow_zero else "greater than 0", value))
    return number


def startup_probe_budget(weights_bytes, nodes=1, download_mb_s=DEFAULT_DOWNLOAD_MB_S,
                         disk_read_mb_s=DEFAULT_DISK_READ_MB_S, margin_seconds=DEFAULT_MARGIN_SECONDS,
                         period_seconds=DEFAULT_PERIOD_SECONDS, weights_cached=False):
    """Return the startup budget and the probe settings that cover it.

    download: the whole checkpoint is fetched once into the shared cache
    (weights_bytes / download bandwidth), skipped when weights_cached.
    load: every GPU of a node reads its shard through the same volume, so the
    node's share of the weights (weights_bytes / nodes) is what the disk must
    deliver; dividing by the GPU count would assume per-GPU disks.
    """
    weights = _positive_number("weights_bytes", weights_bytes)
    node_count = inputs.whole_number(nodes, name="nodes", error=ProbeBudgetError)
    download_rate = _positive_number("download_mb_s", download_mb_s) * _MB
    disk_rate = _positive_number("disk_read_mb_s", disk_read_mb_s) * _MB
    margin = _positive_number("margin_seconds", margin_seconds, allow_zero=True)
    period = inputs.whole_number(period_seconds, name="period_seconds", error=ProbeBudgetError)

    download_seconds = 0 if weights_cached else int(math.ceil(weights / download_rate))
    load_seconds = int(math.ceil(weights / node_count / disk_rate))
    required_seconds = download_seconds + load_seconds + int(math.ceil(margin))
    failure_threshold = max(1, int(math.ceil(required_seconds / period)))
    return {
        "download_seconds": download_seconds,
        "load_seconds": load_seconds,
        "margin_seconds": int(math.ceil(margin)),
        "required_seconds": required_seconds,
        "period_seconds": int(period),
        "failure_threshold": failure_threshold,
        "budget_seconds": failure_threshold * int(period),
    }
