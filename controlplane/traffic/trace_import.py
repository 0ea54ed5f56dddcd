"""Loading a trace file into RequestRecords: batches, stable ids, nothing half-written."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from django.utils import timezone

from controlplane.traffic.models import RecordStatus, Service
from controlplane.traffic.services import records_ingest
from profiler.traces import TraceError, TraceRecord, read_trace

# Ids of imported records are uuid5(service, file digest, line): re-importing the same file into
# the same service finds every record already stored.
_NAMESPACE = uuid.UUID("5b0e3c4e-2f7c-4d0a-9b43-6f1d3c0e8a11")
_STATUS = {"ok": RecordStatus.OK, "failed": RecordStatus.ERROR}


@dataclass
class ImportReport:
    read: int = 0
    stored: int = 0
    skipped_rows: list[TraceError] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.read - self.stored


def _batches(records: Iterable[TraceRecord], size: int) -> Iterator[list[TraceRecord]]:
    batch: list[TraceRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _row(record: TraceRecord, service: Service, start: datetime, source: str, now: datetime) -> tuple[Any, ...]:
    record_id = uuid.uuid5(_NAMESPACE, f"{service.pk}:{record.record_id}")
    arrival = start + timedelta(seconds=record.arrival_s or 0.0)
    return (
        record_id, service.pk, arrival, record.prompt_tokens, record.output_tokens, record.cached_prompt_tokens,
        record.max_tokens, (record.endpoint or "")[:32], (record.client or "")[:100], None, None, None, "", "", "",
        _STATUS.get(record.status, RecordStatus.OK), source, now,
    )


def trace_import(
    *,
    path: Path,
    fmt: str,
    service: Service,
    start: datetime | None = None,
    columns: Mapping[str, str] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a trace into `service`'s records, batch by batch.

    Arrivals are placed from `start` (default: so that the trace's last request arrives now). With
    `on_error="raise"` a malformed row raises TraceError before anything of its batch is written
    (earlier batches stay, and a re-run skips them); with "skip" such rows are skipped and reported.
    """
    if start is None:
        last = max((r.arrival_s or 0.0 for r in read_trace(path, fmt, columns=columns, on_error="skip")), default=0.0)
        start = timezone.now() - timedelta(seconds=last)
    report = ImportReport()
    source = f"trace:{path.name}"[:100]
    records = read_trace(path, fmt, columns=columns, on_error=on_error, errors=report.skipped_rows)
    for batch in _batches(records, batch_size):
        now = timezone.now()
        result = records_ingest(rows=[_row(record, service, start, source, now) for record in batch])
        report.read += result.received
        report.stored += result.stored
        if progress is not None:
            progress(len(batch))
    return report
