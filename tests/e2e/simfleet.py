"""A simulated fleet for the browser tests: real node agents (`python -m agents.node`) with simulated GPUs,
each on a loopback address of its own (127.0.0.N) so their workers' ports never clash."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]






@dataclass
class Agent:
    name: str
    host: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"agent {self.name} exited with {self.process.returncode}:\n"
                               f"{self.log.read_text(errors='replace')[-4000:]}")
        try:
            return httpx.get(f"http://{self.host}:{self.port}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the agent stops its workers on the way out
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def sim_agents(*, control_plane: str, bootstrap_token: str, workdir: Path, nodes: list[tuple[str, str, int]],
               env: dict[str, str]) -> Iterator[list[Agent]]:
    """Start an agent per (name, tier, GPUs), wait until each answers, and stop them all on the way out."""
    agents: list[Agent] = []
    try:
        for index, (name, tier, gpus) in enumerate(nodes):
            host = f"127.0.0.{index + 2}"
            port = free_port(host)
            log = workdir / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "agents.node", "--control-plane", control_plane, "--tier", tier,
                     "--gpus", str(gpus), "--name", name, "--listen", f"{host}:{port}",
                     "--state-dir", str(workdir / name), "--gpu-reader", "sim", "--heartbeat-s", "1",
                     "--sample-s", "1", "--time-scale", "0.01", "--stop-grace-s", "5",
                     "--restart-backoff-s", "0.5", "--log-level", "info"],
                    cwd=ROOT, env={**env, "CLEAVE_BOOTSTRAP_TOKEN": bootstrap_token}, stdout=out,
                    stderr=subprocess.STDOUT,
                )
            agents.append(Agent(name=name, host=host, port=port, log=log, process=process))
        for agent in agents:
            wait_until(agent.healthy, timeout_s=30, what=f"agent {agent.name} answering /health")
        yield agents
    finally:
        for agent in agents:
            agent.stop()
