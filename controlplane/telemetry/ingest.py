"""Validation of sample batches from node agents, fast (a 10,000-GPU fleet sends 1,000 GPU readings a second).

Like record ingest: plain checks that name the place of each problem (`node_samples[3].power_w`), and
one bad sample refuses the batch, so an agent can resend its buffer as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from controlplane.common.errors import ApplicationError
from controlplane.fleet.models import WorkerRole

MAX_SAMPLES = 20_000
NODE_COLUMNS = (
    "node_id", "ts", "gpu_index", "utilization", "power_w", "memory_used_bytes", "memory_total_bytes", "temperature_c",
)
WORKER_COLUMNS = (
    "node_id", "worker_name", "service_id", "role", "ts", "requests_running", "requests_waiting", "kv_cache_usage",
    "prompt_tokens_per_s", "generation_tokens_per_s", "ttft_p50_s", "ttft_p90_s", "itl_p50_s", "itl_p90_s",
)
_ROLES = frozenset(WorkerRole.values)


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _number(sample: Mapping[str, Any], name: str, *, low: float = 0.0, high: float = math.inf,
            required: bool = True) -> float | None:
    value = sample.get(name)
    if value is None:
        if required:
            raise _Bad(name, "This field is required.")
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise _Bad(name, f"Must be a number between {low:g} and {high:g}.")
    return float(value)


def _count(sample: Mapping[str, Any], name: str, *, high: int = 2**62) -> int:
    value = sample.get(name, 0)
    if type(value) is not int or not 0 <= value <= high:
        raise _Bad(name, f"Must be an integer between 0 and {high}.")
    return value


def _timestamp(sample: Mapping[str, Any]) -> datetime:
    value = sample.get("ts")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad("ts", f"{value[:40]!r} is not an ISO 8601 time.") from None
        if moment.tzinfo is not None:
            return moment
    raise _Bad("ts", "Must be a time: ISO 8601 with a timezone, or Unix seconds.")


def _node_row(sample: Any, node_id: int) -> tuple[Any, ...]:
    if not isinstance(sample, dict):
        raise _Bad("", "Each sample is a JSON object.")
    return (
        node_id, _timestamp(sample), _count(sample, "gpu_index", high=63), _number(sample, "utilization", high=1.0),
        _number(sample, "power_w", high=5000.0), _count(sample, "memory_used_bytes"),
        _count(sample, "memory_total_bytes"), _number(sample, "temperature_c", low=-50, high=200, required=False),
    )


def _worker_row(sample: Any, node_id: int, services: Mapping[str, int]) -> tuple[Any, ...]:
    if not isinstance(sample, dict):
        raise _Bad("", "Each sample is a JSON object.")
    name = sample.get("worker")
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise _Bad("worker", "A worker name of 1 to 100 characters is required.")
    role = sample.get("role")
    if role not in _ROLES:
        raise _Bad("role", f"Must be one of: {', '.join(sorted(_ROLES))}.")
    service_name = sample.get("service")
    service_id = None
    if service_name is not None:
        service_id = services.get(service_name) if isinstance(service_name, str) else None
        if service_id is None:
            raise _Bad("service", f"Unknown service {str(service_name)[:100]!r}.")
    return (
        node_id, name, service_id, role, _timestamp(sample), _count(sample, "requests_running"),
        _count(sample, "requests_waiting"), _number(sample, "kv_cache_usage", high=1.0),
        _number(sample, "prompt_tokens_per_s"), _number(sample, "generation_tokens_per_s"),
        _number(sample, "ttft_p50_s", required=False), _number(sample, "ttft_p90_s", required=False),
        _number(sample, "itl_p50_s", required=False), _number(sample, "itl_p90_s", required=False),
    )


def parse_samples(
    payload: Any, *, node_id: int, services: Mapping[str, int]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows for NodeSample and WorkerSample (in NODE_COLUMNS / WORKER_COLUMNS order), or ApplicationError."""
    if not isinstance(payload, dict):
        raise ApplicationError("The body is a JSON object.", fields={"node_samples": ["Required."]})
    node_samples = payload.get("node_samples", [])
    worker_samples = payload.get("worker_samples", [])
    errors: dict[str, list[str]] = {}
    for key, value in (("node_samples", node_samples), ("worker_samples", worker_samples)):
        if not isinstance(value, list):
            errors[key] = ["Must be a list."]
    if errors:
        raise ApplicationError("Malformed sample batch.", fields=errors)
    if len(node_samples) + len(worker_samples) > MAX_SAMPLES:
        raise ApplicationError(f"At most {MAX_SAMPLES} samples a batch.", fields={"node_samples": ["Too many samples."]})
    node_rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    worker_rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for key, samples in (("node_samples", node_samples), ("worker_samples", worker_samples)):
        for index, sample in enumerate(samples):
            try:
                if key == "node_samples":
                    row = _node_row(sample, node_id)
                    node_rows.setdefault((row[1], row[2]), row)
                else:
                    row = _worker_row(sample, node_id, services)
                    worker_rows.setdefault((row[1], row[4]), row)
            except _Bad as bad:
                errors[f"{key}[{index}].{bad.field}" if bad.field else f"{key}[{index}]"] = [bad.message]
                if len(errors) >= 20:
                    break
    if errors:
        raise ApplicationError(f"{len(errors)} invalid sample(s); nothing was stored.", fields=errors)
    return list(node_rows.values()), list(worker_rows.values())
