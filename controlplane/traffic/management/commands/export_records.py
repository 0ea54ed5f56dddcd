"""`manage.py export_records --service NAME FILE`: a service's request records as Cleave's `records` trace."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.traffic.models import RecordStatus, RequestRecord, Service
from profiler.traces import TraceRecord, write_records


class Command(BaseCommand):
    help = "Export a service's request records (read back with import_trace --format records, or python -m profiler)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--service", required=True)
        parser.add_argument("--since", type=datetime.fromisoformat, help="ISO time; default: all records")

    def handle(self, *args: Any, file: Path, service: str, since: datetime | None, **options: Any) -> None:
        try:
            target = Service.objects.get(name=service)
        except Service.DoesNotExist:
            raise CommandError(f"--service: no service named {service!r}") from None
        rows = RequestRecord.objects.filter(service=target).order_by("arrival_at", "id")
        if since is not None:
            rows = rows.filter(arrival_at__gte=since)
        first = rows.values_list("arrival_at", flat=True).first()
        with file.open("w") as fh:
            written = write_records(
                (
                    TraceRecord(
                        arrival_s=(row.arrival_at - first).total_seconds() if first else 0.0,
                        prompt_tokens=row.prompt_tokens, output_tokens=row.output_tokens,
                        cached_prompt_tokens=row.cached_prompt_tokens, record_id=str(row.id), line=line,
                        endpoint=row.endpoint or None, client=row.client or None, max_tokens=row.max_tokens,
                        status="ok" if row.status == RecordStatus.OK else "failed",
                    )
                    for line, row in enumerate(rows.iterator(), start=1)
                ),
                fh,
            )
        self.stdout.write(f"wrote {written} records to {file}")
