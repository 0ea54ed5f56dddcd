"""Rollout planning: which workers stay, start and stop on each node, and the order of the steps."""

from __future__ import annotations

import pytest

from controlplane.planning.core.rollout import (
    RolloutPlanError,
    canary_routing,
    compose,
    node_changes,
    plan_steps,
)


def w(name, gpus, port, role="decode", **extra):
    return {"name": name, "role": role, "engine": "sim", "model": "llama-3.1-8b", "tp": len(gpus),
            "gpu_ids": list(gpus), "port": port, "tier": "H100-SXM-80GB", "dtype": "bf16", "engine_args": {},
            "service": "chat", **extra}


def kinds(steps):
    return [step.kind for step in steps]


def test_a_worker_that_runs_the_same_stays_and_only_new_ones_start():
    old = {"n1": [w("d0", [0], 8100), w("d1", [1], 8101)]}
    new = {"n1": [w("d0", [0], 8100), w("p0", [2], 8102, role="prefill")]}
    [change] = node_changes(old, new)
    assert [x["name"] for x in change.keep] == ["d0"]
    assert [x["name"] for x in change.add] == ["p0"]
    assert [x["name"] for x in change.remove] == ["d1"]
    assert change.clashing == ()


def test_a_router_whose_routing_alone_changes_is_kept_in_place():
    old = {"n1": [w("router", [], 8000, role="router", routing={"version": 1})]}
    new = {"n1": [w("router", [], 8000, role="router", routing={"version": 2})]}
    [change] = node_changes(old, new)
    assert not change.changes


def test_a_new_worker_on_an_old_workers_gpu_makes_that_node_break_before_make():
    old = {"n1": [w("d0", [0], 8100)]}
    new = {"n1": [w("p0", [0], 8101, role="prefill")]}
    [change] = node_changes(old, new)
    assert change.clashing == ("d0",)
    steps = plan_steps([change], strategy="all-at-once")
    assert kinds(steps) == ["drain", "start", "wait_ready", "route", "activate"]
    assert steps[0].params == {"workers": {"n1": ["d0"]}}


def test_make_before_break_starts_new_workers_before_draining_old_ones():
    changes = node_changes({"n1": [w("d0", [0], 8100)]}, {"n2": [w("d9", [0], 8100)]})
    steps = plan_steps(changes, strategy="all-at-once")
    assert kinds(steps) == ["start", "wait_ready", "route", "drain", "stop", "activate"]
    assert steps[0].params == {"nodes": ["n2"]}
    assert steps[3].params == {"workers": {"n1": ["d0"]}}


def test_rolling_goes_in_batches_of_nodes():
    new = {f"n{i}": [w("d0", [0], 8100)] for i in range(5)}
    steps = plan_steps(node_changes({}, new), strategy="rolling", batch_nodes=2)
    starts = [step.params["nodes"] for step in steps if step.kind == "start"]
    assert starts == [["n0", "n1"], ["n2", "n3"], ["n4"]]
    assert kinds(steps)[-2:] == ["route", "activate"]


def test_canary_routes_a_share_and_observes_before_promoting():
    steps = plan_steps(node_changes({}, {"n1": [w("d0", [0], 8100)]}), strategy="canary", canary_share=0.2,
                       canary_duration_s=60)
    assert kinds(steps) == ["start", "wait_ready", "route", "observe", "route", "activate"]
    assert steps[2].params == {"share": 0.2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"strategy": "big-bang"}, "unknown strategy"), ({"strategy": "rolling", "batch_nodes": 0}, "batch_nodes"),
     ({"strategy": "canary", "canary_share": 1.5}, "canary_share")],
)
def test_bad_rollout_options_are_named(kwargs, message):
    with pytest.raises(RolloutPlanError, match=message):
        plan_steps([], **kwargs)


def test_compose_keeps_other_services_workers():
    current = [w("other", [5], 9000, service="code"), w("d0", [0], 8100)]
    desired = compose(current, "chat", [w("d1", [1], 8101)])
    assert [x["name"] for x in desired] == ["other", "d1"]


def test_canary_routing_splits_each_pools_weight():
    old = {"pools": {"decode": [{"worker": "n1/d0", "weight": 1.0}, {"worker": "n1/d1", "weight": 3.0}]}}
    new = {"version": 2, "pools": {"decode": [{"worker": "n2/d0", "weight": 1.0}]}}
    merged = canary_routing(old, new, 0.1)
    weights = {entry["worker"]: round(entry["weight"], 3) for entry in merged["pools"]["decode"]}
    assert weights == {"n1/d0": 0.225, "n1/d1": 0.675, "n2/d0": 0.1}
    assert canary_routing(old, new, 1.0) == new
