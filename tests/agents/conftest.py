"""Node agents as real processes against the real control plane (pytest-django's live server).

``start_agent`` runs ``python -m agents.node`` with fast clocks (heartbeats and samples every half
second, sim workers at a hundredth of real time) and stops it, and any worker it left, on the way
out. ``TcpProxy`` stands between an agent and the control plane so a test can take the control plane
off the network and bring it back. ``signed`` makes a call signed as the control plane signs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from profiler.signing import sign, signing_key
from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--heartbeat-s", "0.5", "--sample-s", "0.5", "--time-scale", "0.01", "--stop-grace-s", "5",
        "--restart-backoff-s", "0.5")  # fmt: skip






def sim_worker(name: str, gpu: int, port: int, **overrides: Any) -> dict[str, Any]:
    """One worker as the control plane puts it in an assignment."""
    return {
        "name": name, "role": "colocated", "engine": "sim", "model": "llama-3.1-8b", "tp": 1, "gpu_ids": [gpu],
        "port": port, "tier": "H100-SXM-80GB", "dtype": "bf16", "service": None, "plan": None, "engine_args": {},
        **overrides,
    }  # fmt: skip


@dataclass
class AgentProcess:
    name: str
    port: int
    state_dir: Path
    log: Path
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    ca: Path | None = None  # the certificate it serves with, for an agent started with TLS
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca else True

    def start(self) -> AgentProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self._healthy, 20, f"agent {self.name} answering /health")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"agent exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1, verify=self.verify).status_code == 200
        except httpx.TransportError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def token(self) -> str:
        path = self.state_dir / "credentials.json"
        wait_until(path.exists, 20, "the agent's credentials")
        return str(json.loads(path.read_text())["token"])

    def signed(self, method: str, path: str, payload: Any = None, *, generation: int = 0,
               token: str | None = None, now: float | None = None) -> httpx.Response:  # fmt: skip
        """A call signed with the node's key, as the control plane makes it."""
        body = json.dumps(payload, sort_keys=True).encode() if payload is not None else b""
        key = signing_key(token or self.token())
        headers = sign(key, method=method, path=path, body=body, generation=generation,
                       now=time.time() if now is None else now).as_dict()  # fmt: skip
        return httpx.request(method, f"{self.url}{path}", content=body, headers=headers, timeout=10,
                             verify=self.verify)

    def status(self) -> dict[str, Any]:
        response = self.signed("GET", "/v1/status")
        assert response.status_code == 200, response.text
        return response.json()

    def put(self, generation: int, workers: list[dict[str, Any]]) -> httpx.Response:
        return self.signed("PUT", "/v1/assignment", {"node": self.name, "generation": generation, "workers": workers},
                           generation=generation)  # fmt: skip

    def worker(self, name: str) -> dict[str, Any] | None:
        return next((w for w in self.status()["workers"] if w["name"] == name), None)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, as an init system stops it; its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the agent dies without a word, its workers keep running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def worker_pids(self) -> dict[str, int]:
        return {path.stem: int(json.loads(path.read_text())["pid"]) for path in (self.state_dir / "workers").glob("*.json")}

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
        for pid in self.worker_pids().values():  # a test that killed the agent leaves its workers
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def start_agent(tmp_path: Path, bootstrap_token: str, live_server: Any) -> Iterator[Callable[..., AgentProcess]]:
    """Start node agents against the live control plane: ``start_agent(name, *extra_args)``."""
    agents: list[AgentProcess] = []

    def start(name: str = "node-a", *extra: str, control_plane: str | None = None, gpus: int = 8,
              port: int | None = None, state_dir: Path | None = None, ca: Path | None = None) -> AgentProcess:  # fmt: skip
        port = port or free_port()
        state = state_dir or tmp_path / f"state-{name}"
        argv = [sys.executable, "-m", "agents.node", "--control-plane", control_plane or live_server.url,
                "--tier", "H100-SXM-80GB", "--gpus", str(gpus), "--name", name, "--listen", f"127.0.0.1:{port}",
                "--state-dir", str(state), *FAST, *extra]  # fmt: skip
        env = {**os.environ, "CLEAVE_BOOTSTRAP_TOKEN": bootstrap_token, "PYTHONPATH": str(ROOT),
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        agent = AgentProcess(name, port, state, tmp_path / f"agent-{name}.log", argv, env, ca)
        agents.append(agent)
        return agent.start()

    yield start
    for agent in agents:
        agent.cleanup()


class TcpProxy:
    """A TCP forwarder to ``target`` that a test can take down (connections refused) and bring back up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would leave it listening.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy(live_server: Any) -> Iterator[TcpProxy]:
    """A TcpProxy in front of the live control plane, up."""
    host, port = live_server.url.removeprefix("http://").rsplit(":", 1)
    forwarder = TcpProxy(host, int(port))
    forwarder.up()
    yield forwarder
    forwarder.down()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (openssl's command line makes them)."""
    cert, key = tmp_path / "agent.pem", tmp_path / "agent.key"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"no openssl to make a certificate with: {error}")
    return cert, key
