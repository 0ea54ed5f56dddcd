"""`manage.py import_trace --format azure FILE --service NAME`: load a trace into request records."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from controlplane.traffic.models import Service
from controlplane.traffic.trace_import import trace_import
from profiler.traces import FORMATS, TraceError, parse_columns


class Command(BaseCommand):
    help = "Import a request trace (Azure, Mooncake, BurstGPT, generic CSV/JSONL, Cleave records) into a service."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--service", required=True, help="the service's name")
        parser.add_argument("--columns", help="for csv/jsonl: prompt_tokens=input_length,output_tokens=...,arrival=ts")
        parser.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                            help="raise: stop at the first malformed row (default); skip: skip and count them")
        parser.add_argument("--start", type=datetime.fromisoformat,
                            help="ISO time of the trace's first request (default: the last one arrives now)")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args: Any, file: Path, fmt: str, service: str, columns: str | None, on_error: str,
               start: datetime | None, batch_size: int, **options: Any) -> None:
        try:
            target = Service.objects.get(name=service)
        except Service.DoesNotExist:
            raise CommandError(f"--service: no service named {service!r}") from None
        if start is not None and start.tzinfo is None:
            raise CommandError("--start: give a timezone, e.g. 2026-01-01T00:00:00+00:00")
        if batch_size < 1:
            raise CommandError("--batch-size: must be at least 1")
        try:
            mapping = parse_columns(columns) if columns else None
            with tqdm(unit=" records", disable=None, file=sys.stderr) as bar:
                report = trace_import(
                    path=file, fmt=fmt, service=target, start=start, columns=mapping, on_error=on_error,  # type: ignore[arg-type]
                    batch_size=batch_size, progress=bar.update,
                )
        except TraceError as exc:
            raise CommandError(f"{exc} (nothing of the batch holding this row was written)") from None
        self.stdout.write(
            f"read {report.read} records: {report.stored} stored, {report.duplicates} already there, "
            f"{len(report.skipped_rows)} malformed rows skipped"
        )
        for error in report.skipped_rows[:20]:
            self.stderr.write(f"  skipped: {error}")
        if len(report.skipped_rows) > 20:
            self.stderr.write(f"  ... and {len(report.skipped_rows) - 20} more")
