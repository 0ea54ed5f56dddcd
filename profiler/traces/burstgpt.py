"""The BurstGPT trace: `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profiler.traces.base import CsvTraceReader, TraceRecord, count, seconds, text


class BurstGPTReader(CsvTraceReader):
    """Reads a BurstGPT trace. Timestamps are seconds; a row with no response tokens is a failed request.

    `Model` becomes the record's model and `Log Type` (`Conversation log`, `API log`) its client.
    `Total tokens` is not read, and later releases' extra columns are ignored.
    """

    name = "burstgpt"

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._origin: float | None = None

    def bind(self, header: list[str]) -> None:
        found = self.find_columns(
            header, ("Timestamp", "Model", "Request tokens", "Response tokens", "Log Type")
        )
        self._timestamp_at = found["Timestamp"]
        self._model_at = found["Model"]
        self._prompt_at = found["Request tokens"]
        self._output_at = found["Response tokens"]
        self._log_type_at = found["Log Type"]

    def parse(self, row: list[str], line: int) -> TraceRecord:
        timestamp = seconds(row[self._timestamp_at], "Timestamp")
        output_tokens = count(row[self._output_at], "Response tokens")
        if self._origin is None:
            self._origin = timestamp
        return TraceRecord(
            arrival_s=timestamp - self._origin,
            prompt_tokens=count(row[self._prompt_at], "Request tokens"),
            output_tokens=output_tokens,
            record_id=self.record_id(line),
            line=line,
            model=text(row[self._model_at], "Model"),
            client=text(row[self._log_type_at], "Log Type"),
            status="ok" if output_tokens else "failed",
        )
