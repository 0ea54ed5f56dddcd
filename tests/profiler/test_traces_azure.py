from __future__ import annotations

import time
from pathlib import Path

import pytest

from profiler.traces import read_trace

AZURE = Path(__file__).resolve().parents[2] / "data" / "traces" / "azure_llm_2023"
CODE = AZURE / "AzureLLMInferenceTrace_code.csv"
CONV = AZURE / "AzureLLMInferenceTrace_conv.csv"


@pytest.mark.parametrize(("path", "rows"), [(CODE, 8819), (CONV, 19366)])
def test_it_reads_every_row(path, rows):
    assert sum(1 for _ in read_trace(path, "azure")) == rows


def test_the_first_rows_hold_the_files_values():
    first, second = list(read_trace(CONV, "azure"))[:2]
    assert (first.prompt_tokens, first.output_tokens) == (374, 44)
    assert (second.prompt_tokens, second.output_tokens) == (396, 109)
    assert first.line == 2
    assert second.line == 3


def test_arrivals_start_at_zero_and_keep_the_100ns_digits():
    first, second = list(read_trace(CONV, "azure"))[:2]
    assert first.arrival_s == 0.0
    # 18:15:50.9951690 - 18:15:46.6805900
    assert second.arrival_s == pytest.approx(4.314579, abs=1e-9)


@pytest.mark.parametrize("path", [CODE, CONV])
def test_each_trace_spans_about_an_hour(path):
    arrivals = [record.arrival_s for record in read_trace(path, "azure")]
    assert arrivals[0] == 0.0
    assert 3300 < max(arrivals) < 3700


def test_record_ids_are_stable_across_reads_and_unique():
    ids = [record.record_id for record in read_trace(CODE, "azure")]
    assert ids == [record.record_id for record in read_trace(CODE, "azure")]
    assert len(set(ids)) == len(ids)


def test_a_day_boundary_in_the_trace_adds_a_day(tmp_path):
    path = tmp_path / "midnight.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 23:59:59.5000000,10,1\n"
        "2023-11-17 00:00:00.2500000,20,2\n"
    )
    assert [record.arrival_s for record in read_trace(path, "azure")] == [0.0, 0.75]


def test_reading_the_conversation_trace_takes_well_under_half_a_second():
    best = min(_time_one_read() for _ in range(3))
    assert best < 0.25


def _time_one_read() -> float:
    started = time.perf_counter()
    for _ in read_trace(CONV, "azure"):
        pass
    return time.perf_counter() - started
