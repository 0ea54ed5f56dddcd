"""Celery tasks of the telemetry app (the `telemetry` queue): thin wrappers over services."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.utils import timezone

from controlplane.tasks import cleave_task
from controlplane.telemetry import corrections, services


@cleave_task(name="telemetry.rollup_minutes")
def rollup_minutes() -> int:
    """Roll up the minutes due (every minute); returns how many roll-up rows were written."""
    return services.rollups_update_minutes(now=timezone.now())


@cleave_task(name="telemetry.rollup_hours")
def rollup_hours() -> int:
    """Roll up the hours due from their minutes (hourly); returns how many roll-up rows were written."""
    return services.rollups_update_hours(now=timezone.now())


@cleave_task(name="telemetry.enforce_retention")
def enforce_retention() -> dict[str, Any]:
    """Delete samples and roll-ups past their retention (hourly), in bounded batches."""
    return asdict(services.telemetry_retention_enforce(now=timezone.now()))


@cleave_task(name="telemetry.perf_corrections")
def perf_corrections() -> dict[str, Any]:
    """Move the perf model's corrections toward what the latest worker samples measured (every 5 minutes)."""
    return asdict(corrections.perf_corrections_update(now=timezone.now()))
