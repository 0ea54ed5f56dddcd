"""The record sender: batches while the control plane answers, the spool while it does not, each record stored once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from agents.router.metrics import RouterMetrics, StateSnapshot
from agents.router.records import Flight, RecordSender
from agents.router.spool import Spool


class FakeControlPlane:
    """The records endpoint: stores by id, or is down (refuses connections), or answers a given status."""

    def __init__(self) -> None:
        self.stored: Counter[str] = Counter()
        self.posts = 0
        self.down = False
        self.status = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        self.posts += 1
        assert request.headers["Authorization"] == "Bearer router-token"
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"code": "x", "message": "no"}})
        for record in json.loads(request.content)["records"]:
            self.stored[record["id"]] += 1
        return httpx.Response(200, json={"received": 1})


def flight(index: int) -> Flight:
    return Flight(service="chat", endpoint="completions", client="app", arrival_at=1.8e9 + index, started=0.0,
                  prompt_tokens=10 + index, max_tokens=5, predicted_class="balanced", stream=False)  # fmt: skip


def sender_for(plane: FakeControlPlane, spool: Spool | None) -> tuple[RecordSender, RouterMetrics]:
    metrics = RouterMetrics(StateSnapshot)
    client = httpx.AsyncClient(transport=httpx.MockTransport(plane.handle))
    sender = RecordSender(client=client, control_plane="http://cp", token=lambda: "router-token", spool=spool,
                          metrics=metrics, batch_records=4, flush_s=0.01)  # fmt: skip
    return sender, metrics


def send(sender: RecordSender, start: int, count: int) -> list[str]:
    ids = []
    for index in range(start, start + count):
        record = flight(index).record("ok", 0.5)
        ids.append(record.id)
        sender.add(record)
    return ids


def test_records_go_in_batches_with_their_fields() -> None:
    plane = FakeControlPlane()
    sender, _ = sender_for(plane, None)
    ids = send(sender, 0, 10)
    asyncio.run(sender.flush())
    assert set(plane.stored) == set(ids)
    assert max(plane.stored.values()) == 1
    assert plane.posts == 3  # 4 + 4 + 2


def test_while_the_control_plane_is_down_records_wait_in_the_spool_then_arrive_once(tmp_path: Path) -> None:
    plane = FakeControlPlane()
    sender, metrics = sender_for(plane, Spool(tmp_path, 10**6))

    async def scenario() -> list[str]:
        ids = send(sender, 0, 4)
        await sender.flush()
        plane.down = True
        ids += send(sender, 4, 9)
        for _ in range(3):
            await sender.flush()
        assert sender.spool is not None
        assert len(sender.spool) > 0
        plane.down = False
        ids += send(sender, 13, 2)
        for _ in range(50):  # the backoff runs out, the spool drains, new records follow
            await sender.flush()
            await asyncio.sleep(0.01)
        return ids

    ids = asyncio.run(scenario())
    assert set(plane.stored) == set(ids)
    assert max(plane.stored.values()) == 1
    assert not list(tmp_path.glob("seg-*"))
    # The 2 that came while spooled records waited queued behind them, in the spool.
    assert metrics.records.labels("spooled")._value.get() == 9 + 2


def test_a_5xx_spools_and_a_400_sets_the_batch_aside(tmp_path: Path) -> None:
    plane = FakeControlPlane()
    spool = Spool(tmp_path, 10**6)
    sender, _ = sender_for(plane, spool)
    plane.status = 503
    send(sender, 0, 4)
    asyncio.run(sender.flush())
    assert len(spool) == 1
    plane.status = 400
    sender._retry_at = 0.0  # skip the backoff
    asyncio.run(sender.flush())
    assert len(spool) == 0
    assert len(list((tmp_path / "rejected").iterdir())) == 1
    posts = plane.posts
    asyncio.run(sender.flush())
    assert plane.posts == posts  # never retried


def test_shutdown_spools_what_it_cannot_send(tmp_path: Path) -> None:
    plane = FakeControlPlane()
    plane.down = True
    spool = Spool(tmp_path, 10**6)
    sender, _ = sender_for(plane, spool)
    ids = send(sender, 0, 6)
    asyncio.run(sender.close())
    on_disk = [json.loads(line)["id"] for path in tmp_path.glob("seg-*") for line in path.read_text().splitlines()]
    assert sorted(on_disk) == sorted(ids)


def test_without_a_spool_records_wait_in_memory(tmp_path: Path) -> None:
    plane = FakeControlPlane()
    plane.down = True
    sender, _ = sender_for(plane, None)
    ids = send(sender, 0, 6)
    asyncio.run(sender.flush())
    assert sender.pending == 6
    plane.down = False
    sender._retry_at = 0.0
    asyncio.run(sender.flush())
    assert set(plane.stored) == set(ids)


@pytest.mark.parametrize(("first", "last", "tokens", "tpot"), [(0.2, 0.6, 5, 0.1), (0.2, 0.2, 1, None)])
def test_a_flight_becomes_a_record(first: float, last: float, tokens: int, tpot: float | None) -> None:
    request = flight(0)
    request.first_token, request.last_token, request.output_tokens = first, last, tokens
    request.take_usage({"prompt_tokens": 12, "completion_tokens": tokens,
                        "prompt_tokens_details": {"cached_tokens": 8}})  # fmt: skip
    record = request.record("ok", 1.0).to_json()
    assert record["ttft_s"] == pytest.approx(first)
    assert record.get("tpot_s") == (pytest.approx(tpot) if tpot else None)
    assert (record["prompt_tokens"], record["cached_prompt_tokens"], record["e2e_s"]) == (12, 8, 1.0)
    assert set(record) <= {"id", "service", "arrival_at", "prompt_tokens", "output_tokens", "status", "endpoint",
                           "client", "max_tokens", "cached_prompt_tokens", "ttft_s", "tpot_s", "e2e_s",
                           "prefill_worker", "decode_worker", "predicted_class"}  # fmt: skip
