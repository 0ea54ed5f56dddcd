"""A client that leaves frees its place; a worker told to stop finishes what it is serving first."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx

from agents.engines import WorkerSpec, launcher
from tests.agents.engines.conftest import ROOT, free_port, read_sse, running_sim, words


def test_a_client_that_hangs_up_mid_stream_frees_its_sequence_and_kv() -> None:
    with running_sim("colocated", time_scale=0.5) as worker:
        body = {"prompt": words(500), "max_tokens": 500, "stream": True}
        with httpx.stream("POST", f"{worker.url}/v1/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            assert worker.metrics().requests_running == 1
        deadline = time.monotonic() + 5
        while (metrics := worker.metrics()).requests_running and time.monotonic() < deadline:
            time.sleep(0.05)
    assert metrics.requests_running == 0
    assert metrics.kv_cache_usage == 0.0
    assert metrics.generation_tokens_total < 500


def test_sigterm_lets_the_requests_in_flight_finish_then_exits() -> None:
    spec = WorkerSpec("stopping", "colocated", "sim", "llama-3.1-8b", 1, (0,), free_port(), "H100-SXM-80GB")
    sim = launcher("sim")
    process = subprocess.Popen(sim.command(spec), cwd=ROOT, env=sim.environment(spec, {}))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(sim.health_url(spec), timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        events: list[object] = []
        body = {"prompt": "hello", "max_tokens": 60, "stream": True}  # ~0.45 s of decode

        def client() -> None:
            with httpx.stream("POST", f"{sim.base_url(spec)}/completions", json=body, timeout=10) as response:
                events.extend(read_sse(response))

        thread = threading.Thread(target=client)
        thread.start()
        time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=10)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why.
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(events) == 61
    assert events[-1] == "[DONE]"
