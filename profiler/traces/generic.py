"""Generic CSV and JSONL traces, read through a mapping from TraceRecord fields to the file's own names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.errors import TraceError
from profiler.traces.base import (
    CsvTraceReader,
    JsonlTraceReader,
    RowError,
    TraceRecord,
    count,
    is_missing,
    lookup,
    seconds,
    text,
)

REQUIRED_KEYS = ("prompt_tokens", "output_tokens")
# the arrival keys, and what their values are divided by to make seconds
ARRIVAL_KEYS = {"arrival": 1.0, "arrival_s": 1.0, "arrival_ms": 1000.0}
COUNT_KEYS = ("cached_prompt_tokens", "max_tokens")
LABEL_KEYS = ("record_id", "model", "endpoint", "client", "status")
MAPPING_KEYS = (*REQUIRED_KEYS, *ARRIVAL_KEYS, *COUNT_KEYS, *LABEL_KEYS)


def parse_columns(spec: str) -> dict[str, str]:
    """Parse `prompt_tokens=input_length,output_tokens=output_length,arrival=timestamp` into a column mapping.

    Keys are TraceRecord fields (`arrival` or `arrival_s` for seconds, `arrival_ms` for milliseconds),
    values the file's column names. Raises TraceError naming the bad entry.
    """
    mapping: dict[str, str] = {}
    for entry in spec.split(","):
        if not entry.strip():
            continue
        key, sep, column = (part.strip() for part in entry.partition("="))
        if not sep or not key or not column:
            raise TraceError(f"column mapping {entry.strip()!r}: expected field=column", field=key or None)
        if key in mapping:
            raise TraceError(f"column mapping: {key} is given twice", field=key)
        mapping[key] = column
    _check_keys(mapping)
    return mapping


def _check_keys(mapping: Mapping[str, str], path: Path | None = None) -> None:
    where = f"{path.name}: column mapping" if path is not None else "column mapping"
    source = str(path) if path is not None else None
    for key in mapping:
        if key not in MAPPING_KEYS:
            raise TraceError(
                f"{where}: unknown field {key!r}; known: {', '.join(MAPPING_KEYS)}", path=source, field=key
            )
    for key in REQUIRED_KEYS:
        if key not in mapping:
            raise TraceError(f"{where}: {key} is required", path=source, field=key)
    arrivals = [key for key in mapping if key in ARRIVAL_KEYS]
    if len(arrivals) > 1:
        raise TraceError(f"{where}: give one of {', '.join(arrivals)}", path=source, field=arrivals[1])


@dataclass(frozen=True, slots=True)
class _ColumnMap:
    """A checked mapping: which of the file's names feed which record field."""

    prompt_tokens: str
    output_tokens: str
    arrival: str | None
    arrival_divisor: float
    arrival_required: bool
    counts: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mapping: Mapping[str, str], *, arrival_required: bool) -> _ColumnMap:
        arrival_key = next((key for key in ARRIVAL_KEYS if key in mapping), None)
        return cls(
            prompt_tokens=mapping["prompt_tokens"],
            output_tokens=mapping["output_tokens"],
            arrival=mapping[arrival_key] if arrival_key else None,
            arrival_divisor=ARRIVAL_KEYS[arrival_key] if arrival_key else 1.0,
            arrival_required=arrival_required,
            counts=tuple((key, mapping[key]) for key in COUNT_KEYS if key in mapping),
            labels=tuple((key, mapping[key]) for key in LABEL_KEYS if key in mapping),
        )

    def columns(self) -> tuple[str, ...]:
        optional = (self.arrival,) if self.arrival else ()
        return (self.prompt_tokens, self.output_tokens, *optional, *(c for _, c in self.counts + self.labels))


class _GenericReader:
    """What the CSV and JSONL readers share: turning the mapped values of one row into a record."""

    path: Path
    digest: str
    _origin: float | None = None

    def _build(self, columns: _ColumnMap, values: Mapping[str, object], line: int) -> TraceRecord:
        prompt_tokens = count(_required(values, columns.prompt_tokens), columns.prompt_tokens)
        fields: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "output_tokens": count(_required(values, columns.output_tokens), columns.output_tokens),
            "arrival_s": None,
            "line": line,
        }
        if columns.arrival is not None:
            raw = lookup(values, columns.arrival)
            present = not (is_missing(raw) or raw is None)
            if present or columns.arrival_required:
                arrival = seconds(_required(values, columns.arrival), columns.arrival)
                if self._origin is None:
                    self._origin = arrival
                fields["arrival_s"] = (arrival - self._origin) / columns.arrival_divisor
        for key, column in columns.counts:
            value = lookup(values, column)
            if not (is_missing(value) or value is None or value == ""):
                fields[key] = count(value, column)
        for key, column in columns.labels:
            value = lookup(values, column)
            label = None if is_missing(value) else text(value, column)
            if label is not None:
                fields[key] = label
        if fields.get("cached_prompt_tokens", 0) > prompt_tokens:
            column = dict(columns.counts)["cached_prompt_tokens"]
            raise RowError(
                column,
                f"{fields['cached_prompt_tokens']} cached tokens exceed the {prompt_tokens} prompt tokens",
            )
        fields.setdefault("record_id", f"{self.digest}:{line}")
        return TraceRecord(**fields)


def _required(values: Mapping[str, object], column: str) -> object:
    value = lookup(values, column)
    if is_missing(value) or value is None:
        raise RowError(column, "missing")
    return value


class CsvReader(_GenericReader, CsvTraceReader):
    """Reads any CSV trace with a header, through a column mapping.

    Without a mapping, the header's columns named like TraceRecord fields are read (`arrival_s` for
    arrivals). Without an arrival column the trace is a batch: every arrival_s is None.
    """

    name = "csv"
    takes_columns = True

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        if self.columns is not None:
            _check_keys(self.columns, path)

    def bind(self, header: list[str]) -> None:
        mapping = self.columns
        if mapping is None:
            mapping = {key: key for key in MAPPING_KEYS if key in header}
            mapping.setdefault("prompt_tokens", "prompt_tokens")
            mapping.setdefault("output_tokens", "output_tokens")
            for key in [key for key in ARRIVAL_KEYS if key in mapping][1:]:
                del mapping[key]
        self._map = _ColumnMap.of(mapping, arrival_required=True)
        self._index = self.find_columns(header, self._map.columns())

    def parse(self, row: list[str], line: int) -> TraceRecord:
        return self._build(self._map, {column: row[index] for column, index in self._index.items()}, line)


class JsonlReader(_GenericReader, JsonlTraceReader):
    """Reads any JSONL trace, one object per line, through a mapping (dotted names reach nested objects).

    Without a mapping, keys named like TraceRecord fields are read; a line without `arrival_s` has no
    arrival. With a mapping that names an arrival, every line must have one.
    """

    name = "jsonl"
    takes_columns = True

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        if self.columns is not None:
            _check_keys(self.columns, path)
            self._map = _ColumnMap.of(self.columns, arrival_required=True)
        else:
            identity = {key: key for key in MAPPING_KEYS if key not in ("arrival", "arrival_ms")}
            self._map = _ColumnMap.of(identity, arrival_required=False)

    def parse(self, obj: dict[str, object], line: int) -> TraceRecord:
        return self._build(self._map, obj, line)
