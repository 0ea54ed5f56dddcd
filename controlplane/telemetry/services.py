"""Writes of telemetry: sample batches from agents (bulk, idempotent), roll-ups, and retention."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min, QuerySet

from controlplane.common.bulk import insert_ignoring_conflicts
from controlplane.fleet.models import Node
from controlplane.telemetry.accounting import fleet_snapshot, sample_interval_s
from controlplane.telemetry.ingest import NODE_COLUMNS, WORKER_COLUMNS
from controlplane.telemetry.models import (
    NodeRollup,
    NodeSample,
    Resolution,
    ServiceRollup,
    TierRollup,
    WorkerSample,
)
from controlplane.telemetry.rollups import BucketRows, hour_bucket, minute_bucket
from controlplane.telemetry.selectors import floor_time


@dataclass(frozen=True)
class SamplesStored:
    node_samples: int
    worker_samples: int


@transaction.atomic
def samples_ingest(*, node_rows: Sequence[Sequence[Any]], worker_rows: Sequence[Sequence[Any]]) -> SamplesStored:
    """Store a batch of samples in one transaction; readings already stored (same node, GPU or worker, ts) are skipped.

    Samples are data, not state changes, so they are not audited.
    """
    return SamplesStored(
        node_samples=insert_ignoring_conflicts(NodeSample, NODE_COLUMNS, node_rows),
        worker_samples=insert_ignoring_conflicts(WorkerSample, WORKER_COLUMNS, worker_rows),
    )


# --- Roll-ups and retention -------------------------------------------------------------------------
# Roll-ups and retention maintain derived data and age out samples: like samples, they are not audited.

ROLLUP_MODELS: tuple[type[NodeRollup] | type[TierRollup] | type[ServiceRollup], ...] = (
    NodeRollup, TierRollup, ServiceRollup,
)
# Each run recomputes this many closed buckets before the latest it wrote, for samples and records that
# arrive late (agents and routers send in batches), and then every bucket up to the open one.
MINUTE_LOOKBACK = 2
HOUR_LOOKBACK = 1
# A run catches up at most this many buckets, so it stays short after an outage; the next run goes on.
MINUTE_MAX_BUCKETS = 60
HOUR_MAX_BUCKETS = 48
# Without roll-ups yet, the first run rolls up this far back.
MINUTE_FIRST_BUCKETS = 30
HOUR_FIRST_BUCKETS = 24
_LOCK_KEY = 0x7E1E_0000


def _lock_resolution(resolution_s: int) -> None:
    """Serialize writers of one resolution (two overlapping runs); SQLite's write transactions already are."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY + resolution_s])


@transaction.atomic
def rollup_bucket_store(*, rows: BucketRows) -> int:
    """Replace every roll-up row of one bucket with `rows`, in one transaction; returns how many were written."""
    _lock_resolution(rows.resolution_s)
    for model in ROLLUP_MODELS:
        model.objects.filter(resolution_s=rows.resolution_s, bucket_start=rows.bucket_start).delete()
    NodeRollup.objects.bulk_create(rows.nodes, batch_size=2000)
    TierRollup.objects.bulk_create(rows.pools, batch_size=2000)
    ServiceRollup.objects.bulk_create(rows.services, batch_size=2000)
    return len(rows.nodes) + len(rows.pools) + len(rows.services)


def _latest_bucket(resolution_s: int) -> datetime | None:
    latest = [
        model.objects.filter(resolution_s=resolution_s).aggregate(latest=Max("bucket_start"))["latest"]
        for model in (TierRollup, ServiceRollup)
    ]
    return max((moment for moment in latest if moment is not None), default=None)


def _buckets_due(
    *, resolution_s: int, now: datetime, lookback: int, first: int, max_buckets: int, earliest: datetime
) -> list[datetime]:
    step = timedelta(seconds=resolution_s)
    current = floor_time(now, resolution_s)
    latest = _latest_bucket(resolution_s)
    start = current - step * first if latest is None else min(latest, current) - step * lookback
    # Never recompute a bucket whose sources may be partly deleted already: that would lose what it holds.
    start = max(start, floor_time(earliest, resolution_s) + step)
    count = min(max_buckets, int((current - start) / step) + 1)
    return [start + step * index for index in range(max(count, 0))]


def rollups_recompute(*, resolution_s: int, buckets: Sequence[datetime]) -> int:
    """Recompute the roll-up rows of the given bucket starts at one resolution (minute buckets from raw
    samples and records, hour buckets from minute rows); each bucket is replaced in its own transaction."""
    interval_s = sample_interval_s()
    fleet = fleet_snapshot() if resolution_s == Resolution.MINUTE else None
    written = 0
    for bucket_start in buckets:
        if fleet is not None:
            rows = minute_bucket(bucket_start=bucket_start, fleet=fleet, interval_s=interval_s)
        else:
            rows = hour_bucket(bucket_start=bucket_start)
        written += rollup_bucket_store(rows=rows)
    return written


def rollups_update_minutes(*, now: datetime) -> int:
    """Roll up the minutes due: the last few closed ones again, the ones since, and the open one."""
    buckets = _buckets_due(
        resolution_s=Resolution.MINUTE, now=now, lookback=MINUTE_LOOKBACK, first=MINUTE_FIRST_BUCKETS,
        max_buckets=MINUTE_MAX_BUCKETS, earliest=now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_H),
    )
    return rollups_recompute(resolution_s=Resolution.MINUTE, buckets=buckets)


def rollups_update_hours(*, now: datetime) -> int:
    """Roll up the hours due from their minute rows: the last closed ones again, the ones since, the open one."""
    buckets = _buckets_due(
        resolution_s=Resolution.HOUR, now=now, lookback=HOUR_LOOKBACK, first=HOUR_FIRST_BUCKETS,
        max_buckets=HOUR_MAX_BUCKETS, earliest=now - timedelta(days=settings.TELEMETRY_MINUTE_RETENTION_D),
    )
    return rollups_recompute(resolution_s=Resolution.HOUR, buckets=buckets)


@dataclass(frozen=True)
class RetentionDone:
    node_samples: int
    worker_samples: int
    minute_rollups: int
    hour_rollups: int
    complete: bool


def _delete_batches(batches: Iterator[QuerySet[Any]], *, deadline: float) -> tuple[int, bool]:
    """Delete batch after batch (each one statement, its own transaction) until none are left (True) or the
    deadline passes (False: the next run goes on where this one stopped)."""
    deleted = 0
    for batch in batches:
        count, _ = batch.delete()
        deleted += count
        if time.monotonic() > deadline:
            return deleted, False
    return deleted, True


def _expired_samples(
    model: type[NodeSample] | type[WorkerSample], node_ids: Sequence[int], cutoff: datetime
) -> Iterator[QuerySet[Any]]:
    # One node at a time: the (node, ts) index leads straight to its old rows, and a batch holds at most
    # what one node reported since the last run. (A batch by `ts` alone would scan the whole table.)
    for node_id in node_ids:
        yield model.objects.filter(node_id=node_id, ts__lt=cutoff)


def _expired_rollups(
    model: type[NodeRollup] | type[TierRollup] | type[ServiceRollup], resolution_s: int, cutoff: datetime
) -> Iterator[QuerySet[Any]]:
    # Sixty buckets at a time, oldest first, through the (resolution_s, bucket_start) index.
    expired = model.objects.filter(resolution_s=resolution_s, bucket_start__lt=cutoff)
    while (oldest := expired.aggregate(oldest=Min("bucket_start"))["oldest"]) is not None:
        yield expired.filter(bucket_start__lt=min(oldest + timedelta(seconds=60 * resolution_s), cutoff))


def telemetry_retention_enforce(*, now: datetime, time_budget_s: float = 120.0) -> RetentionDone:
    """Delete raw samples older than TELEMETRY_RAW_RETENTION_H, minute roll-ups older than
    TELEMETRY_MINUTE_RETENTION_D and hour roll-ups older than TELEMETRY_HOUR_RETENTION_D, in bounded
    batches, until done or the time budget is spent. Rows are only deleted: a run cut short loses nothing.
    """
    deadline = time.monotonic() + time_budget_s
    raw_cutoff = now - timedelta(hours=settings.TELEMETRY_RAW_RETENTION_H)
    node_ids = list(Node.objects.order_by("id").values_list("id", flat=True))
    jobs: list[Iterator[QuerySet[Any]]] = [
        _expired_samples(NodeSample, node_ids, raw_cutoff),
        _expired_samples(WorkerSample, node_ids, raw_cutoff),
    ]
    for resolution_s, days in (
        (Resolution.MINUTE, settings.TELEMETRY_MINUTE_RETENTION_D),
        (Resolution.HOUR, settings.TELEMETRY_HOUR_RETENTION_D),
    ):
        cutoff = now - timedelta(days=days)
        jobs.extend(_expired_rollups(model, resolution_s, cutoff) for model in ROLLUP_MODELS)
    counts: list[int] = []
    complete = True
    for batches in jobs:
        count = 0
        if complete:
            count, complete = _delete_batches(batches, deadline=deadline)
        counts.append(count)
    return RetentionDone(
        node_samples=counts[0], worker_samples=counts[1], minute_rollups=sum(counts[2:5]),
        hour_rollups=sum(counts[5:8]), complete=complete,
    )
