"""The node agent: ``python -m agents.node --control-plane URL --bootstrap-token T --tier TIER --gpus N``.

One process per GPU node, one event loop: the agent API (uvicorn), the workers' supervisor tasks, and
the reporting loops. It registers with the control plane (the bootstrap token buys a node token, kept
in the state directory), heartbeats, serves the signed calls that push its assignment, runs the
assignment's engine workers, and sends samples of its GPUs and workers.

It survives the loss of the others: the control plane away, it keeps its workers and buffers samples;
killed outright, it leaves its workers serving and the next agent adopts them from the state
directory; stopped cleanly (SIGTERM, SIGINT), it stops its workers and sends a last heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from agents.api import AgentApi
from agents.cli import positive_float, positive_int
from agents.control_plane import ControlPlane, NodeIdentity
from agents.gpu import GpuReader, NvmlGpuReader, SimulatedGpuReader
from agents.reconcile import (
    NAME_PATTERN,
    Assignment,
    AssignmentError,
    NodeLimits,
    Reconciler,
    parse_assignment,
)
from agents.reporter import Reporter
from agents.state import StateDir, StateError
from agents.supervisor import Supervisor, SupervisorConfig
from profiler import catalog
from profiler.errors import ProfilerError

log = logging.getLogger("agents.node")

AGENT_VERSION = "0.1.0"
BOOTSTRAP_ENV = "CLEAVE_BOOTSTRAP_TOKEN"
GPU_READERS = ("auto", "nvml", "sim", "none")


@dataclass(frozen=True)
class AgentConfig:
    """Everything the command line sets."""

    control_plane: str
    tier: str
    gpus: int
    name: str
    state_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9100
    advertise_url: str = ""
    bootstrap_token: str | None = field(default=None, repr=False)
    engine: str = "sim"
    heartbeat_s: float = 5.0
    sample_s: float = 10.0
    tls_cert: str | None = None
    tls_key: str | None = None
    ca_bundle: str | None = None
    gpu_reader: str = "auto"
    buffer_samples: int = 100_000
    log_level: str = "info"
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

def build_parser() -> argparse.ArgumentParser:
    """The agent's command line."""
    p = argparse.ArgumentParser(prog="python -m agents.node", description="Cleave's node agent.")
    p.add_argument("--control-plane", required=True, help="the control plane's base URL")
    p.add_argument("--bootstrap-token", default=None, help=f"to register with (default: ${BOOTSTRAP_ENV})")
    p.add_argument("--tier", required=True, help="the node's GPU tier, e.g. H100-SXM-80GB")
    p.add_argument("--gpus", type=positive_int, required=True, help="how many GPUs the node has")
    p.add_argument("--name", default=socket.gethostname(), help="the node's name (default: the host name)")
    p.add_argument("--engine", default="sim", help="engine of workers whose assignment names none")
    p.add_argument("--listen", default="127.0.0.1:9100", help="HOST:PORT the agent API listens on")
    p.add_argument("--advertise-url", default="", help="the URL the control plane calls (default: from --listen)")
    p.add_argument("--state-dir", type=Path, default=None, help="default: var/agents/<name>")
    p.add_argument("--heartbeat-s", type=positive_float, default=5.0)
    p.add_argument("--sample-s", type=positive_float, default=10.0)
    p.add_argument("--tls-cert", default=None, help="serve the agent API over TLS with this certificate")
    p.add_argument("--tls-key", default=None, help="... and this key")
    p.add_argument("--ca-bundle", default=None, help="CA bundle that verifies the control plane")
    p.add_argument("--time-scale", type=positive_float, default=None, help="passed to sim workers")
    p.add_argument("--gpu-reader", choices=GPU_READERS, default="auto", help="auto: NVML if present, else sim")
    p.add_argument("--worker-host", default=None, help="address workers listen on (default: the --listen host)")
    p.add_argument("--stop-grace-s", type=positive_float, default=30.0, help="SIGTERM to SIGKILL")
    p.add_argument("--start-timeout-s", type=positive_float, default=900.0, help="launch to ready, at most")
    p.add_argument("--restart-backoff-s", type=positive_float, default=1.0, help="first restart delay")
    p.add_argument("--restart-backoff-max-s", type=positive_float, default=60.0)
    p.add_argument("--healthy-reset-s", type=positive_float, default=60.0,
                   help="healthy this long, a worker's backoff starts over")  # fmt: skip
    p.add_argument("--buffer-samples", type=positive_int, default=100_000, help="samples kept while offline")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AgentConfig:
    """Check the command line against the catalog and itself; parser.error names what is wrong."""
    try:
        catalog.tier(args.tier)
    except ProfilerError as error:
        parser.error(f"--tier: {error}")
    if args.gpus > 64:
        parser.error("--gpus: at most 64")
    if not NAME_PATTERN.match(args.name):
        parser.error(f"--name: {args.name!r} is not a node name (letters, digits, '.', '_', '-')")
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"--listen: expected HOST:PORT, got {args.listen!r}")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    scheme = "https" if args.tls_cert else "http"
    shown = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    advertise = args.advertise_url or f"{scheme}://{_url_host(shown)}:{port}"
    worker_host = args.worker_host or host
    return AgentConfig(
        control_plane=args.control_plane.rstrip("/"), tier=args.tier, gpus=args.gpus, name=args.name,
        state_dir=args.state_dir or Path("var") / "agents" / args.name, listen_host=host, listen_port=int(port),
        advertise_url=advertise.rstrip("/"), bootstrap_token=args.bootstrap_token or os.environ.get(BOOTSTRAP_ENV),
        engine=args.engine, heartbeat_s=args.heartbeat_s, sample_s=args.sample_s, tls_cert=args.tls_cert,
        tls_key=args.tls_key, ca_bundle=args.ca_bundle, gpu_reader=args.gpu_reader, buffer_samples=args.buffer_samples,
        log_level=args.log_level,
        supervisor=SupervisorConfig(
            worker_host=worker_host, time_scale=args.time_scale, backoff_initial_s=args.restart_backoff_s,
            backoff_max_s=max(args.restart_backoff_max_s, args.restart_backoff_s), healthy_reset_s=args.healthy_reset_s,
            stop_grace_s=args.stop_grace_s, start_timeout_s=args.start_timeout_s,
        ),
    )  # fmt: skip


def gpu_reader(config: AgentConfig) -> GpuReader | None:
    """NVML where the node has it (or where asked for), simulated GPUs otherwise."""
    if config.gpu_reader == "none":
        return None
    if config.gpu_reader in ("auto", "nvml"):
        nvml = NvmlGpuReader()
        if nvml.available():
            log.info("reading GPUs through NVML")
            return nvml
        if config.gpu_reader == "nvml":
            raise StateError("--gpu-reader nvml: NVML is not available on this machine")
    log.info("simulating %d %s GPUs", config.gpus, config.tier)
    return SimulatedGpuReader(config.tier, config.gpus)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The agent handles SIGTERM and SIGINT itself: workers stop before the API does.
        yield


class NodeAgent:
    """One node's agent: its state, workers, reporting and API, on one event loop."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = StateDir(config.state_dir)
        self.limits = NodeLimits(
            name=config.name, tier=config.tier, gpu_count=config.gpus, default_engine=config.engine,
            reserved_ports=frozenset({config.listen_port}),
        )  # fmt: skip
        self.shutting_down = False
        self._shutdown = asyncio.Event()
        self.http = httpx.AsyncClient(timeout=2.0)
        self.supervisor = Supervisor(config.supervisor, self.state, self.http)
        self.reconciler = Reconciler(self.supervisor)
        self.control_plane = ControlPlane(
            config.control_plane,
            NodeIdentity(config.name, config.tier, config.gpus, config.advertise_url, AGENT_VERSION, config.engine),
            self.state, bootstrap_token=config.bootstrap_token, ca_bundle=config.ca_bundle,
        )  # fmt: skip
        self.reporter = Reporter(
            self.control_plane, self.supervisor, self.reconciler, gpu_reader(config), http=self.http,
            agent_version=AGENT_VERSION, buffer_samples=config.buffer_samples,
        )  # fmt: skip

    def accept(self, assignment: Assignment) -> None:
        """Make ``assignment`` the node's desired state: persisted first, then reconciled in the background."""
        self.state.save_assignment(assignment.to_json())
        self.reconciler.apply(assignment)

    def status(self) -> dict[str, Any]:
        credentials = self.control_plane.credentials
        return {
            "node": self.config.name, "node_id": credentials.node_id if credentials else None,
            "generation": self.reconciler.desired.generation, "generation_applied": self.reconciler.applied_generation,
            "agent_version": AGENT_VERSION, "workers": self.supervisor.views(), "reporting": self.reporter.stats(),
        }  # fmt: skip

    def request_shutdown(self) -> None:
        if self._shutdown.is_set():
            log.info("already shutting down")
        self._shutdown.set()

    def _stored_assignment(self) -> Assignment:
        raw = self.state.load_assignment()
        if raw is None:
            return Assignment(node=self.config.name, generation=0)
        try:
            return parse_assignment(raw, self.limits)
        except AssignmentError as error:
            log.error("the stored assignment no longer fits this node (%s): starting with none", error)
            return Assignment(node=self.config.name, generation=0)

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.listen_host else socket.AF_INET
        try:
            return socket.create_server((self.config.listen_host, self.config.listen_port), family=family)
        except OSError as error:
            raise StateError(f"cannot listen on {self.config.listen_host}:{self.config.listen_port}: {error}") from None

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop the workers and say goodbye."""
        config = self.config
        self.state.lock()
        listener = self._listen()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_shutdown)
        self.control_plane.load_stored()
        assignment = self._stored_assignment()
        adopt = await self.supervisor.recover(assignment)
        if assignment.generation > 0:
            log.info("resuming generation %d from %s", assignment.generation, self.state.path)
            self.reconciler.apply(assignment, adopt=adopt)
        server = _Server(uvicorn.Config(
            AgentApi(self).app(), ssl_certfile=config.tls_cert, ssl_keyfile=config.tls_key, log_level="warning",
            access_log=False, lifespan="off", timeout_graceful_shutdown=5,
        ))  # fmt: skip
        serving = loop.create_task(server.serve(sockets=[listener]), name="api")
        log.info("agent %s listening on %s (advertised as %s), control plane %s", config.name,
                 f"{config.listen_host}:{config.listen_port}", config.advertise_url, config.control_plane)  # fmt: skip
        reporter = self.reporter
        loops = [
            loop.create_task(reporter.run_heartbeats(config.heartbeat_s), name="heartbeats"),
            loop.create_task(reporter.run_sampling(config.sample_s), name="sampling"),
            loop.create_task(reporter.run_sending(config.sample_s), name="sending"),
        ]
        try:
            await self._shutdown.wait()
        finally:
            self.shutting_down = True
            log.info("shutting down: stopping workers")
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.supervisor.stop_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reporter.heartbeat(final=True), 10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reporter.flush(), 10.0)
            server.should_exit = True
            await serving
            await self.http.aclose()
            await self.control_plane.close()
            self.state.unlock()
            log.info("agent stopped; reporting: %s", json.dumps(reporter.stats(), sort_keys=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent until it is stopped; the exit status says how it ended."""
    parser = build_parser()
    config = config_from_args(parser.parse_args(argv), parser)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(NodeAgent(config).run())
    except (StateError, OSError) as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
