from __future__ import annotations

from collections import Counter
from pathlib import Path

from profiler.traces import read_trace

BURSTGPT = Path(__file__).resolve().parents[2] / "data" / "traces" / "burstgpt" / "BurstGPT_1_head.csv"


def test_it_reads_every_row():
    assert sum(1 for _ in read_trace(BURSTGPT, "burstgpt")) == 400


def test_the_first_row_holds_the_files_values():
    first = next(read_trace(BURSTGPT, "burstgpt"))
    assert (first.prompt_tokens, first.output_tokens) == (472, 18)
    assert first.model == "ChatGPT"
    assert first.client == "Conversation log"
    assert first.status == "ok"


def test_arrivals_count_seconds_from_the_first_row():
    records = list(read_trace(BURSTGPT, "burstgpt"))
    assert [record.arrival_s for record in records[:2]] == [0.0, 40.0]
    assert records[-1].arrival_s == 37274 - 5


def test_rows_without_a_response_are_failed_requests():
    statuses = Counter(record.status for record in read_trace(BURSTGPT, "burstgpt"))
    assert statuses == {"ok": 383, "failed": 17}


def test_models_and_log_types_are_kept():
    records = list(read_trace(BURSTGPT, "burstgpt"))
    assert Counter(record.model for record in records) == {"ChatGPT": 320, "GPT-4": 80}
    assert Counter(record.client for record in records) == {"Conversation log": 398, "API log": 2}
