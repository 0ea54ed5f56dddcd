from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from profiler.errors import ProfilerError
from profiler.traces import FORMATS, TraceError, read_trace

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:15:46.6805900,{prompt},{output}\n"


def _azure(tmp_path: Path, *rows: str, name: str = "AzureLLMInferenceTrace_code.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows))
    return path


def test_the_registry_offers_every_format():
    assert set(FORMATS) == {"azure", "mooncake", "burstgpt", "jsonl", "csv", "records"}


def test_an_unknown_format_is_refused_at_once(tmp_path):
    with pytest.raises(TraceError, match="unknown trace format 'parquet'; known: azure"):
        read_trace(_azure(tmp_path), "parquet")


def test_a_missing_file_is_refused_at_once_naming_it(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(TraceError, match=r"nope.csv: no such trace file") as caught:
        read_trace(missing, "azure")
    assert caught.value.path == str(missing)


def test_a_fixed_format_refuses_a_column_mapping(tmp_path):
    with pytest.raises(TraceError, match="takes no column mapping"):
        read_trace(_azure(tmp_path), "azure", columns={"prompt_tokens": "a", "output_tokens": "b"})


def test_a_missing_column_is_an_error_at_the_header_naming_the_columns_found(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,3\n")
    with pytest.raises(TraceError) as caught:
        list(read_trace(path, "azure"))
    error = caught.value
    assert (error.line, error.field) == (1, "GeneratedTokens")
    assert str(error) == (
        "trace.csv line 1, field GeneratedTokens: missing column GeneratedTokens; "
        "columns found: TIMESTAMP, ContextTokens"
    )


def test_a_missing_column_stops_even_a_skipping_read(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("Timestamp,Model\n5,ChatGPT\n")
    with pytest.raises(TraceError, match="field Request tokens: missing column"):
        list(read_trace(path, "burstgpt", on_error="skip"))


def test_a_non_integer_names_the_file_line_and_field(tmp_path):
    path = _azure(tmp_path, *[ROW.format(prompt=1, output=1)] * 15, ROW.format(prompt="abc", output=1))
    with pytest.raises(TraceError) as caught:
        list(read_trace(path, "azure"))
    assert str(caught.value) == (
        "AzureLLMInferenceTrace_code.csv line 17, field ContextTokens: 'abc' is not a non-negative integer"
    )
    assert (caught.value.line, caught.value.field) == (17, "ContextTokens")
    assert caught.value.path == str(path)


@pytest.mark.parametrize("bad", ["-3", "2.5", ""])
def test_negative_or_fractional_tokens_are_errors(tmp_path, bad):
    path = _azure(tmp_path, ROW.format(prompt=5, output=bad))
    with pytest.raises(
        TraceError, match=rf"line 2, field GeneratedTokens: '{bad}' is not a non-negative integer"
    ):
        list(read_trace(path, "azure"))


def test_negative_tokens_in_json_are_errors(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"timestamp": 0, "input_length": -1, "output_length": 2}\n')
    with pytest.raises(TraceError, match=r"trace.jsonl line 1, field input_length: -1 is not a non-negative"):
        list(read_trace(path, "mooncake"))


@pytest.mark.parametrize(
    ("timestamp", "detail"),
    [
        ("yesterday", "is not a timestamp"),
        ("2023-02-30 10:00:00.0000000", "has no such date"),
        ("2023-11-16 25:00:00.0000000", "has no such time of day"),
    ],
)
def test_a_malformed_azure_timestamp_is_an_error(tmp_path, timestamp, detail):
    path = _azure(tmp_path, f"{timestamp},1,1\n")
    with pytest.raises(TraceError, match=rf"line 2, field TIMESTAMP: '{timestamp}' {detail}"):
        list(read_trace(path, "azure"))


def test_a_negative_arrival_is_an_error(tmp_path):
    path = tmp_path / "burst.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n-4,GPT-4,1,1,2,API log\n"
    )
    with pytest.raises(TraceError, match=r"burst.csv line 2, field Timestamp: '-4' is a negative time"):
        list(read_trace(path, "burstgpt"))


def test_a_broken_json_line_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 1, "output_length": 2}\n{"timestamp": 1, "input_len\n')
    with pytest.raises(TraceError, match=r"trace.jsonl line 2: not valid JSON") as caught:
        list(read_trace(path, "mooncake"))
    assert caught.value.line == 2


def test_a_json_line_that_is_not_an_object_is_an_error(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(TraceError, match=r"line 1: expected a JSON object, found list"):
        list(read_trace(path, "records"))


def test_a_short_row_names_the_first_field_it_lacks(tmp_path):
    path = _azure(tmp_path, "2023-11-16 18:15:46.6805900,5\n")
    with pytest.raises(
        TraceError, match=r"line 2, field GeneratedTokens: missing: the row has only 2 fields"
    ):
        list(read_trace(path, "azure"))


def test_skip_mode_skips_bad_rows_and_collects_their_errors(tmp_path):
    path = _azure(
        tmp_path,
        ROW.format(prompt=1, output=1),
        ROW.format(prompt="x", output=1),
        ROW.format(prompt=2, output=-2),
        ROW.format(prompt=3, output=3),
    )
    errors: list[TraceError] = []
    records = list(read_trace(path, "azure", on_error="skip", errors=errors))
    assert [record.prompt_tokens for record in records] == [1, 3]
    assert [(error.line, error.field) for error in errors] == [(3, "ContextTokens"), (4, "GeneratedTokens")]


def test_skip_mode_skips_broken_json_and_keeps_the_prefix_cache_of_good_lines(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text(
        '{"timestamp": 0, "input_length": 512, "output_length": 1, "hash_ids": [1]}\n'
        "not json\n"
        '{"timestamp": 1, "input_length": 512, "output_length": 1, "hash_ids": ["a"]}\n'
        '{"timestamp": 2, "input_length": 600, "output_length": 1, "hash_ids": [1, 2]}\n'
    )
    errors: list[TraceError] = []
    records = list(read_trace(path, "mooncake", on_error="skip", errors=errors))
    assert [record.cached_prompt_tokens for record in records] == [0, 512]
    assert [(error.line, error.field) for error in errors] == [(2, None), (3, "hash_ids")]


@pytest.mark.parametrize(
    ("fmt", "content"), [("azure", HEADER), ("azure", ""), ("mooncake", ""), ("records", "\n\n")]
)
def test_an_empty_trace_yields_nothing(tmp_path, fmt, content):
    path = tmp_path / "empty"
    path.write_text(content)
    assert list(read_trace(path, fmt)) == []


def test_a_trace_error_is_a_profiler_error_that_survives_pickling(tmp_path):
    path = _azure(tmp_path, ROW.format(prompt="x", output=1))
    with pytest.raises(ProfilerError) as caught:
        list(read_trace(path, "azure"))
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (str(copy), copy.path, copy.line, copy.field) == (
        str(caught.value),
        str(path),
        2,
        "ContextTokens",
    )


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + ROW.format(prompt=4, output=5)).encode())
    assert [record.prompt_tokens for record in read_trace(path, "azure")] == [4]


def test_a_byte_that_is_not_utf8_is_reported_on_its_own_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + ROW.format(prompt=1, output=1)).encode() + b"2023-11-16 18:15:47.0,\xe9,1\n")
    with pytest.raises(TraceError, match=r"latin1.csv line 3: not UTF-8 text") as caught:
        list(read_trace(path, "azure", on_error="skip"))
    assert caught.value.line == 3


def test_a_json_line_that_is_not_utf8_can_be_skipped(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_bytes(
        b'{"prompt_tokens": 1, "output_tokens": "\xe9"}\n{"prompt_tokens": 2, "output_tokens": 3}\n'
    )
    errors: list[TraceError] = []
    records = list(read_trace(path, "records", on_error="skip", errors=errors))
    assert [record.prompt_tokens for record in records] == [2]
    assert [error.line for error in errors] == [1]
