from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.probes import ProbeBudgetError, startup_probe_budget

GB = 1000 * 1000 * 1000


def test_budget_adds_download_load_and_margin():
    budget = startup_probe_budget(141 * GB, nodes=1, download_mb_s=100, disk_read_mb_s=500, margin_seconds=600,
                                  period_seconds=10)
    assert budget["download_seconds"] == 1410
    assert budget["load_seconds"] == 282
    assert budget["required_seconds"] == 1410 + 282 + 600
    assert budget["failure_threshold"] == 230
    assert budget["budget_seconds"] == 2300 >= budget["required_seconds"]


def test_load_time_is_the_node_share_of_the_weights():
    one = startup_probe_budget(800 * GB, nodes=1, disk_read_mb_s=1000)
    two = startup_probe_budget(800 * GB, nodes=2, disk_read_mb_s=1000)
    assert one["load_seconds"] == 800
    assert two["load_seconds"] == 400
    assert one["download_seconds"] == two["download_seconds"]


def test_cached_weights_skip_the_download():
    budget = startup_probe_budget(10 * GB, weights_cached=True, margin_seconds=0, disk_read_mb_s=1000, period_seconds=7)
    assert budget["download_seconds"] == 0
    assert budget["required_seconds"] == 10
    assert budget["failure_threshold"] == 2 and budget["budget_seconds"] == 14


@pytest.mark.parametrize("weights", [1, 12345678901, 999 * GB])
@pytest.mark.parametrize("period", [1, 10, 60])
def test_budget_always_covers_the_requirement(weights, period):
    budget = startup_probe_budget(weights, period_seconds=period)
    assert budget["budget_seconds"] >= budget["required_seconds"]
    assert budget["budget_seconds"] - budget["required_seconds"] < period


@pytest.mark.parametrize("kwargs,field", [
    (dict(weights_bytes=0), "weights_bytes"),
    (dict(weights_bytes="lots"), "weights_bytes"),
    (dict(weights_bytes=GB, nodes=1.5), "nodes"),
    (dict(weights_bytes=GB, download_mb_s=0), "download_mb_s"),
    (dict(weights_bytes=GB, disk_read_mb_s=-1), "disk_read_mb_s"),
    (dict(weights_bytes=GB, margin_seconds=-5), "margin_seconds"),
    (dict(weights_bytes=GB, period_seconds=2.5), "period_seconds"),
    (dict(weights_bytes=True), "weights_bytes"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ProbeBudgetError, match=field):
        startup_probe_budget(**kwargs)
