"""Bad requests get OpenAI-shaped errors that name the field, and change nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.agents.engines.conftest import SimWorker


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    return dict(body["error"])


def test_a_body_that_is_not_json_is_a_400(colocated: SimWorker) -> None:
    response = httpx.post(f"{colocated.url}/v1/completions", content=b"{not json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"max_tokens": 3}, "prompt"),
        ("/v1/completions", {"prompt": ""}, "prompt"),
        ("/v1/completions", {"prompt": {"text": "hi"}}, "prompt"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": "ten"}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "stream": "yes"}, "stream"),
        ("/v1/completions", {"prompt": "hi", "n": 2}, "n"),
        ("/v1/completions", {"prompt": "hi", "kv_transfer_params": [1]}, "kv_transfer_params"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"content": "no role"}]}, "messages[0]"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field(
    colocated: SimWorker, path: str, body: dict[str, object], param: str
) -> None:
    response = httpx.post(f"{colocated.url}{path}", json=body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param


def test_an_unknown_model_is_a_404(colocated: SimWorker) -> None:
    response = httpx.post(f"{colocated.url}/v1/completions", json={"model": "gpt-9", "prompt": "hi"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found"
    assert "gpt-9" in str(error["message"])


def test_a_request_over_the_context_length_is_a_400_as_vllm_words_it(colocated: SimWorker) -> None:
    response = httpx.post(
        f"{colocated.url}/v1/completions", json={"prompt": list(range(131000)), "max_tokens": 100}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length is 131072 tokens" in str(error["message"])
    assert "you requested 131100 tokens" in str(error["message"])


def test_rejected_requests_count_nowhere(colocated: SimWorker) -> None:
    before = colocated.metrics()
    httpx.post(f"{colocated.url}/v1/completions", json={"prompt": "hi", "max_tokens": -1})
    after = colocated.metrics()
    assert after.prompt_tokens_total == before.prompt_tokens_total
    assert after.requests_finished_total == before.requests_finished_total
