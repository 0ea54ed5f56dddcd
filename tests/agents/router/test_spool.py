"""The record spool: fsync'd segments, sent oldest first, bounded by dropping the oldest, bad ones moved aside."""

from __future__ import annotations

from pathlib import Path

from agents.router import spool as spool_module
from agents.router.spool import Spool


def records(start: int, count: int) -> list[dict[str, object]]:
    return [{"id": f"r{index}", "prompt_tokens": index} for index in range(start, start + count)]


def test_batches_come_back_oldest_first_and_go_once_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**6)
    spool.append(records(0, 3))
    spool.append(records(3, 2))
    segment = spool.oldest()
    assert segment is not None
    assert [r["id"] for r in segment.records] == ["r0", "r1", "r2", "r3", "r4"]
    spool.append(records(5, 1))  # the segment being sent is sealed: new records start another
    spool.acknowledge(segment)
    rest = spool.oldest()
    assert rest is not None
    assert [r["id"] for r in rest.records] == ["r5"]
    spool.acknowledge(rest)
    assert spool.oldest() is None
    assert spool.bytes == 0


def test_it_survives_a_restart_and_skips_a_torn_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**6)
    spool.append(records(0, 2))
    with next(tmp_path.glob("seg-*.jsonl")).open("ab") as handle:
        handle.write(b'{"id": "torn')  # a crash in the middle of a write
    reopened = Spool(tmp_path, 10**6)
    reopened.append(records(2, 1))
    first = reopened.oldest()
    assert first is not None
    assert [r["id"] for r in first.records] == ["r0", "r1"]
    reopened.acknowledge(first)
    second = reopened.oldest()
    assert second is not None
    assert [r["id"] for r in second.records] == ["r2"]


def test_beyond_its_bound_it_drops_the_oldest_and_counts_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_RECORDS", 10)
    spool = Spool(tmp_path, 2_000)
    for start in range(0, 100, 10):
        spool.append(records(start, 10))
    assert spool.bytes <= 2_000
    assert spool.dropped_records > 0
    kept = []
    while (segment := spool.oldest()) is not None:
        kept += [r["id"] for r in segment.records]
        spool.acknowledge(segment)
    assert kept[-1] == "r99"
    assert len(kept) + spool.dropped_records == 100


def test_a_refused_segment_is_moved_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**6)
    spool.append(records(0, 2))
    segment = spool.oldest()
    assert segment is not None
    moved = spool.reject(segment)
    assert moved.parent.name == "rejected"
    assert moved.exists()
    assert spool.oldest() is None
    assert spool.reject_batch(records(5, 1)).read_text().count("\n") == 1
