"""Streaming readers for request traces (Azure, Mooncake, BurstGPT, generic CSV/JSONL, Cleave's own export).

Every reader yields TraceRecords one row at a time and never holds the file in memory. Arrivals count in
seconds from the file's first data row; a trace is not required to be sorted (sorting is the importer's
job), so in an unsorted file the rows earlier than the first one have negative arrivals. A format is a
TraceReader subclass with a `name`, registered when its module is imported here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

from profiler.errors import TraceError
from profiler.traces import azure, burstgpt, generic, mooncake, records
from profiler.traces.base import READERS, TraceReader, TraceRecord, file_digest
from profiler.traces.generic import MAPPING_KEYS, parse_columns
from profiler.traces.records import write_records

__all__ = [
    "FORMATS",
    "MAPPING_KEYS",
    "TraceError",
    "TraceReader",
    "TraceRecord",
    "file_digest",
    "parse_columns",
    "read_trace",
    "write_records",
]

# the modules above register their readers when imported; named here so the imports read as used
_FORMAT_MODULES = (azure, mooncake, burstgpt, generic, records)
FORMATS: tuple[str, ...] = tuple(READERS)


def read_trace(
    path: str | Path,
    fmt: str,
    *,
    columns: Mapping[str, str] | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    errors: list[TraceError] | None = None,
) -> Iterator[TraceRecord]:
    """Stream the records of the trace at `path`, read as format `fmt` (one of FORMATS).

    `columns` maps TraceRecord fields to the file's names for the `csv` and `jsonl` formats (see
    `parse_columns`). A malformed row raises TraceError naming the file, line and field; with
    `on_error="skip"` it is skipped instead and its error appended to `errors`. A missing column, an
    unknown format, a bad mapping or a missing file always raise; the last three at once, before iterating.
    An empty trace yields nothing.
    """
    reader_class = READERS.get(fmt)
    if reader_class is None:
        raise TraceError(f"unknown trace format {fmt!r}; known: {', '.join(READERS)}", field="fmt")
    if on_error not in ("raise", "skip"):
        raise TraceError(f"on_error must be 'raise' or 'skip', not {on_error!r}", field="on_error")
    source = Path(path)
    reader = reader_class(source, digest=file_digest(source), columns=columns)
    return _records_of(reader, skip=on_error == "skip", errors=errors)


def _records_of(reader: TraceReader, *, skip: bool, errors: list[TraceError] | None) -> Iterator[TraceRecord]:
    for item in reader.read():
        if type(item) is TraceRecord:
            yield item
        elif isinstance(item, TraceError):
            if not skip:
                raise item
            if errors is not None:
                errors.append(item)
