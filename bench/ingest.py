"""Records per second through `POST /api/v1/traffic/records` into PostgreSQL, against a raw COPY of the same rows.

    python bench/ingest.py [--json] [--records N] [--batch B]

The endpoint path is measured whole, in process: authentication, JSON parsing, validation of every
record, and the idempotent write (COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING).
The ceiling is psycopg's COPY of the already-parsed rows straight into the table. Both grow linearly
with the number of records. Record lengths come from the Azure conversation trace.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_json_flag, emit
from bench.django_env import ROOT, setup_postgres_django

NAME = "ingest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    add_json_flag(parser)
    args = parser.parse_args()
    setup_postgres_django()

    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from controlplane.accounts.models import User
    from controlplane.accounts.services import token_create
    from controlplane.traffic.ingest import COLUMNS, parse_records
    from controlplane.traffic.models import RequestRecord, Service
    from controlplane.traffic.selectors import service_ids_by_name
    from profiler.traces import read_trace

    service, _ = Service.objects.get_or_create(
        name="bench-ingest", defaults={"model_name": "llama-3.1-8b", "ttft_slo_s": 1.0, "tpot_slo_s": 0.1}
    )
    router, _ = User.objects.get_or_create(username="bench-router", defaults={"role": "router"})
    _, raw_token = token_create(actor=None, user=router, name="bench")
    RequestRecord.objects.filter(service=service).delete()

    trace = list(read_trace(ROOT / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv", "azure"))
    start = time.time() - 3600
    records = []
    for index in range(args.records):
        row = trace[index % len(trace)]
        records.append({
            "id": str(uuid.uuid4()), "service": service.name, "arrival_at": start + (row.arrival_s or 0.0),
            "prompt_tokens": row.prompt_tokens, "output_tokens": row.output_tokens, "ttft_s": 0.25, "tpot_s": 0.02,
            "e2e_s": 0.25 + 0.02 * row.output_tokens, "prefill_worker": "node-001/prefill-0",
            "decode_worker": "node-002/decode-0", "predicted_class": "balanced", "endpoint": "chat",
        })
    bodies = [
        json.dumps({"records": records[i:i + args.batch]}) for i in range(0, len(records), args.batch)
    ]

    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    began = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/traffic/records", body, content_type="application/json")
        assert response.status_code == 200, response.content[:500]
    endpoint_s = time.perf_counter() - began
    stored = RequestRecord.objects.filter(service=service).count()
    assert stored == len(records), (stored, len(records))

    # The ceiling: the same rows, already parsed, COPYed straight into the table.
    services = service_ids_by_name()
    rows = [
        row
        for i in range(0, len(records), args.batch)
        for row in parse_records({"records": records[i:i + args.batch]}, services=services, source="bench", now=timezone.now())
    ]
    RequestRecord.objects.filter(service=service).delete()
    quoted = ", ".join(connection.ops.quote_name(column) for column in COLUMNS)
    began = time.perf_counter()
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {RequestRecord._meta.db_table} ({quoted}) FROM STDIN"
    ) as copy:
        for parsed in rows:
            copy.write_row(parsed)
    copy_s = time.perf_counter() - began
    RequestRecord.objects.filter(service=service).delete()

    records_per_s = len(records) / endpoint_s
    ceiling = len(records) / copy_s
    emit(
        NAME,
        {
            "records_per_s": round(records_per_s),
            "copy_ceiling_records_per_s": round(ceiling),
            "share_of_ceiling": round(records_per_s / ceiling, 3),
            "records": len(records),
            "batch": args.batch,
        },
        [
            {"path": "POST /api/v1/traffic/records", "seconds": endpoint_s, "records_per_s": records_per_s},
            {"path": "raw COPY (ceiling)", "seconds": copy_s, "records_per_s": ceiling},
        ],
        as_json=args.json,
        results_dir=args.results_dir,
    )


if __name__ == "__main__":
    main()
