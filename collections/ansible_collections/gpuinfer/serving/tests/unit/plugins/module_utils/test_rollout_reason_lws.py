# -*- coding: utf-8 -*-
"""The rollout sentence of the deploy report says what the workload really gets: a LeaderWorkerSet has no Recreate
strategy, so where a Deployment would be recreated it rolls one group at a time (maxSurge 0 / maxUnavailable 1)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import layout as replica
from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.workload import build_workload, rollout_plan, rollout_reason

CONTAINER = {"name": "engine", "image": "example/engine:1"}


def spec(nodes, replicas, strategy="auto", spare=0):
    result = {"name": "llm-vllm", "namespace": "ns", "instance": "llm", "engine": "vllm", "replicas": replicas,
              "leader_container": CONTAINER, "worker_container": CONTAINER, "shm_size": "16Gi",
              "cache": {"mount_path": "/models"}, "rollout": {"strategy": strategy, "spare_gpus": spare}}
    result["layout"] = replica.replica_layout(8 * nodes, 1, nodes) if nodes == 1 else replica.replica_layout(8, nodes, nodes)
    return result


def strategy_text(workload):
    """What the workload object really gets, in the report's words."""
    if workload["kind"] == "Deployment":
        strategy = workload["spec"]["strategy"]
        update = strategy.get("rollingUpdate")
    else:
        strategy = workload["spec"]["rolloutStrategy"]
        update = strategy["rollingUpdateConfiguration"]
    if strategy["type"] == "Recreate":
        return "Recreate"
    return "maxSurge %d" % update["maxSurge"]


@pytest.mark.parametrize("strategy,spare", [("auto", 0), ("Recreate", 0), ("Recreate", 64)])
def test_one_lws_replica_is_never_reported_as_recreate(strategy, spare):
    description = spec(nodes=2, replicas=1, strategy=strategy, spare=spare)
    (lws, _pdb) = build_workload(description)
    assert lws["kind"] == "LeaderWorkerSet"
    assert lws["spec"]["rolloutStrategy"] == {"type": "RollingUpdate",
                                              "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0}}
    reason = rollout_reason(description)
    assert reason.endswith("a LeaderWorkerSet has no Recreate: RollingUpdate maxSurge 0 / maxUnavailable 1")
    assert not reason.endswith(": Recreate")
    assert reason.startswith("Recreate requested" if strategy == "Recreate" else "0 spare GPUs < 16 per replica and one replica")


@pytest.mark.parametrize("strategy,spare", [("auto", 0), ("Recreate", 0)])
def test_one_deployment_replica_is_still_recreated(strategy, spare):
    description = spec(nodes=1, replicas=1, strategy=strategy, spare=spare)
    (deployment, _pdb) = build_workload(description)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    reason = rollout_reason(description)
    assert reason in ("0 spare GPUs < 8 per replica and one replica: Recreate", "Recreate requested")
    assert "LeaderWorkerSet" not in reason


@pytest.mark.parametrize("nodes", [1, 2])
@pytest.mark.parametrize("replicas,strategy,spare", [
    (1, "auto", 0), (3, "auto", 0), (1, "auto", 16), (1, "Recreate", 16), (1, "RollingUpdate", 0), (2, "RollingUpdate", 16),
])
def test_the_reason_names_what_the_object_gets(nodes, replicas, strategy, spare):
    description = spec(nodes=nodes, replicas=replicas, strategy=strategy, spare=spare)
    workload = build_workload(description)[0]
    reason = rollout_reason(description)
    got = strategy_text(workload)
    says_recreate = reason.endswith(": Recreate") or reason == "Recreate requested"
    assert says_recreate == (got == "Recreate")
    says_surge = "maxSurge 1" in reason or "cover a surge replica" in reason
    assert says_surge == (got == "maxSurge 1")


def test_rollout_plan_gives_both_sentences():
    plan = rollout_plan("auto", 1, 16, 0)
    assert plan["reason"] == "0 spare GPUs < 16 per replica and one replica: Recreate"
    assert plan["lws_reason"] == ("0 spare GPUs < 16 per replica and one replica; a LeaderWorkerSet has no Recreate: "
                                  "RollingUpdate maxSurge 0 / maxUnavailable 1")
    surging = rollout_plan("auto", 1, 16, 16)
    assert surging["lws_reason"] == surging["reason"] and surging["lws"]["maxSurge"] == 1
