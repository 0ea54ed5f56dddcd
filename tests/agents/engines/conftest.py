"""Simulated engine workers as real processes, started through the sim launcher, and an SSE reader."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.engines import WorkerSpec, launcher
from agents.engines.base import EngineArg
from agents.engines.metrics import WorkerMetrics
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[3]




@dataclass(frozen=True)
class SimWorker:
    spec: WorkerSpec
    url: str

    def metrics(self) -> WorkerMetrics:
        return launcher("sim").parse_metrics(httpx.get(f"{self.url}/metrics").text)


@contextlib.contextmanager
def running_sim(
    role: str = "colocated",
    model: str = "llama-3.1-8b",
    tier: str = "H100-SXM-80GB",
    tp: int = 1,
    name: str = "",
    **engine_args: EngineArg,
) -> Iterator[SimWorker]:
    """One sim worker process, started as the node agent will, and stopped on the way out."""
    spec = WorkerSpec(
        name=name or f"{role}-test",
        role=role,
        engine="sim",
        model=model,
        tp=tp,
        gpu_ids=tuple(range(tp)),
        port=free_port(),
        tier=tier,
        engine_args=engine_args,
    )
    sim = launcher("sim")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            sim.command(spec),
            cwd=ROOT,
            env=sim.environment(spec, os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the sim exited with {process.returncode}:\n{log.read().decode()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(sim.health_url(spec), timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("the sim did not become healthy in 20 s")
                time.sleep(0.05)
            yield SimWorker(spec, sim.base_url(spec).removesuffix("/v1"))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def colocated() -> Iterator[SimWorker]:
    """A colocated 8B worker on an H100, ten times faster than life, shared by the whole session."""
    with running_sim("colocated", name="colocated-shared", time_scale=0.1) as worker:
        yield worker


def read_sse(response: httpx.Response, on_event: Callable[[float], None] | None = None) -> list[Any]:
    """The events of an SSE response, each ``data:`` line checked to stand alone before a blank line.

    The last element is the string "[DONE]"; ``on_event`` gets each event's arrival time.
    """
    events: list[Any] = []
    buffer = ""
    for text in response.iter_text():
        arrived = time.perf_counter()
        buffer += text
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            assert frame.startswith("data: "), frame
            assert "\n" not in frame, frame
            payload = frame.removeprefix("data: ")
            events.append(payload if payload == "[DONE]" else json.loads(payload))
            if on_event is not None:
                on_event(arrived)
    assert buffer == "", buffer
    return events


def words(count: int) -> str:
    return " ".join(f"w{index}" for index in range(count))
