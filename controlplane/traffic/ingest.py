"""Validation of request-record batches from routers, fast enough for tens of thousands of records a second.

A DRF serializer costs hundreds of microseconds a record; these checks cost a few. Every problem is
named by its place in the batch (`records[17].prompt_tokens`), and one bad record refuses the whole
batch, so a router never has half a batch stored and can resend it as it is.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from controlplane.common.errors import ApplicationError
from controlplane.traffic.models import RecordStatus, RequestClass

MAX_BATCH = 10_000
MAX_ERRORS_REPORTED = 20

# The columns of RequestRecord that an ingested row fills, in the order `parse_records` returns them.
COLUMNS = (
    "id", "service_id", "arrival_at", "prompt_tokens", "output_tokens", "cached_prompt_tokens", "max_tokens",
    "endpoint", "client", "ttft_s", "tpot_s", "e2e_s", "prefill_worker", "decode_worker", "predicted_class",
    "status", "source", "received_at",
)
_REQUIRED = ("id", "service", "arrival_at", "prompt_tokens", "output_tokens")
_KNOWN = frozenset(
    {"id", "service", "arrival_at", "prompt_tokens", "output_tokens", "cached_prompt_tokens", "max_tokens", "endpoint",
     "client", "ttft_s", "tpot_s", "e2e_s", "prefill_worker", "decode_worker", "predicted_class", "status"}
)
_CLASSES = frozenset(RequestClass.values) | {""}
_STATUSES = frozenset(RecordStatus.values)
_MAX_TOKENS = 10_000_000
_TEXT_LIMITS = {"endpoint": 32, "client": 100, "prefill_worker": 200, "decode_worker": 200}


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _tokens(record: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = record.get(name)
    if value is None:
        if required:
            raise _Bad(name, "This field is required.")
        return None
    if type(value) is not int or not 0 <= value <= _MAX_TOKENS:
        raise _Bad(name, f"Must be an integer between 0 and {_MAX_TOKENS}.")
    return value


def _seconds(record: Mapping[str, Any], name: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise _Bad(name, "Must be a non-negative number of seconds.")
    return float(value)


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _TEXT_LIMITS[name]:
        raise _Bad(name, f"Must be a string of at most {_TEXT_LIMITS[name]} characters.")
    return value


def _arrival(value: Any) -> datetime:
    if type(value) in (int, float):
        if not math.isfinite(value) or value < 0:
            raise _Bad("arrival_at", "Must be a time: ISO 8601 with a timezone, or Unix seconds.")
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad("arrival_at", f"{value[:40]!r} is not an ISO 8601 time.") from None
        if moment.tzinfo is None:
            raise _Bad("arrival_at", "The time needs a timezone (e.g. 2026-01-01T12:00:00Z).")
        return moment
    raise _Bad("arrival_at", "Must be a time: ISO 8601 with a timezone, or Unix seconds.")


def _row(record: Any, services: Mapping[str, int], source: str, now: datetime) -> tuple[Any, ...]:
    if not isinstance(record, dict):
        raise _Bad("", "Each record is a JSON object.")
    missing = [name for name in _REQUIRED if record.get(name) is None]
    if missing:
        raise _Bad(missing[0], "This field is required.")
    unknown = set(record) - _KNOWN
    if unknown:
        raise _Bad(sorted(unknown)[0], "Unknown field.")
    try:
        record_id = uuid.UUID(str(record["id"]))
    except ValueError:
        raise _Bad("id", "Must be a UUID.") from None
    service_id = services.get(record["service"]) if isinstance(record["service"], str) else None
    if service_id is None:
        raise _Bad("service", f"Unknown service {str(record['service'])[:100]!r}.")
    prompt = _tokens(record, "prompt_tokens", required=True)
    cached = _tokens(record, "cached_prompt_tokens", required=False) or 0
    if prompt is not None and cached > prompt:
        raise _Bad("cached_prompt_tokens", "Cannot exceed prompt_tokens.")
    predicted = record.get("predicted_class") or ""
    if predicted not in _CLASSES:
        raise _Bad("predicted_class", f"Must be one of: {', '.join(sorted(_CLASSES - {''}))}.")
    status = record.get("status") or RecordStatus.OK
    if status not in _STATUSES:
        raise _Bad("status", f"Must be one of: {', '.join(sorted(_STATUSES))}.")
    return (
        record_id, service_id, _arrival(record["arrival_at"]), prompt, _tokens(record, "output_tokens", required=True),
        cached, _tokens(record, "max_tokens", required=False), _text(record, "endpoint"), _text(record, "client"),
        _seconds(record, "ttft_s"), _seconds(record, "tpot_s"), _seconds(record, "e2e_s"),
        _text(record, "prefill_worker"), _text(record, "decode_worker"), predicted, status, source, now,
    )


def parse_records(payload: Any, *, services: Mapping[str, int], source: str, now: datetime) -> list[tuple[Any, ...]]:
    """Rows (in COLUMNS order) for a batch `{"records": [...]}`, or ApplicationError naming every bad field.

    `services` maps service names to ids. Duplicate ids within the batch are kept once.
    """
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list):
        raise ApplicationError("The body is {\"records\": [...]}.", fields={"records": ["A list of records is required."]})
    if len(records) > MAX_BATCH:
        raise ApplicationError(
            f"At most {MAX_BATCH} records a batch.", fields={"records": [f"{len(records)} records; the limit is {MAX_BATCH}."]}
        )
    rows: dict[uuid.UUID, tuple[Any, ...]] = {}
    errors: dict[str, list[str]] = {}
    for index, record in enumerate(records):
        try:
            row = _row(record, services, source, now)
        except _Bad as bad:
            name = f"records[{index}].{bad.field}" if bad.field else f"records[{index}]"
            errors[name] = [bad.message]
            if len(errors) >= MAX_ERRORS_REPORTED:
                break
            continue
        rows.setdefault(row[0], row)
    if errors:
        raise ApplicationError(
            f"{len(errors)}{'+' if len(errors) >= MAX_ERRORS_REPORTED else ''} invalid record(s); nothing was stored.",
            fields=errors,
        )
    return list(rows.values())
