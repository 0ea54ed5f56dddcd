"""A client that did not stream gets the answer the worker's stream adds up to, as the engine would have sent it."""

from __future__ import annotations

import json
from typing import Any

from agents.router.records import Flight, TokenClock, assemble


def frames(*chunks: dict[str, Any]) -> list[bytes]:
    return [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]


HEAD = {"id": "chatcmpl-1", "created": 7, "model": "m", "system_fingerprint": "fp"}


def test_chat_deltas_tool_calls_and_logprobs_add_up() -> None:
    stream = frames(
        {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**HEAD, "choices": [{"index": 0, "delta": {"content": "Let me"}, "logprobs": {"content": [{"token": "Let"}]}}]},
        {**HEAD, "choices": [{"index": 0, "delta": {"content": " look."}, "logprobs": {"content": [{"token": " look"}]}}]},
        {**HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"ci"}}]}}]},
        {**HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\": 1}"}}]},
                              "finish_reason": "tool_calls"}]},
        {**HEAD, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}},
    )  # fmt: skip
    answer = assemble(stream, chat=True)
    assert answer["object"] == "chat.completion"
    assert (answer["id"], answer["created"], answer["model"], answer["system_fingerprint"]) == ("chatcmpl-1", 7, "m", "fp")
    (choice,) = answer["choices"]
    assert choice["message"]["content"] == "Let me look."
    assert choice["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": 1}"}}
    ]
    assert choice["logprobs"] == {"content": [{"token": "Let"}, {"token": " look"}]}
    assert choice["finish_reason"] == "tool_calls"
    assert answer["usage"]["completion_tokens"] == 9


def test_completion_choices_are_kept_apart_by_index() -> None:
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m"}
    stream = frames(
        {**head, "choices": [{"index": 1, "text": " b0", "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "text": " a0", "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "text": " a1", "finish_reason": "length", "stop_reason": None}]},
        {**head, "choices": [{"index": 1, "text": " b1", "finish_reason": "stop", "stop_reason": "\n"}]},
    )
    answer = assemble(stream, chat=False)
    assert [(c["index"], c["text"], c["finish_reason"], c["stop_reason"]) for c in answer["choices"]] == [
        (0, " a0 a1", "length", None), (1, " b0 b1", "stop", "\n"),
    ]  # fmt: skip
    assert answer["usage"] is None


def test_the_token_clock_times_tokens_across_chunk_boundaries() -> None:
    flight = Flight(service="s", endpoint="completions", client="", arrival_at=0.0, started=0.0, prompt_tokens=3,
                    max_tokens=3, predicted_class="", stream=True)  # fmt: skip
    paid: list[int] = []
    clock = TokenClock(flight, lambda: paid.append(1))
    raw = b"".join(frames(*({"choices": [{"index": 0, "text": f" t{i}"}]} for i in range(3)),
                          {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}}))  # fmt: skip
    seen = []
    for at, start in enumerate(range(0, len(raw), 7)):
        seen += clock.feed(raw[start : start + 7], float(at))
    clock.close()
    assert b"".join(frame for frame, _ in seen) == raw
    assert [usage_only for _, usage_only in seen] == [False, False, False, True, False]
    assert (len(paid), flight.output_tokens, flight.prompt_tokens) == (3, 3, 3)
    assert flight.first_token is not None
    assert flight.last_token is not None
    assert flight.first_token < flight.last_token
