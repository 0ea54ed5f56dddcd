from __future__ import annotations

import pytest

from profiler.traces import TraceError, parse_columns, read_trace


def test_parse_columns_reads_a_field_to_column_list():
    assert parse_columns("prompt_tokens=input_length, output_tokens=output_length,arrival=timestamp") == {
        "prompt_tokens": "input_length",
        "output_tokens": "output_length",
        "arrival": "timestamp",
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("prompt_tokens=a,output_tokens", "output_tokens"),
        ("prompt_tokens=a,output_tokens=b,colour=c", "colour"),
        ("prompt_tokens=a", "output_tokens"),
        ("prompt_tokens=a,output_tokens=b,prompt_tokens=c", "prompt_tokens"),
        ("prompt_tokens=a,output_tokens=b,arrival=t,arrival_ms=u", "arrival_ms"),
    ],
)
def test_parse_columns_rejects_a_bad_mapping_naming_the_field(spec, field):
    with pytest.raises(TraceError) as caught:
        parse_columns(spec)
    assert caught.value.field == field


def test_a_mapped_csv_reads_seconds_from_the_first_row(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("ts,in,out,who\n1700000000.5,100,7,alice\n1700000002,50,3,\n")
    columns = parse_columns("arrival=ts,prompt_tokens=in,output_tokens=out,client=who")
    first, second = read_trace(path, "csv", columns=columns)
    assert (first.arrival_s, first.prompt_tokens, first.output_tokens, first.client) == (0.0, 100, 7, "alice")
    assert (second.arrival_s, second.client) == (1.5, None)


def test_arrival_ms_is_milliseconds(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"t": 1000, "i": 1, "o": 2}\n{"t": 3500, "i": 1, "o": 2}\n')
    columns = {"arrival_ms": "t", "prompt_tokens": "i", "output_tokens": "o"}
    assert [record.arrival_s for record in read_trace(path, "jsonl", columns=columns)] == [0.0, 2.5]


def test_a_csv_without_an_arrival_column_is_a_batch_trace(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("question,prompt_len,answer_len\nwhy,12,30\nhow,8,20\n")
    columns = {"prompt_tokens": "prompt_len", "output_tokens": "answer_len"}
    records = list(read_trace(path, "csv", columns=columns))
    assert [(record.arrival_s, record.prompt_tokens) for record in records] == [(None, 12), (None, 8)]


def test_a_csv_named_like_the_record_needs_no_mapping(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens,model,max_tokens\n5,10,2,llama,64\n")
    (record,) = read_trace(path, "csv")
    assert (record.arrival_s, record.prompt_tokens, record.model, record.max_tokens) == (0.0, 10, "llama", 64)


def test_a_jsonl_mapping_reaches_into_nested_objects(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"id": "r1", "usage": {"prompt_tokens": 30, "completion_tokens": 4}, "model": "m"}\n')
    columns = parse_columns(
        "prompt_tokens=usage.prompt_tokens,output_tokens=usage.completion_tokens,record_id=id"
    )
    (record,) = read_trace(path, "jsonl", columns=columns)
    assert (record.prompt_tokens, record.output_tokens, record.record_id, record.arrival_s) == (
        30,
        4,
        "r1",
        None,
    )


def test_a_jsonl_without_a_mapping_reads_record_fields_and_may_lack_arrivals(tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text('{"prompt_tokens": 3, "output_tokens": 4, "cached_prompt_tokens": 2, "extra": true}\n')
    (record,) = read_trace(path, "jsonl")
    assert (record.arrival_s, record.prompt_tokens, record.output_tokens, record.cached_prompt_tokens) == (
        None,
        3,
        4,
        2,
    )


def test_a_mapped_arrival_missing_from_a_jsonl_line_is_an_error(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"t": 1, "i": 1, "o": 1}\n{"i": 1, "o": 1}\n')
    columns = {"arrival": "t", "prompt_tokens": "i", "output_tokens": "o"}
    with pytest.raises(TraceError, match=r"trace.jsonl line 2, field t: missing"):
        list(read_trace(path, "jsonl", columns=columns))


def test_cached_tokens_beyond_the_prompt_are_an_error(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("p,o,c\n10,1,11\n")
    columns = {"prompt_tokens": "p", "output_tokens": "o", "cached_prompt_tokens": "c"}
    with pytest.raises(TraceError, match=r"line 2, field c: 11 cached tokens exceed the 10 prompt tokens"):
        list(read_trace(path, "csv", columns=columns))
