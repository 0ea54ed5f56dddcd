"""Writes of telemetry: sample batches from agents (bulk, idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from controlplane.common.bulk import insert_ignoring_conflicts
from controlplane.telemetry.ingest import NODE_COLUMNS, WORKER_COLUMNS
from controlplane.telemetry.models import NodeSample, WorkerSample


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
