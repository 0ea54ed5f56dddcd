"""Routers as real processes (``python -m agents.router``) in front of sim workers, and their helpers.

``running_router`` starts a router on a routing file (or a control plane) and stops it on the way
out; ``routing`` builds a plan's routing JSON from sim workers; ``write_routing`` replaces a routing
file atomically, as the node agent does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agents.engines import WorkerSpec, launcher
from agents.engines.base import EngineArg
from agents.engines.metrics import read_samples
from tests.agents.engines.conftest import ROOT, SimWorker, free_port, read_sse, words
from tests.processes import wait_until

__all__ = ["KEY", "RouterProcess", "read_sse", "routing", "running_router", "running_sim", "stream_completion",
           "wait_until", "words", "write_routing"]  # fmt: skip

MODEL = "llama-3.1-8b"
KEY = "sk-clv-0badc0de-test-key-for-the-router-tests-0123456789"
KEY_DIGEST = hashlib.sha256(KEY.encode()).hexdigest()




@dataclass(frozen=True)
class SimProcess(SimWorker):
    process: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-request, as a crashed engine does."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@contextlib.contextmanager
def running_sim(role: str = "colocated", name: str = "", **engine_args: EngineArg) -> Iterator[SimProcess]:
    """One sim worker process (an 8B model on an H100), started as the node agent starts it."""
    spec = WorkerSpec(name=name or f"{role}-test", role=role, engine="sim", model=MODEL, tp=1, gpu_ids=(0,),
                      port=free_port(), tier="H100-SXM-80GB", engine_args=engine_args)  # fmt: skip
    sim = launcher("sim")
    process = subprocess.Popen(sim.command(spec), cwd=ROOT, env=sim.environment(spec, os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the sim {spec.name} exited with {process.returncode}")
            try:
                return httpx.get(sim.health_url(spec), timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 20, f"the sim {spec.name} answering /health")
        yield SimProcess(spec, sim.base_url(spec).removesuffix("/v1"), process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def entry(worker: SimWorker, weight: float = 1.0, *, by_url: bool = False) -> dict[str, Any]:
    """A pool entry for a sim worker, as the planner writes one (``url`` instead of ``port`` if asked)."""
    where: dict[str, Any] = {"url": worker.url} if by_url else {"port": worker.spec.port}
    return {"worker": f"node-a/{worker.spec.name}", "node": "node-a", **where, "tier": worker.spec.tier,
            "tp": worker.spec.tp, "weight": weight}  # fmt: skip


def routing(
    *, prefill: Sequence[SimWorker] = (), decode: Sequence[SimWorker] = (), colocated: Sequence[SimWorker] = (),
    threshold: int = 0, version: int = 1, service: str = "chat", keys: Sequence[str] | None = (KEY_DIGEST,),
    service_id: int | None = None,
) -> dict[str, Any]:
    """A routing file: the plan's routing, with the client key digests when ``keys`` is not None."""
    plan = {
        "service": service, "service_id": service_id, "model": MODEL, "version": version,
        "pools": {"prefill": [entry(w) for w in prefill], "decode": [entry(w) for w in decode],
                  "colocated": [entry(w) for w in colocated]},
        "local_prefill_threshold": threshold, "admission_model": None,
    }  # fmt: skip
    if keys is None:
        return plan
    return {"routing": plan, "api_key_digests": list(keys), "admission_model": None}


def write_routing(path: Path, document: dict[str, Any]) -> None:
    """Replace the routing file atomically (temp file + rename), as the node agent does."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)


@dataclass
class RouterProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    routing_file: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        return read_samples(httpx.get(f"{self.url}/metrics", timeout=5).text)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(value for found, value in self.samples().get(name, ())
                   if all(found.get(key) == want for key, want in labels.items()))  # fmt: skip

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def running_router(
    directory: Path, document: dict[str, Any] | None = None, *args: str, env: dict[str, str] | None = None,
    healthy: bool = True,
) -> Iterator[RouterProcess]:
    """A router process on a routing file holding ``document`` (none when None), with ``args`` added."""
    port = free_port()
    routing_file = None
    argv = [sys.executable, "-m", "agents.router", "--port", str(port), *args]
    if document is not None:
        routing_file = directory / f"routing-{port}.json"
        write_routing(routing_file, document)
        argv += ["--routing-file", str(routing_file)]
    log = directory / f"router-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})  # fmt: skip
    router = RouterProcess(port, process, log, routing_file)
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the router exited with {process.returncode}:\n{router.log_text()}")
            try:
                status = httpx.get(f"{router.url}/health", timeout=1).status_code
            except httpx.TransportError:
                return False
            return status == 200 or not healthy

        wait_until(up, 20, "the router answering /health")
        yield router
    finally:
        router.stop()


def stream_completion(
    client: httpx.Client, url: str, prompt_tokens: int, max_tokens: int, **extra: Any
) -> tuple[httpx.Response, list[Any], float | None]:
    """A streamed completion through the router: the response, its SSE events, and the TTFT seen."""
    body = {"model": MODEL, "prompt": words(prompt_tokens), "max_tokens": max_tokens, "stream": True, **extra}
    start = time.perf_counter()
    arrivals: list[float] = []
    with client.stream("POST", f"{url}/v1/completions", json=body,
                       headers={"Authorization": f"Bearer {KEY}"}) as response:  # fmt: skip
        if response.status_code != 200:
            response.read()
            return response, [], None
        events = read_sse(response, arrivals.append)
    return response, events, (arrivals[0] - start) if arrivals else None


class Load:
    """Requests from a few threads at a steady rate, each result kept with when it started."""

    def __init__(self, send: Callable[[httpx.Client], Any], rate_per_s: float, threads: int = 8) -> None:
        self.send, self.interval_s, self.threads = send, 1.0 / rate_per_s, threads
        self.results: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = time.monotonic()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                with self._lock:
                    start, self._next = self._next, max(self._next + self.interval_s, time.monotonic())
                delay = start - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if self._stop.is_set():
                    return
                began = time.monotonic()
                try:
                    outcome = self.send(client)
                except httpx.HTTPError as error:
                    outcome = error
                with self._lock:
                    self.results.append((began, outcome))
