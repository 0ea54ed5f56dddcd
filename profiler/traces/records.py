"""Cleave's own trace format: JSONL, one object of TraceRecord fields per line, written by `write_records`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, Protocol

from profiler.traces.base import (
    JsonlTraceReader,
    RowError,
    TraceRecord,
    count,
    hash_ids,
    required,
    seconds,
    text,
)

RECORD_FIELDS = tuple(field.name for field in fields(TraceRecord))


class TextSink(Protocol):
    """Anything with a `write(str)`: an open text file, a StringIO."""

    def write(self, text: str, /) -> object: ...


def write_records(records: Iterable[TraceRecord], fh: TextSink) -> int:
    """Write records as Cleave's `records` format (one JSON object per line); returns how many were written."""
    written = 0
    for record in records:
        fh.write(json.dumps({name: getattr(record, name) for name in RECORD_FIELDS}) + "\n")
        written += 1
    return written


class RecordsReader(JsonlTraceReader):
    """Reads Cleave's own export back exactly: arrival_s is taken as it is, and unknown keys are ignored.

    arrival_s may be negative here: a reader counts from the first row, so in an unsorted trace the rows
    that came before it have negative arrivals, and an export keeps them.

    `line` and `record_id` keep the values written, so a trace read, exported and read again is unchanged;
    a line without them gets its own line number and an id from the file's digest.
    """

    name = "records"

    def parse(self, obj: dict[str, object], line: int) -> TraceRecord:
        prompt_tokens = count(required(obj, "prompt_tokens"), "prompt_tokens")
        fields: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "output_tokens": count(required(obj, "output_tokens"), "output_tokens"),
        }
        arrival = obj.get("arrival_s")
        fields["arrival_s"] = None if arrival is None else seconds(arrival, "arrival_s", signed=True)
        for name in ("cached_prompt_tokens", "max_tokens"):
            if obj.get(name) is not None:
                fields[name] = count(obj[name], name)
        for name in ("record_id", "model", "endpoint", "client", "status"):
            label = text(obj.get(name), name)
            if label is not None:
                fields[name] = label
        if obj.get("hash_ids") is not None:
            fields["hash_ids"] = hash_ids(obj["hash_ids"], "hash_ids")
        original_line = obj.get("line")
        fields["line"] = line if original_line is None else count(original_line, "line")
        if fields.get("cached_prompt_tokens", 0) > prompt_tokens:
            raise RowError(
                "cached_prompt_tokens",
                f"{fields['cached_prompt_tokens']} cached tokens exceed the {prompt_tokens} prompt tokens",
            )
        fields.setdefault("record_id", self.record_id(line))
        return TraceRecord(**fields)
