"""A bounded on-disk spool of request records, for while the control plane cannot take them.

Records go into append-only segment files (``seg-<number>.jsonl``, one JSON record a line), a batch at
a time, fsync'd before ``append`` returns. A segment is sealed when it holds SEGMENT_RECORDS records or
when delivery starts; sealed segments are sent whole, oldest first, and deleted once acknowledged.
The control plane stores records idempotently by id, so a segment resent after a lost answer stores
nothing twice. Beyond ``max_bytes`` the oldest segments are deleted and their records counted as
dropped. A segment the control plane refuses as malformed (400) is moved to ``rejected/`` to be looked
at, not retried forever. A torn last line (a crash mid-write) is skipped when the segment is read.

Synchronous and not thread-safe: the record sender calls it from one worker thread at a time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("cleave.router.spool")

SEGMENT_RECORDS = 5_000
_PREFIX, _SUFFIX = "seg-", ".jsonl"


@dataclass(frozen=True)
class Segment:
    """A sealed segment: its file and its records."""

    path: Path
    records: list[dict[str, Any]]


class Spool:
    """Segment files under ``directory``; ``max_bytes`` bounds their total size."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.directory = directory
        self.max_bytes = max_bytes
        self.rejected_dir = directory / "rejected"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dropped_records = 0
        self._sizes: dict[Path, int] = {}
        for path in self._segment_paths():
            self._sizes[path] = path.stat().st_size
        numbers = [self._number(path) for path in self._sizes]
        self._next = max(numbers, default=0) + 1
        # Segments left by an earlier run are sealed; new records start a new one.
        self._open: Path | None = None
        self._open_records = 0

    def _segment_paths(self) -> list[Path]:
        return sorted(
            (path for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}") if path.is_file()), key=self._number
        )

    @staticmethod
    def _number(path: Path) -> int:
        try:
            return int(path.name[len(_PREFIX) : -len(_SUFFIX)])
        except ValueError:
            return 0

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def segments(self) -> int:
        return len(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write a batch to the open segment (a new one when full) and fsync it."""
        if not records:
            return
        if self._open is None or self._open_records + len(records) > SEGMENT_RECORDS:
            self.seal()
            self._open = self.directory / f"{_PREFIX}{self._next:012d}{_SUFFIX}"
            self._next += 1
            self._open_records = 0
        data = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records).encode()
        new_file = not self._open.exists()
        with self._open.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if new_file:
            _fsync_dir(self.directory)
        self._open_records += len(records)
        self._sizes[self._open] = self._sizes.get(self._open, 0) + len(data)
        self._trim()

    def seal(self) -> None:
        """Close the open segment: the next append starts a new one, and this one may be sent."""
        self._open, self._open_records = None, 0

    def _trim(self) -> None:
        while self.bytes > self.max_bytes and self._sizes:
            oldest = next(iter(sorted(self._sizes, key=self._number)))
            dropped = len(self._read(oldest))
            self._remove(oldest)
            self.dropped_records += dropped
            log.error("spool over %d bytes: dropped %d records of %s", self.max_bytes, dropped, oldest.name)

    def oldest(self) -> Segment | None:
        """The oldest segment, sealed first if it is the open one; None when the spool is empty."""
        if not self._sizes:
            return None
        path = min(self._sizes, key=self._number)
        if path == self._open:
            self.seal()
        return Segment(path, self._read(path))

    def acknowledge(self, segment: Segment) -> None:
        """The control plane stored the segment's records: delete it."""
        self._remove(segment.path)

    def reject(self, segment: Segment) -> Path:
        """The control plane refused the segment as malformed: move it aside; where it went."""
        self.rejected_dir.mkdir(exist_ok=True)
        target = self.rejected_dir / segment.path.name
        os.replace(segment.path, target)
        self._sizes.pop(segment.path, None)
        return target

    def reject_batch(self, records: list[dict[str, Any]]) -> Path:
        """Keep a refused batch that never reached the spool in ``rejected/``; where it went."""
        self.rejected_dir.mkdir(exist_ok=True)
        target = self.rejected_dir / f"batch-{self._next:012d}{_SUFFIX}"
        self._next += 1
        target.write_text("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))
        return target

    def _remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sizes.pop(path, None)
        if path == self._open:
            self.seal()

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return records
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("skipping unreadable line %d of spool segment %s", number, path.name)
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
