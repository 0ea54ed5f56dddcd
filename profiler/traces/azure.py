"""The Azure LLM inference trace 2023 (Splitwise): `TIMESTAMP,ContextTokens,GeneratedTokens`."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from profiler.traces.base import CsvTraceReader, RowError, TraceRecord, count

# `2023-11-16 18:15:46.6805900`: seven fractional digits, which datetime cannot hold, and a regex plus
# a per-day cache is several times faster than a general datetime parser
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d+)?")


class AzureReader(CsvTraceReader):
    """Reads an Azure LLM inference trace; arrivals count from the first row's TIMESTAMP."""

    name = "azure"

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._day_numbers: dict[str, int] = {}
        self._origin: tuple[int, int, float] | None = None

    def bind(self, header: list[str]) -> None:
        found = self.find_columns(header, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
        self._timestamp_at = found["TIMESTAMP"]
        self._prompt_at = found["ContextTokens"]
        self._output_at = found["GeneratedTokens"]

    def parse(self, row: list[str], line: int) -> TraceRecord:
        day, second_of_day, fraction = self._timestamp(row[self._timestamp_at])
        prompt_tokens = count(row[self._prompt_at], "ContextTokens")
        output_tokens = count(row[self._output_at], "GeneratedTokens")
        if self._origin is None:
            self._origin = (day, second_of_day, fraction)
        origin_day, origin_second, origin_fraction = self._origin
        # whole seconds and fractions apart, so the 100 ns digits survive the subtraction
        whole_seconds = (day - origin_day) * 86400 + second_of_day - origin_second
        return TraceRecord(
            arrival_s=whole_seconds + (fraction - origin_fraction),
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            record_id=self.record_id(line),
            line=line,
        )

    def _timestamp(self, value: str) -> tuple[int, int, float]:
        """The day number, whole second of the day and fraction of a second of a TIMESTAMP."""
        match = _TIMESTAMP.fullmatch(value)
        if match is None:
            raise RowError("TIMESTAMP", f"{value!r} is not a timestamp like '2023-11-16 18:15:46.6805900'")
        day_text, hours, minutes, secs, fraction = match.groups()
        day = self._day_numbers.get(day_text)
        if day is None:
            try:
                day = date.fromisoformat(day_text).toordinal()
            except ValueError:
                raise RowError("TIMESTAMP", f"{value!r} has no such date") from None
            self._day_numbers[day_text] = day
        hour, minute, second = int(hours), int(minutes), int(secs)
        if hour > 23 or minute > 59 or second > 59:
            raise RowError("TIMESTAMP", f"{value!r} has no such time of day")
        return day, hour * 3600 + minute * 60 + second, float(fraction) if fraction else 0.0
