"""The Mooncake traces (FAST'25): JSONL of `timestamp` (ms), `input_length`, `output_length`, `hash_ids`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profiler.traces.base import JsonlTraceReader, TraceRecord, count, hash_ids, required, seconds

BLOCK_TOKENS = 512


class MooncakeReader(JsonlTraceReader):
    """Reads a Mooncake trace, counting the prompt tokens a prefix cache of all earlier requests would hit.

    `hash_ids` name the prompt's 512-token blocks by prefix, so a request's cached tokens are its leading
    blocks already seen in an earlier request (the last block may be partial, hence the cap at the prompt).
    """

    name = "mooncake"

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._origin_ms: float | None = None
        self._seen_blocks: set[int] = set()

    def parse(self, obj: dict[str, object], line: int) -> TraceRecord:
        timestamp_ms = seconds(required(obj, "timestamp"), "timestamp")
        prompt_tokens = count(required(obj, "input_length"), "input_length")
        output_tokens = count(required(obj, "output_length"), "output_length")
        raw_blocks = obj.get("hash_ids")
        blocks = () if raw_blocks is None else hash_ids(raw_blocks, "hash_ids")
        if self._origin_ms is None:
            self._origin_ms = timestamp_ms
        seen = self._seen_blocks
        cached_blocks = 0
        for block in blocks:
            if block not in seen:
                break
            cached_blocks += 1
        seen.update(blocks)
        return TraceRecord(
            arrival_s=(timestamp_ms - self._origin_ms) / 1000.0,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            cached_prompt_tokens=min(cached_blocks * BLOCK_TOKENS, prompt_tokens),
            record_id=self.record_id(line),
            line=line,
            hash_ids=blocks,
        )
