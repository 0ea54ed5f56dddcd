"""Faults under load: a decode worker dies, the routing plan changes, too many requests arrive at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents.router.conftest import (
    KEY,
    MODEL,
    Load,
    routing,
    running_router,
    running_sim,
    stream_completion,
    wait_until,
    words,
    write_routing,
)

pytestmark = pytest.mark.slow


def outcome(client: httpx.Client, url: str, prompt_tokens: int, max_tokens: int, **extra: Any) -> dict[str, Any]:
    """One streamed request, summed up: HTTP status, serving workers, whole or failed, tokens."""
    response, events, _ = stream_completion(client, url, prompt_tokens, max_tokens, **extra)
    tokens = [event for event in events if isinstance(event, dict) and event.get("choices")]
    return {
        "status": response.status_code,
        "decode": response.headers.get("x-cleave-decode-worker"),
        "prefill": response.headers.get("x-cleave-prefill-worker"),
        "whole": bool(events) and events[-1] == "[DONE]" and len(tokens) == max_tokens,
        "stream_error": any(isinstance(event, dict) and "error" in event for event in events),
    }


def test_a_killed_decode_worker_fails_only_its_own_requests_and_is_ejected(tmp_path: Path) -> None:
    with (
        running_sim("prefill", name="p0") as prefill,
        running_sim("decode", name="d0") as d0,
        running_sim("decode", name="d1") as d1,
        running_router(tmp_path, routing(prefill=[prefill], decode=[d0, d1], threshold=0),
                       "--breaker-failures", "2", "--breaker-cool-off-s", "1") as router,
    ):  # fmt: skip
        # ~40 decode steps of ~7 ms: each stream runs ~0.3 s, so a few are always in flight.
        with Load(lambda client: outcome(client, router.url, 200, 40), rate_per_s=25) as load:
            time.sleep(1.5)
            killed_at = time.monotonic()
            d1.kill()
            time.sleep(2.5)
        results = load.results
        ejections = router.metric("cleave_router_breaker_ejections_total", worker="node-a/d1")

    failed = [result for _, result in results if not isinstance(result, dict) or not result["whole"]]
    assert len(results) > 40
    assert all(isinstance(result, dict) for _, result in results), failed
    # A request fails only if its stream was on the killed worker, cut short with an error event.
    assert all(result["decode"] == "node-a/d1" and result["stream_error"] for result in failed), failed
    assert all(result["status"] == 200 for _, result in results)
    # Every request that started after the kill had settled was served whole, by the survivor.
    late = [result for began, result in results if began > killed_at + 0.5]
    assert late
    assert all(result["whole"] and result["decode"] == "node-a/d0" for result in late), late
    assert ejections >= 1


def test_a_plan_swapped_under_load_loses_no_request_and_sends_none_to_the_drained_worker(tmp_path: Path) -> None:
    with (
        running_sim("colocated", name="old") as old,
        running_sim("colocated", name="new") as new,
        running_router(tmp_path, routing(colocated=[old], version=1)) as router,
    ):
        with Load(lambda client: outcome(client, router.url, 100, 30), rate_per_s=25) as load:
            time.sleep(1.0)
            assert router.routing_file is not None
            write_routing(router.routing_file, routing(colocated=[new], version=2))
            wait_until(lambda: router.metric("cleave_router_plan_version") == 2, 5, "the router on plan 2")
            swapped_at = time.monotonic()
            # What the old worker had in flight finishes there; then it is drained and stopped.
            wait_until(lambda: router.metric("cleave_router_worker_in_flight", worker="node-a/old") == 0, 10,
                       "the old worker's requests finished")  # fmt: skip
            old_total = old.metrics().requests_finished_total
            old.kill()
            time.sleep(1.5)
        results = load.results
        old_errors = router.metric("cleave_router_upstream_requests_total", worker="node-a/old", outcome="error")

    assert all(isinstance(result, dict) and result["whole"] for _, result in results), results
    after = [result for began, result in results if began > swapped_at]
    assert after
    assert all(result["decode"] == "node-a/new" for result in after)
    assert old_total == sum(1 for _, result in results if result["decode"] == "node-a/old") > 0
    assert old_errors == 0  # nothing was sent to the stopped worker


def test_over_the_queue_bound_it_answers_429_with_retry_after(tmp_path: Path) -> None:
    with (
        running_sim("colocated", name="slow") as worker,
        running_router(tmp_path, routing(colocated=[worker]), "--max-queue", "3") as router,
    ):
        with Load(lambda client: client.post(
            f"{router.url}/v1/completions", headers={"Authorization": f"Bearer {KEY}"},
            json={"model": MODEL, "prompt": "hi", "max_tokens": 150},
        ), rate_per_s=200, threads=10) as load:  # fmt: skip
            time.sleep(0.5)
        rejected = router.metric("cleave_router_requests_total", status="rejected")
    responses = [response for _, response in load.results]
    refused = [response for response in responses if response.status_code == 429]
    served = [response for response in responses if response.status_code == 200]
    assert refused
    assert served
    assert len(served) + len(refused) == len(responses)
    assert all(response.headers["Retry-After"] == "1" for response in refused)
    assert refused[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert rejected == len(refused)


def test_a_failed_prefill_is_retried_on_another_worker_then_prefilled_locally(tmp_path: Path) -> None:
    with (
        running_sim("prefill", name="p0", time_scale=0.1) as p0,
        running_sim("prefill", name="p1", time_scale=0.1) as p1,
        running_sim("decode", name="d0", time_scale=0.1) as decode,
        running_router(tmp_path, routing(prefill=[p0, p1], decode=[decode], threshold=0),
                       "--breaker-failures", "1") as router,
        httpx.Client(timeout=30) as client,
    ):
        p1.kill()
        first = []
        # Distinct prompts (no prefix affinity): ties between the two fall either way until p1 is tried.
        while router.metric("cleave_router_retries_total", leg="prefill") < 1 and len(first) < 40:
            first.append(outcome(client, router.url, 300, 4, prompt=f"request {len(first)} " + words(298)))
        assert router.metric("cleave_router_retries_total", leg="prefill") == 1
        assert all(result["whole"] and result["prefill"] == "node-a/p0" for result in first), first
        first += [outcome(client, router.url, 300, 4, prompt=f"again {index} " + words(298)) for index in range(6)]
        assert router.metric("cleave_router_retries_total", leg="prefill") == 1  # p1 is ejected: no more tries
        assert router.metric("cleave_router_breaker_state", worker="node-a/p1") == 2
        p0.kill()
        alone = [outcome(client, router.url, 300, 4) for _ in range(3)]
        assert all(result["whole"] and result["prefill"] is None for result in alone), alone
        assert decode.metrics().sim.prefill_tokens >= 3 * 300  # the decode worker prefilled them itself
