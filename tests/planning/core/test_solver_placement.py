"""Placement never fails where the solver's per-tier constraints hold, keeps the workers that can stay,
and gives every worker distinct free GPUs, a unique name and a free port on its node."""

from __future__ import annotations

import numpy as np
import pytest

from controlplane.planning.core.inputs import NodeInventory, PlacedWorker
from controlplane.planning.core.placement import PlacementError, WorkerSpec, place, tier_slots
from profiler import catalog

SPEC = WorkerSpec(service="chat", model="llama-3.1-8b", dtype="bf16", engine_args={"decode": {"max_num_seqs": 256}})
TIERS = ["H100-SXM-80GB", "L40S-48GB"]
TPS = (1, 2, 4, 8)


def random_nodes(rng: np.random.Generator) -> list[NodeInventory]:
    nodes = []
    for tier in TIERS:
        for i in range(int(rng.integers(1, 7))):
            size = int(rng.choice([1, 2, 4, 8]))
            free = tuple(sorted(int(g) for g in rng.choice(size, int(rng.integers(0, size + 1)), replace=False)))
            used = tuple(8100 + int(p) for p in rng.choice(6, int(rng.integers(0, 3)), replace=False))
            nodes.append(NodeInventory(f"{tier[:4]}-{i}", catalog.tier(tier), size, free, used_ports=used))
    return nodes


def random_counts(rng: np.random.Generator, nodes: list[NodeInventory]) -> list[tuple[str, int, str, int]]:
    """Counts that satisfy the solver's per-tier constraints, drawn at random up to the limit."""
    slots = tier_slots(nodes, TPS)
    counts: list[tuple[str, int, str, int]] = []
    for tier in TIERS:
        if tier not in slots:
            continue
        used = dict.fromkeys(TPS, 0)
        for tp in sorted(TPS, reverse=True):
            for role in ("prefill", "decode"):
                room = min((slots[tier][t] - used[t]) // tp for t in TPS if t <= tp)
                count = int(rng.integers(0, room + 1)) if room > 0 else 0
                for t in TPS:
                    if t <= tp:
                        used[t] += count * tp
                if count:
                    counts.append((tier, tp, role, count))
    return counts


def check(placement, nodes):
    by_name = {node.name: node for node in nodes}
    for entry in placement.as_list():
        node = by_name[entry["node"]]
        gpus = [g for w in entry["workers"] for g in w["gpu_ids"]]
        assert len(gpus) == len(set(gpus)), "a GPU is given twice"
        assert set(gpus) <= set(node.free_gpu_ids), "a GPU that is not free"
        names = [w["name"] for w in entry["workers"]]
        ports = [w["port"] for w in entry["workers"]]
        assert len(names) == len(set(names))
        assert len(ports) == len(set(ports))
        assert not set(ports) & set(node.used_ports)
        for worker in entry["workers"]:
            assert worker["tier"] == node.tier.name
            assert len(worker["gpu_ids"]) == (0 if worker["role"] == "router" else worker["tp"])


@pytest.mark.parametrize("seed", range(200))
def test_counts_within_the_tier_constraints_always_place(seed):
    rng = np.random.default_rng(seed)
    nodes = random_nodes(rng)
    counts = random_counts(rng, nodes)
    placement = place(counts, nodes, SPEC)
    check(placement, nodes)
    placed = {}
    for worker in placement.workers:
        if worker.role != "router":
            key = (worker.tier, worker.tp, worker.role)
            placed[key] = placed.get(key, 0) + 1
    assert placed == {(t, tp, r): n for t, tp, r, n in counts}
    assert len(placement.of_role("router")) == (1 if counts else 0)


@pytest.mark.parametrize("seed", range(60))
def test_the_current_workers_stay_where_the_plan_keeps_them(seed):
    rng = np.random.default_rng(seed)
    nodes = random_nodes(rng)
    counts = random_counts(rng, nodes)
    first = place(counts, nodes, SPEC)
    previous = tuple(
        PlacedWorker(w.node, w.name, w.role, w.tier, w.tp, w.gpu_ids, w.port) for w in first.workers
    )
    again = place(counts, nodes, SPEC, previous=previous)
    assert sorted(again.as_list(), key=str) == sorted(first.as_list(), key=str)


def test_a_kept_worker_keeps_its_name_gpus_and_port():
    node = NodeInventory("n1", catalog.tier("H100-SXM-80GB"), 8, tuple(range(8)))
    previous = (PlacedWorker("n1", "chat-decode-7", "decode", "H100-SXM-80GB", 2, (4, 5), 8123),)
    placement = place([("H100-SXM-80GB", 2, "decode", 2)], [node], SPEC, previous=previous)
    decode = sorted(placement.of_role("decode"), key=lambda w: w.name)
    assert [(w.name, w.gpu_ids, w.port) for w in decode] == [
        ("chat-decode-0", (0, 1), 8100), ("chat-decode-7", (4, 5), 8123),
    ]
    assert decode[0].engine_args == {"max_num_seqs": 256}


def test_counts_beyond_the_free_gpus_raise():
    node = NodeInventory("n1", catalog.tier("H100-SXM-80GB"), 8, (0, 1, 2))
    with pytest.raises(PlacementError, match="TP4"):
        place([("H100-SXM-80GB", 4, "prefill", 1)], [node], SPEC)


def test_the_router_avoids_ports_other_services_hold():
    node = NodeInventory("n1", catalog.tier("H100-SXM-80GB"), 8, (0,), used_ports=(8000, 8100))
    placement = place([("H100-SXM-80GB", 1, "colocated", 1)], [node], SPEC)
    assert {w.role: w.port for w in placement.workers} == {"colocated": 8101, "router": 8001}
