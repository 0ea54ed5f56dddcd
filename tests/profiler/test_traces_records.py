from __future__ import annotations

import io
from pathlib import Path

import pytest

from profiler.traces import TraceRecord, read_trace, write_records

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (TRACES / "mooncake" / "conversation_trace_head1000.jsonl", "mooncake"),
        (TRACES / "burstgpt" / "BurstGPT_1_head.csv", "burstgpt"),
        (TRACES / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv", "azure"),
    ],
)
def test_a_trace_exported_as_records_reads_back_unchanged(tmp_path, path, fmt):
    original = list(read_trace(path, fmt))
    export = tmp_path / "export.jsonl"
    with export.open("w") as fh:
        assert write_records(original, fh) == len(original)
    assert list(read_trace(export, "records")) == original


def test_a_batch_record_keeps_its_missing_arrival_and_labels(tmp_path):
    record = TraceRecord(
        arrival_s=None,
        prompt_tokens=5,
        output_tokens=6,
        cached_prompt_tokens=4,
        record_id="x",
        line=9,
        model="m",
        endpoint="/v1/completions",
        client="c",
        max_tokens=64,
        hash_ids=(3, 1),
        status="failed",
    )
    buffer = io.StringIO()
    write_records([record], buffer)
    export = tmp_path / "export.jsonl"
    export.write_text(buffer.getvalue())
    assert list(read_trace(export, "records")) == [record]


def test_records_ignore_the_keys_a_request_record_export_adds(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text(
        '{"arrival_s": 1.5, "prompt_tokens": 3, "output_tokens": 4, "ttft_s": 0.2, "service": "chat"}\n'
        '{"arrival_s": -0.5, "prompt_tokens": 1, "output_tokens": 1}\n'
    )
    first, second = read_trace(path, "records")
    assert (first.arrival_s, first.prompt_tokens, first.output_tokens, first.line) == (1.5, 3, 4, 1)
    assert first.record_id is not None
    assert first.record_id.endswith(":1")
    # an unsorted trace's rows before its first row have negative arrivals, and an export keeps them
    assert second.arrival_s == -0.5
