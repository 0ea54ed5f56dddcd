from __future__ import annotations

from pathlib import Path

import pytest

from profiler.traces import read_trace

MOONCAKE = Path(__file__).resolve().parents[2] / "data" / "traces" / "mooncake"
CONVERSATION = MOONCAKE / "conversation_trace_head1000.jsonl"
SYNTHETIC = MOONCAKE / "synthetic_trace_head600.jsonl"


@pytest.mark.parametrize(("path", "rows"), [(CONVERSATION, 1000), (SYNTHETIC, 600)])
def test_it_reads_every_line(path, rows):
    assert sum(1 for _ in read_trace(path, "mooncake")) == rows


def test_the_first_line_holds_the_files_values():
    first = next(read_trace(CONVERSATION, "mooncake"))
    assert (first.arrival_s, first.prompt_tokens, first.output_tokens) == (0.0, 6758, 500)
    assert first.hash_ids == tuple(range(14))
    assert first.line == 1


def test_timestamps_in_milliseconds_become_seconds():
    last = list(read_trace(CONVERSATION, "mooncake"))[-1]
    assert last.arrival_s == 330.0


def test_the_first_request_finds_nothing_cached():
    assert next(read_trace(CONVERSATION, "mooncake")).cached_prompt_tokens == 0


def test_a_request_sharing_the_first_block_of_an_earlier_one_has_512_cached_tokens():
    second = list(read_trace(CONVERSATION, "mooncake"))[1]
    assert second.hash_ids[0] == 0
    assert second.cached_prompt_tokens == 512


def test_a_repeated_prompt_is_cached_whole_including_its_partial_last_block():
    records = list(read_trace(SYNTHETIC, "mooncake"))
    earlier, repeat = records[15], records[74]
    assert earlier.hash_ids == repeat.hash_ids
    assert earlier.cached_prompt_tokens == 0
    assert repeat.cached_prompt_tokens == repeat.prompt_tokens == 2752


def test_only_the_leading_run_of_seen_blocks_counts(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text(
        '{"timestamp": 0, "input_length": 2048, "output_length": 1, "hash_ids": [1, 2, 3, 4]}\n'
        '{"timestamp": 5, "input_length": 2048, "output_length": 1, "hash_ids": [1, 2, 9, 4]}\n'
        '{"timestamp": 9, "input_length": 1024, "output_length": 1, "hash_ids": [7, 1]}\n'
    )
    assert [record.cached_prompt_tokens for record in read_trace(path, "mooncake")] == [0, 1024, 0]
