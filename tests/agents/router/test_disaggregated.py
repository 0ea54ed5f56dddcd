"""A long prompt takes two workers: the prefill worker computes it, the decode worker pulls its KV and decodes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from profiler.perfmodel import PerfModel
from tests.agents.engines.conftest import SimWorker
from tests.agents.router.conftest import (
    RouterProcess,
    routing,
    running_router,
    running_sim,
    stream_completion,
)

PROMPT_TOKENS = 6000
THRESHOLD = 1000


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimWorker, SimWorker, RouterProcess]]:
    # Over 100 GbE the 6,000-token KV of an 8B model takes ~63 ms to move; real time, so it shows.
    with (
        running_sim("prefill", name="p0", kv_link="ethernet") as prefill,
        running_sim("decode", name="d0", kv_link="ethernet") as decode,
        running_router(tmp_path_factory.mktemp("router"), routing(prefill=[prefill], decode=[decode],
                                                                  threshold=THRESHOLD)) as router,
    ):  # fmt: skip
        with httpx.Client(timeout=30) as client:
            stream_completion(client, router.url, PROMPT_TOKENS, 2)  # the first requests run cold code
        yield prefill, decode, router


def test_a_long_prompt_is_prefilled_on_one_worker_and_decoded_on_the_other(fleet) -> None:
    prefill, decode, router = fleet
    prefill_before, decode_before = prefill.metrics(), decode.metrics()
    with httpx.Client(timeout=30) as client:
        response, events, ttft = stream_completion(client, router.url, PROMPT_TOKENS, 8)
    prefill_after, decode_after = prefill.metrics(), decode.metrics()

    assert response.status_code == 200
    assert response.headers["x-cleave-prefill-worker"] == "node-a/p0"
    assert response.headers["x-cleave-decode-worker"] == "node-a/d0"
    assert [event["choices"][0]["text"] for event in events[:-1]] == [f" tok{i}" for i in range(8)]
    assert prefill_after.requests_finished_total - prefill_before.requests_finished_total == 1
    assert decode_after.requests_finished_total - decode_before.requests_finished_total == 1
    assert prefill_after.prompt_tokens_total - prefill_before.prompt_tokens_total == PROMPT_TOKENS
    assert prefill_after.generation_tokens_total - prefill_before.generation_tokens_total == 1
    assert decode_after.generation_tokens_total - decode_before.generation_tokens_total == 8
    assert decode_after.sim.minus(decode_before.sim).prefill_tokens == 0  # the decode worker pulled the KV

    # The client's first token waited for the prefill, then the KV transfer, then a decode step.
    perf = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")
    floor_s = perf.prefill_time_s([PROMPT_TOKENS]) + perf.kv_transfer_s(PROMPT_TOKENS, "ethernet")
    assert ttft is not None
    assert floor_s <= ttft < floor_s + 1.0
    assert router.metric("cleave_router_disaggregated_requests_total") >= 2


def test_a_short_prompt_goes_to_the_decode_worker_alone(fleet) -> None:
    prefill, decode, router = fleet
    prefill_before, decode_before = prefill.metrics(), decode.metrics()
    with httpx.Client(timeout=30) as client:
        response, _events, _ = stream_completion(client, router.url, THRESHOLD - 1, 3)
    assert response.status_code == 200
    assert "x-cleave-prefill-worker" not in response.headers
    assert prefill.metrics().requests_finished_total == prefill_before.requests_finished_total
    after = decode.metrics()
    assert after.requests_finished_total - decode_before.requests_finished_total == 1
    assert after.sim.minus(decode_before.sim).prefill_tokens == THRESHOLD - 1


def test_the_router_times_the_request_in_its_metrics(fleet) -> None:
    _, _, router = fleet
    assert router.metric("cleave_router_ttft_seconds_count", pool="decode") >= 2
    assert router.metric("cleave_router_tpot_seconds_count", pool="decode") >= 2
    assert router.metric("cleave_router_requests_total", status="ok") >= 3
    assert router.metric("cleave_router_breaker_state", worker="node-a/p0") == 0
