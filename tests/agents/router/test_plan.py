"""Routing plans: read from the plan's JSON or a routing document, swapped whole, reloaded when the file changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agents.router.plan import PlanError, PlanHolder, load_file, parse_routing, watch_file

ROUTING = {
    "service": "chat", "service_id": 7, "model": "llama-3.1-8b", "version": 3, "local_prefill_threshold": 512,
    "admission_model": None,
    "pools": {
        "prefill": [{"worker": "n1/p0", "node": "n1", "port": 8101, "tier": "H100-SXM-80GB", "tp": 2, "weight": 0.7}],
        "decode": [{"worker": "n2/d0", "node": "n2", "host": "10.0.0.2", "port": 8102, "weight": 1.0},
                   {"worker": "n3/d0", "url": "http://10.0.0.3:9000/v1/", "weight": 1.0}],
        "colocated": [],
    },
}  # fmt: skip


def test_it_reads_pools_with_urls_or_hosts_and_ports() -> None:
    plan = parse_routing(ROUTING)
    assert (plan.service, plan.service_id, plan.model, plan.version) == ("chat", 7, "llama-3.1-8b", 3)
    assert plan.local_prefill_threshold == 512
    assert [e.url for e in plan.prefill + plan.decode] == [
        "http://127.0.0.1:8101", "http://10.0.0.2:8102", "http://10.0.0.3:9000",
    ]  # fmt: skip
    assert plan.prefill[0].weight == 0.7
    assert plan.serving == plan.decode


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("model"), "model must be"),
        (lambda r: r.update(pools=[]), "pools must be an object"),
        (lambda r: r["pools"]["decode"][0].pop("port"), r"pools.decode\[0\].port"),
        (lambda r: r["pools"]["decode"][1].update(url="ftp://x"), r"pools.decode\[1\].url"),
        (lambda r: r["pools"]["prefill"][0].update(weight=-1), r"pools.prefill\[0\].weight"),
        (lambda r: r["pools"]["prefill"][0].pop("worker"), r"pools.prefill\[0\].worker"),
        (lambda r: r.update(local_prefill_threshold="big"), "local_prefill_threshold"),
    ],
)
def test_a_malformed_plan_is_refused_naming_the_field(change, message: str) -> None:
    routing = json.loads(json.dumps(ROUTING))
    change(routing)
    with pytest.raises(PlanError, match=message):
        parse_routing(routing)


def test_a_swap_replaces_the_whole_plan_and_requests_keep_theirs() -> None:
    holder = PlanHolder()
    holder.set_routing(ROUTING, source="test")
    in_flight = holder.current
    assert not holder.set_routing(json.loads(json.dumps(ROUTING)), source="test")  # the same: no swap
    holder.set_routing({**ROUTING, "version": 4, "pools": {"colocated": [{"worker": "n9/c", "port": 1}]}}, source="test")
    assert holder.current is not None
    assert holder.current.version == 4
    assert in_flight is not None
    assert in_flight.version == 3
    assert len(in_flight.decode) == 2
    assert holder.swaps == 2


def test_a_routing_document_brings_keys_and_the_file_can_hold_one(tmp_path: Path) -> None:
    holder = PlanHolder()
    path = tmp_path / "routing.json"
    path.write_text(json.dumps({"routing": ROUTING, "api_key_digests": ["AB" * 32], "admission_model": None}))
    assert load_file(holder, path)
    assert holder.current is not None
    assert holder.current.api_key_digests == frozenset({"ab" * 32})


def test_a_bad_file_leaves_the_plan_as_it_was(tmp_path: Path) -> None:
    holder = PlanHolder()
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(ROUTING))
    assert load_file(holder, path)
    path.write_text("{not json")
    assert not load_file(holder, path)
    path.write_text(json.dumps({**ROUTING, "pools": None}))
    assert not load_file(holder, path)
    assert holder.current is not None
    assert holder.current.version == 3


def test_the_watcher_follows_a_file_rewritten_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    holder = PlanHolder()

    async def scenario() -> list[object]:
        versions: list[object] = []
        task = asyncio.create_task(watch_file(holder, path, interval_s=0.01))
        await asyncio.sleep(0.05)
        versions.append(holder.current)  # no file yet: no plan
        for version in (1, 2):
            temporary = tmp_path / ".routing.tmp"
            temporary.write_text(json.dumps({**ROUTING, "version": version}))
            temporary.replace(path)
            await asyncio.sleep(0.05)
            versions.append(holder.current.version if holder.current else None)
        task.cancel()
        return versions

    assert asyncio.run(scenario()) == [None, 1, 2]
