"""What an assignment asks of a node: which workers restart, which change in place, which stop."""

from __future__ import annotations

import pytest

from agents.reconcile import AssignmentError, NodeLimits, clash, diff, parse_assignment

LIMITS = NodeLimits(name="node-a", tier="H100-SXM-80GB", gpu_count=8, reserved_ports=frozenset({9100}))


def worker(name="w", gpu=0, port=8000, **fields):
    return {"name": name, "role": "colocated", "engine": "sim", "model": "llama-3.1-8b", "tp": 1, "gpu_ids": [gpu],
            "port": port, **fields}


def assignment(*workers, generation=1):
    return parse_assignment({"node": "node-a", "generation": generation, "workers": list(workers)}, LIMITS)


def test_missing_fields_take_the_nodes_defaults():
    parsed = assignment(worker()).workers[0]
    assert (parsed.tier, parsed.dtype, parsed.engine, parsed.service, parsed.plan) == (
        "H100-SXM-80GB", "bf16", "sim", None, None)


def test_every_bad_field_is_named_at_once():
    with pytest.raises(AssignmentError) as caught:
        assignment(worker(tp=2), worker("x", gpu=1, port=9100), worker("y", gpu=2, port=8002),
                   worker("y", gpu=2, port=8002))
    assert set(caught.value.fields) == {"workers[0].gpu_ids", "workers[1].port", "workers[3].name",
                                        "workers[3].port", "workers[3].gpu_ids"}
    assert str(caught.value).startswith("workers[0].gpu_ids: Must hold one GPU per TP rank (2). (and 4 more)")


def test_a_changed_identity_restarts_and_a_changed_service_or_routing_does_not():
    running = {w.name: w for w in assignment(worker("a", 0, 8000), worker("b", 1, 8001), worker("c", 2, 8002),
                                             worker("r", 3, 8003, role="router", routing={"v": 1})).workers}
    desired = assignment(
        worker("a", 0, 8000, engine_args={"time_scale": 0.5}),  # a new process
        worker("b", 1, 8001, service="chat"),  # the same process
        worker("r", 3, 8003, role="router", routing={"v": 2}),
        worker("d", 4, 8004),
        generation=2,
    ).workers
    changes = diff(running, desired)
    assert [w.name for w in changes.start] == ["a", "d"]
    assert changes.stop == ("a", "c")
    assert [w.name for w in changes.update] == ["b", "r"]


def test_the_same_assignment_changes_nothing():
    workers = assignment(worker("a"), worker("b", 1, 8001)).workers
    assert diff({w.name: w for w in workers}, workers).empty


def test_workers_clash_on_a_name_a_port_or_a_gpu():
    a, b, c, d = assignment(worker("a", 0, 8000), worker("b", 1, 8001), worker("c", 2, 8002),
                            worker("d", 3, 8003)).workers
    moved = assignment(worker("x", 1, 8000)).workers[0]
    assert [clash(old, moved) for old in (a, b, c, d)] == [True, True, False, False]
