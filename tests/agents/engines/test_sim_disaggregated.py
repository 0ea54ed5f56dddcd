"""Prefill on one worker, decode on another, as vLLM's NixlConnector proxy drives them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from profiler.perfmodel import PerfModel
from tests.agents.engines.conftest import SimWorker, read_sse, running_sim, words

PROMPT_TOKENS = 6000
# What the proxy puts in the prefill request (vLLM's toy_proxy_server does the same).
ASK_FOR_REMOTE_DECODE = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[SimWorker, SimWorker]]:
    # Over 100 GbE a 6,000-token prompt of an 8B model (128 KiB of KV per token) takes ~63 ms.
    with (
        running_sim("prefill", name="prefill-0", kv_link="ethernet") as prefill,
        running_sim("decode", name="decode-0", kv_link="ethernet") as decode,
    ):
        prefill_then_decode(prefill, decode, max_tokens=2)  # the first requests of a process run cold code
        yield prefill, decode


def prefill_then_decode(prefill: SimWorker, decode: SimWorker, max_tokens: int) -> tuple[dict, list, float]:
    """The proxy's two legs; the decode leg's TTFT as its client sees it."""
    request = {
        "model": "llama-3.1-8b",
        "prompt": words(PROMPT_TOKENS),
        "max_tokens": max_tokens,
        "stream": True,
    }
    first_leg = {**request, "max_tokens": 1, "stream": False, "kv_transfer_params": ASK_FOR_REMOTE_DECODE}
    # One client for both legs, as a router keeps one: a new httpx client alone costs ~20 ms.
    with httpx.Client(timeout=30) as client:
        prefilled = client.post(f"{prefill.url}/v1/completions", json=first_leg).json()
        second_leg = {**request, "kv_transfer_params": prefilled["kv_transfer_params"]}
        arrivals: list[float] = []
        start = time.perf_counter()
        with client.stream("POST", f"{decode.url}/v1/completions", json=second_leg) as response:
            events = read_sse(response, arrivals.append)
    return prefilled, events, arrivals[0] - start


def test_the_prefill_worker_answers_one_token_and_the_params_to_pull_its_kv(
    pair: tuple[SimWorker, SimWorker],
) -> None:
    prefill, decode = pair
    prefilled, _, _ = prefill_then_decode(prefill, decode, max_tokens=4)
    assert prefilled["usage"]["completion_tokens"] == 1
    params = prefilled["kv_transfer_params"]
    assert params["do_remote_prefill"] is True
    assert params["do_remote_decode"] is False
    assert params["remote_engine_id"] == "prefill-0"
    assert len(params["remote_block_ids"]) == PROMPT_TOKENS // 16 + (PROMPT_TOKENS % 16 > 0)
    assert params["remote_host"] == "127.0.0.1"
    assert params["remote_port"] == prefill.spec.port
    assert params["tp_size"] == 1
    assert params["num_prompt_tokens"] == PROMPT_TOKENS


def test_the_decode_worker_waits_the_transfer_then_streams_only_its_own_tokens(
    pair: tuple[SimWorker, SimWorker],
) -> None:
    prefill, decode = pair
    perf = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")
    transfer_s = perf.kv_transfer_s(PROMPT_TOKENS, "ethernet")
    first_step_s = perf.decode_step_s(1, PROMPT_TOKENS)
    prefill_before, decode_before = prefill.metrics(), decode.metrics()
    _, events, ttft = prefill_then_decode(prefill, decode, max_tokens=6)
    prefill_after, decode_after = prefill.metrics(), decode.metrics()

    assert [event["choices"][0]["text"] for event in events[:-1]] == [f" tok{i}" for i in range(6)]
    # The decode worker's first token needs the KV transfer and one decode step; no prefill.
    assert ttft == pytest.approx(transfer_s + first_step_s, rel=0.15)
    assert ttft < perf.prefill_time_s([PROMPT_TOKENS])
    served_ttft = decode_after.ttft_seconds.minus(decode_before.ttft_seconds)
    assert served_ttft.count == 1
    assert served_ttft.sum == pytest.approx(transfer_s + first_step_s, rel=0.10)

    # Both workers count the request: its prompt on each, and each its own tokens.
    assert prefill_after.prompt_tokens_total - prefill_before.prompt_tokens_total == PROMPT_TOKENS
    assert prefill_after.generation_tokens_total - prefill_before.generation_tokens_total == 1
    assert decode_after.prompt_tokens_total - decode_before.prompt_tokens_total == PROMPT_TOKENS
    assert decode_after.generation_tokens_total - decode_before.generation_tokens_total == 6
    assert prefill_after.requests_finished_total - prefill_before.requests_finished_total == 1
    assert decode_after.requests_finished_total - decode_before.requests_finished_total == 1
    # Only the prefill worker computed the prompt; only the decode worker decoded.
    assert prefill_after.sim is not None
    assert prefill_before.sim is not None
    assert decode_after.sim is not None
    assert decode_before.sim is not None
    assert prefill_after.sim.minus(prefill_before.sim).prefill_tokens == PROMPT_TOKENS
    assert prefill_after.sim.minus(prefill_before.sim).decode_seqs == 0
    assert decode_after.sim.minus(decode_before.sim).prefill_tokens == 0
    assert decode_after.sim.minus(decode_before.sim).decode_seqs == 6


def test_a_decode_worker_prefills_locally_when_no_kv_comes_with_the_request(
    pair: tuple[SimWorker, SimWorker],
) -> None:
    _, decode = pair
    before = decode.metrics()
    body = httpx.post(f"{decode.url}/v1/completions", json={"prompt": words(100), "max_tokens": 3}).json()
    after = decode.metrics()
    assert body["usage"]["completion_tokens"] == 3
    assert after.sim is not None
    assert before.sim is not None
    assert after.sim.minus(before.sim).prefill_tokens == 100


def test_a_prefill_worker_makes_one_token_whatever_max_tokens_says(pair: tuple[SimWorker, SimWorker]) -> None:
    prefill, _ = pair
    body = httpx.post(f"{prefill.url}/v1/completions", json={"prompt": "a b c", "max_tokens": 50}).json()
    assert body["usage"]["completion_tokens"] == 1
    assert "kv_transfer_params" not in body
