"""The trace record every reader yields, the reader base classes and their registry, and value checks."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from profiler.errors import TraceError


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One request of a trace: when it arrived, how long its prompt and its answer were."""

    arrival_s: float | None
    prompt_tokens: int
    output_tokens: int
    cached_prompt_tokens: int = 0
    record_id: str | None = None
    line: int = 0
    model: str | None = None
    endpoint: str | None = None
    client: str | None = None
    max_tokens: int | None = None
    hash_ids: tuple[int, ...] = ()
    status: str = "ok"


READERS: dict[str, type[TraceReader]] = {}


class RowError(Exception):
    """A bad value in one row; the reader's loop adds the file and line to make it a TraceError."""

    def __init__(self, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class TraceReader(ABC):
    """One trace format. A subclass that sets `name` registers itself; one instance reads one file once.

    `read` yields a TraceRecord per good row and a TraceError per bad row (the caller decides whether to
    stop or skip), and raises TraceError for what no row can survive: a missing column, a CSV line that
    is not UTF-8.
    """

    name: ClassVar[str]
    takes_columns: ClassVar[bool] = False

    def __init__(self, path: Path, *, digest: str, columns: Mapping[str, str] | None = None) -> None:
        if columns is not None and not self.takes_columns:
            raise TraceError(
                f"{path.name}: format {self.name!r} has fixed columns and takes no column mapping",
                path=str(path),
            )
        self.path = path
        self.digest = digest
        self.columns = columns

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            READERS[cls.name] = cls

    @abstractmethod
    def read(self) -> Iterator[TraceRecord | TraceError]:
        """Each row as a TraceRecord, or as the TraceError that says what is wrong with it."""

    def record_id(self, line: int) -> str:
        """The id a row gets when the file gives none: the same file gives the same ids on every import."""
        return f"{self.digest}:{line}"

    def error(self, line: int | None, field: str | None, detail: str) -> TraceError:
        """A TraceError whose message names the file, the line and the field."""
        where = self.path.name if line is None else f"{self.path.name} line {line}"
        if field is not None:
            where = f"{where}, field {field}"
        return TraceError(f"{where}: {detail}", path=str(self.path), line=line, field=field)

    def _open(self) -> BinaryIO:
        # read as bytes and decoded line by line, so a bad byte is reported on its own line (a text file
        # decodes a whole buffer ahead of the line being read)
        return self.path.open("rb")

    @staticmethod
    def _decode(raw: bytes, line: int) -> str:
        text = raw.decode("utf-8")
        # spreadsheet exports start with a byte-order mark, which would hide the first column's name
        return text.removeprefix("\ufeff") if line == 1 else text

    def _text_lines(self, fh: BinaryIO) -> Iterator[str]:
        for line, raw in enumerate(fh, 1):
            try:
                yield self._decode(raw, line)
            except UnicodeDecodeError as exc:
                raise self.error(line, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None


class CsvTraceReader(TraceReader):
    """A CSV trace with a header line: `bind` finds the columns, `parse` turns one row into a record."""

    _width = 0
    _columns_found: dict[str, int]

    @abstractmethod
    def bind(self, header: list[str]) -> None:
        """Find the format's columns in the header (a missing one raises TraceError at line 1)."""

    @abstractmethod
    def parse(self, row: list[str], line: int) -> TraceRecord:
        """One row as a record (RowError names the bad field)."""

    def read(self) -> Iterator[TraceRecord | TraceError]:
        with self._open() as fh:
            rows = csv.reader(self._text_lines(fh))
            try:
                header = next(rows, None)
                if header is None:
                    return
                try:
                    self.bind([name.strip() for name in header])
                except RowError as exc:
                    raise self.error(rows.line_num, exc.field, exc.detail) from None
                for row in rows:
                    if not row:
                        continue
                    if len(row) < self._width:
                        yield self._short_row(row, rows.line_num)
                        continue
                    try:
                        record = self.parse(row, rows.line_num)
                    except RowError as exc:
                        yield self.error(rows.line_num, exc.field, exc.detail)
                        continue
                    yield record
            except csv.Error as exc:
                raise self.error(rows.line_num, None, f"not readable as CSV: {exc}") from None

    def find_columns(
        self, header: list[str], required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> dict[str, int]:
        """Column positions by name; a missing required column is a RowError naming it and the columns found.

        Rows too short to hold every column found are then reported before `parse` sees them.
        """
        positions: dict[str, int] = {}
        for index, name in enumerate(header):
            positions.setdefault(name, index)
        missing = [name for name in required if name not in positions]
        if missing:
            found = ", ".join(header) or "none"
            raise RowError(missing[0], f"missing column {', '.join(missing)}; columns found: {found}")
        self._columns_found = {name: positions[name] for name in (*required, *optional) if name in positions}
        self._width = max(self._columns_found.values(), default=-1) + 1
        return self._columns_found

    def _short_row(self, row: list[str], line: int) -> TraceError:
        field = next(name for name, index in self._columns_found.items() if index >= len(row))
        return self.error(line, field, f"missing: the row has only {len(row)} fields")


class JsonlTraceReader(TraceReader):
    """A trace of one JSON object per line: `parse` turns one object into a record."""

    @abstractmethod
    def parse(self, obj: dict[str, object], line: int) -> TraceRecord:
        """One JSON object as a record (RowError names the bad field)."""

    def read(self) -> Iterator[TraceRecord | TraceError]:
        with self._open() as fh:
            for line, raw in enumerate(fh, 1):
                if raw.isspace():
                    continue
                try:
                    obj = json.loads(self._decode(raw, line))
                except UnicodeDecodeError as exc:
                    yield self.error(line, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}")
                    continue
                except ValueError as exc:
                    detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                    yield self.error(line, None, f"not valid JSON: {detail}")
                    continue
                if not isinstance(obj, dict):
                    yield self.error(line, None, f"expected a JSON object, found {type(obj).__name__}")
                    continue
                try:
                    record = self.parse(obj, line)
                except RowError as exc:
                    yield self.error(line, exc.field, exc.detail)
                    continue
                yield record


def file_digest(path: str | Path) -> str:
    """A short content digest of a trace file: the prefix of its record ids, so re-imports are idempotent."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()[:16]
    except FileNotFoundError:
        raise TraceError(f"{path}: no such trace file", path=str(path)) from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace file ({exc.strerror})", path=str(path)) from None


_MISSING = object()


def count(value: object, field: str) -> int:
    """`value` (a CSV cell or a JSON value) as a non-negative integer, else a RowError naming `field`."""
    if type(value) is int:
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = _integral_float(value)
    elif isinstance(value, float):
        number = _integral_float(value)
    else:
        number = -1
    if number < 0:
        raise RowError(field, f"{value!r} is not a non-negative integer")
    return number


def _integral_float(value: str | float) -> int:
    # exports from dataframes write counts as 12.0; anything else is -1, which the caller rejects
    try:
        number = float(value)
    except ValueError:
        return -1
    return int(number) if number.is_integer() else -1


def seconds(value: object, field: str, *, signed: bool = False) -> float:
    """`value` as a finite number (of seconds or milliseconds), non-negative unless `signed`, else a RowError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(field, f"{value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise RowError(field, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise RowError(field, f"{value!r} is not a finite number")
    if number < 0 and not signed:
        raise RowError(field, f"{value!r} is a negative time")
    return number


def text(value: object, field: str) -> str | None:
    """`value` as a label: None for an empty cell or a JSON null, a string for a string or a number."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RowError(field, f"{value!r} is not a string")


def lookup(obj: Mapping[str, object], key: str) -> object:
    """`obj[key]`, or a dotted path into nested objects (`usage.prompt_tokens`); `_MISSING` when absent."""
    if key in obj:
        return obj[key]
    if "." not in key:
        return _MISSING
    node: object = obj
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def is_missing(value: object) -> bool:
    """Whether `lookup` found nothing."""
    return value is _MISSING


def required(obj: Mapping[str, object], key: str) -> object:
    """`lookup(obj, key)`, or a RowError naming the key when it is absent."""
    value = lookup(obj, key)
    if value is _MISSING:
        raise RowError(key, "missing")
    return value


def hash_ids(value: object, field: str) -> tuple[int, ...]:
    """A list of prefix-block ids (integers) as a tuple, else a RowError."""
    if not isinstance(value, list):
        raise RowError(field, f"{value!r} is not a list of integers")
    for item in value:
        if type(item) is not int:
            raise RowError(field, f"{item!r} in the list is not an integer")
    return tuple(value)
