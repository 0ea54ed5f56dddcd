"""The sim answers completions and chat as vLLM's OpenAI server does: shapes, usage, SSE framing."""

from __future__ import annotations

import httpx

from agents.engines.sim_protocol import CHAT_TOKENS_PER_MESSAGE
from tests.agents.engines.conftest import SimWorker, read_sse, words


def test_a_completion_counts_prompt_words_and_makes_max_tokens(colocated: SimWorker) -> None:
    answer = httpx.post(
        f"{colocated.url}/v1/completions",
        json={"model": "llama-3.1-8b", "prompt": "the quick brown fox", "max_tokens": 5},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "llama-3.1-8b"
    assert body["choices"][0]["text"] == " tok0 tok1 tok2 tok3 tok4"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 5,
        "total_tokens": 9,
        "prompt_tokens_details": None,
    }
    assert "kv_transfer_params" not in body


def test_a_prompt_of_token_ids_counts_the_ids_and_max_tokens_defaults_to_16(colocated: SimWorker) -> None:
    body = httpx.post(f"{colocated.url}/v1/completions", json={"prompt": list(range(37))}).json()
    assert body["usage"]["prompt_tokens"] == 37
    assert body["usage"]["completion_tokens"] == 16


def test_a_chat_counts_each_messages_words_and_overhead(colocated: SimWorker) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is a GPU"}]},
    ]
    answer = httpx.post(
        f"{colocated.url}/v1/chat/completions", json={"messages": messages, "max_completion_tokens": 3}
    )
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": " tok0 tok1 tok2"}
    assert body["usage"]["prompt_tokens"] == 2 + 4 + 2 * CHAT_TOKENS_PER_MESSAGE
    assert body["usage"]["completion_tokens"] == 3


def test_a_streamed_completion_sends_one_event_per_token_then_done(colocated: SimWorker) -> None:
    body = {"prompt": words(10), "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{colocated.url}/v1/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert [chunk["choices"][0]["text"] for chunk in chunks] == [" tok0", " tok1", " tok2", " tok3"]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "length"]
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_a_streamed_chat_names_the_role_first_and_reports_usage_when_asked(colocated: SimWorker) -> None:
    body = {
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{colocated.url}/v1/chat/completions", json=body) as response:
        events = read_sse(response)
    assert events[-1] == "[DONE]"
    opening, first, second, usage = events[:-1]
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["choices"][0]["delta"] == {"content": " tok0"}
    assert second["choices"][0]["finish_reason"] == "length"
    assert {event["object"] for event in events[:-1]} == {"chat.completion.chunk"}
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 2 + CHAT_TOKENS_PER_MESSAGE
    assert usage["usage"]["completion_tokens"] == 2


def test_the_request_id_header_names_the_completion(colocated: SimWorker) -> None:
    answer = httpx.post(
        f"{colocated.url}/v1/completions",
        json={"prompt": "hi", "max_tokens": 1},
        headers={"X-Request-Id": "r-42"},
    )
    assert answer.json()["id"] == "cmpl-r-42"


def test_models_health_and_metrics_answer(colocated: SimWorker) -> None:
    models = httpx.get(f"{colocated.url}/v1/models").json()
    assert [card["id"] for card in models["data"]] == ["llama-3.1-8b"]
    assert models["data"][0]["max_model_len"] == 131072
    assert httpx.get(f"{colocated.url}/health").status_code == 200
    metrics = httpx.get(f"{colocated.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        'cleave_sim_busy_seconds_total{model_name="llama-3.1-8b",engine="0",phase="prefill"}',
        "cleave_sim_info{",
    ):
        assert name in metrics.text


def test_metrics_count_the_tokens_and_latencies_of_each_request(colocated: SimWorker) -> None:
    before = colocated.metrics()
    httpx.post(f"{colocated.url}/v1/completions", json={"prompt": words(300), "max_tokens": 7})
    after = colocated.metrics()
    assert after.prompt_tokens_total - before.prompt_tokens_total == 300
    assert after.generation_tokens_total - before.generation_tokens_total == 7
    assert after.requests_finished_total - before.requests_finished_total == 1
    assert after.ttft_seconds.count - before.ttft_seconds.count == 1
    assert after.itl_seconds.count - before.itl_seconds.count == 6
    assert after.requests_running == after.requests_waiting == 0
    assert after.kv_cache_usage == 0.0
    assert after.info["role"] == "colocated"
    assert after.info["tier"] == "H100-SXM-80GB"
    assert after.sim is not None
    assert before.sim is not None
    activity = after.sim.minus(before.sim)
    assert activity.prefill_tokens == 300
    assert activity.decode_seqs == 6
    assert activity.prefill_busy_s > 0
    assert activity.decode_busy_s > 0
