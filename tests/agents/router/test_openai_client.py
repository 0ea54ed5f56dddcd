"""The official OpenAI client against the router gets what it gets from OpenAI: answers and errors alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.agents.engines.conftest import SimWorker
from tests.agents.router.conftest import (
    KEY,
    MODEL,
    RouterProcess,
    routing,
    running_router,
    running_sim,
    wait_until,
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimWorker, RouterProcess]]:
    directory: Path = tmp_path_factory.mktemp("router")
    with (
        running_sim("colocated", name="c0", time_scale=0.05) as worker,
        running_router(directory, routing(colocated=[worker])) as process,
    ):
        yield worker, process


@pytest.fixture
def router(fleet: tuple[SimWorker, RouterProcess]) -> RouterProcess:
    return fleet[1]


@pytest.fixture
def client(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{router.url}/v1", api_key=KEY, max_retries=0)


def test_it_answers_a_completion(client: openai.OpenAI) -> None:
    answer = client.completions.create(model=MODEL, prompt="the quick brown fox", max_tokens=5)
    assert answer.choices[0].text == " tok0 tok1 tok2 tok3 tok4"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 5)


def test_it_answers_a_chat(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}], max_completion_tokens=3
    )
    assert answer.choices[0].message.content == " tok0 tok1 tok2"
    assert answer.usage.completion_tokens == 3


def test_it_streams_a_completion_without_usage_unless_asked(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model=MODEL, prompt="one two three", max_tokens=4, stream=True))
    assert "".join(chunk.choices[0].text for chunk in chunks) == " tok0 tok1 tok2 tok3"
    assert all(chunk.choices for chunk in chunks)  # the router asked for usage; the client did not


def test_it_streams_a_chat_with_usage_when_asked(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == " tok0 tok1 tok2"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/completions", {"prompt": "one two three", "max_tokens": 5}),
     ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 4})],
)  # fmt: skip
def test_an_answer_not_streamed_is_the_one_the_engine_gives(fleet, path: str, body: dict) -> None:
    worker, router = fleet
    body = {"model": MODEL, **body}
    direct = httpx.post(f"{worker.url}{path}", json=body).json()
    routed = httpx.post(f"{router.url}{path}", json=body, headers={"Authorization": f"Bearer {KEY}"}).json()
    for answer in (direct, routed):
        answer.pop("id")
        answer.pop("created")
    assert routed == direct


def test_it_lists_the_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]


def test_a_bad_key_is_an_authentication_error(router: RouterProcess) -> None:
    bad = openai.OpenAI(base_url=f"{router.url}/v1", api_key="sk-clv-deadbeef-not-a-key-of-this-service", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        bad.completions.create(model=MODEL, prompt="hi", max_tokens=1)
    assert raised.value.code == "invalid_api_key"
    assert "not-a-key" not in str(raised.value)  # the key is masked


def test_a_missing_key_is_a_401_in_openais_shape(router: RouterProcess) -> None:
    response = httpx.post(f"{router.url}/v1/completions", json={"model": MODEL, "prompt": "hi"})
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_an_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.completions.create(model="gpt-5", prompt="hi", max_tokens=1)
    assert raised.value.code == "model_not_found"


def test_an_oversize_prompt_is_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model=MODEL, prompt=[1] * 131_070, max_tokens=10)
    assert raised.value.code == "context_length_exceeded"
    assert "maximum context length is 131072 tokens" in raised.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "prompt"),
        ({"model": MODEL, "prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "prompt": {"text": "hi"}}, "prompt"),
        ({"prompt": "hi"}, "model"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(router: RouterProcess, body: dict, param: str) -> None:
    response = httpx.post(f"{router.url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_body_that_is_not_json_is_a_400(router: RouterProcess) -> None:
    response = httpx.post(f"{router.url}/v1/chat/completions", content=b"{nope", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_client_that_leaves_mid_stream_frees_its_place(router: RouterProcess) -> None:
    body = {"model": MODEL, "prompt": "tell me everything", "max_tokens": 5000, "stream": True}
    with httpx.Client(timeout=30) as http, http.stream(
        "POST", f"{router.url}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        for line in response.iter_lines():
            if "tok3" in line:
                break
    wait_until(lambda: router.metric("cleave_router_requests_total", status="cancelled") == 1, 10, "a cancel")
    assert router.metric("cleave_router_queue_depth") == 0
    assert router.metric("cleave_router_worker_outstanding_tokens") == 0
    assert router.metric("cleave_router_breaker_state") == 0  # the client left; the worker did nothing wrong


ADMISSION = {
    "kind": "admission", "format": 1, "version": "test-1", "classes": ["prefill-heavy", "decode-heavy"],
    "categories": {}, "features": ["prompt_tokens", "max_tokens", "hour_of_day"],
    "tree": {"feature": [1, -2, -2], "threshold": [100.0, -2.0, -2.0], "left": [1, -1, -1], "right": [2, -1, -1],
             "probabilities": [[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]},
}  # fmt: skip


def test_the_admission_model_classes_each_request(tmp_path: Path) -> None:
    with running_sim("colocated", name="c1", time_scale=0.05) as worker:
        document = {**routing(colocated=[worker]), "admission_model": ADMISSION}
        with running_router(tmp_path, document) as router:
            client = openai.OpenAI(base_url=f"{router.url}/v1", api_key=KEY, max_retries=0)
            for max_tokens in (10, 20, 500):
                client.completions.create(model=MODEL, prompt="a b c", max_tokens=max_tokens)
            assert router.metric("cleave_router_predicted_class_total", **{"class": "prefill-heavy"}) == 2
            assert router.metric("cleave_router_predicted_class_total", **{"class": "decode-heavy"}) == 1
