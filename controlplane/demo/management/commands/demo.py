"""`make demo`: the whole loop on one machine, on the embedded defaults, until Ctrl-C.

It migrates and seeds, starts the web server and a Celery worker with beat, then a simulated fleet of
node agents over four GPU tiers; computes a first plan for the `chat` service and rolls it out; and
replays the Azure conversation trace, then the code trace, through the service's router, over and
over. Profiles turn from one class to the other, scheduled rebalancing proposes and (the demo's
policy) rolls out new plans, and costs, power and attainment move on the dashboards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from controlplane.demo import fleet

# The demo runs in real time with one-minute profile windows, so classes change within minutes.
DEMO_ENV = {
    "PROFILE_WINDOW_S": "60",
    "PROFILE_INTERVAL_S": "30",
    "REBALANCE_CHECK_INTERVAL_S": "30",
    "HEARTBEAT_TIMEOUT_S": "20",
    "HEARTBEAT_SWEEP_INTERVAL_S": "10",
}
TRACES = ("AzureLLMInferenceTrace_conv.csv", "AzureLLMInferenceTrace_code.csv")
REPLAY_S = 600
FIRST_PLAN_RATE_RPS = 5.0


class Command(BaseCommand):
    help = "Run the control plane, a simulated fleet, a router and a load generator (the whole loop)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-fleet", action="store_true", help="only the control plane, no agents or load")

    def handle(self, *args: Any, host: str, port: int, no_fleet: bool, **options: Any) -> None:
        var: Path = settings.VAR_DIR
        demo_dir = var / "demo"
        demo_dir.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password_file = var / "demo_admin_password"
        call_command("ensure_admin", username="admin", password_file=password_file)

        env = dict(os.environ, **DEMO_ENV, SECRET_KEY=settings.SECRET_KEY, CLEAVE_VAR_DIR=str(var),
                   PYTHONUNBUFFERED="1")
        logs = demo_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()
        self._spawn("web", [sys.executable, "-m", "gunicorn", "controlplane.wsgi", "--bind", f"{host}:{port}",
                            "--workers", "2", "--threads", "4", "--access-logfile", "-"], env, logs, quiet=True)
        self._spawn("celery", [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--beat", "-Q",
                               "default,rollout,telemetry,profiling", "--concurrency", "2", "-l", "INFO",
                               "--schedule", str(var / "celerybeat-schedule")], env, logs, quiet=True)
        control_plane = f"http://{host}:{port}"
        self._wait_healthy(control_plane)
        token_file = demo_dir / "admin_token"
        token_file.touch(mode=0o600)
        token_file.write_text(fleet.admin_api_token("admin") + "\n")
        self.stdout.write(self.style.SUCCESS(
            f"\nCleave is up: {control_plane}/  (API docs: /api/docs/)\n"
            f"log in as admin / {password_file.read_text().strip()}\n"
            f"logs: {logs}\nCtrl-C stops everything.\n"
        ))
        if not no_fleet:
            self._start_fleet(control_plane, env, demo_dir, logs)
        self._wait()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], logs: Path, *, quiet: bool = False) -> None:
        out = (logs / f"{name}.log").open("ab") if quiet else None
        self.processes.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if quiet else None))

    def _wait_healthy(self, url: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit("the web server did not come up within 60 s; see var/demo/logs/web.log")

    def _start_fleet(self, control_plane: str, env: dict[str, str], demo_dir: Path, logs: Path) -> None:
        agent_env = dict(env, CLEAVE_BOOTSTRAP_TOKEN=fleet.bootstrap_token())
        for node in fleet.NODES:
            self._spawn(f"agent-{node.name}", [
                sys.executable, "-m", "agents.node", "--control-plane", control_plane, "--tier", node.tier,
                "--gpus", str(node.gpus), "--name", node.name, "--listen", f"{node.address}:{fleet.AGENT_PORT}",
                "--state-dir", str(demo_dir / "agents" / node.name), "--engine", "sim", "--heartbeat-s", "2",
                "--sample-s", "5", "--log-level", "warning",
            ], agent_env, logs, quiet=True)
        service = fleet.demo_service()
        key = fleet.client_key(service, demo_dir / "client_key")
        threading.Thread(target=self._drive, args=(service, key, logs), daemon=True).start()

    def _drive(self, service: Any, key: str, logs: Path) -> None:
        """Wait for the nodes, roll out the first plan, then replay traffic through the router forever."""
        from controlplane.fleet.models import Node

        data = Path(settings.BASE_DIR) / "data" / "traces" / "azure_llm_2023"
        while Node.objects.filter(name__in=[n.name for n in fleet.NODES], status="ready").count() < len(fleet.NODES):
            time.sleep(1)
        rollout = fleet.first_rollout(service, data / TRACES[0], FIRST_PLAN_RATE_RPS)
        if rollout is not None:
            self.stdout.write(f"first plan {rollout.plan_id} rolling out (rollout {rollout.pk})")
        turn = 0
        while not self.stopping.is_set():
            router = fleet.router_url(service)
            if router is None or not _answers(f"{router}/health"):
                self.stopping.wait(2)
                continue
            trace = TRACES[turn % len(TRACES)]
            self.stdout.write(f"replaying {trace} through {router} for {REPLAY_S} s")
            with (logs / "loadgen.log").open("ab") as out:
                loadgen = subprocess.Popen([
                    sys.executable, "-m", "agents.loadgen", "--router", router, "--api-key", key, "--model", fleet.MODEL,
                    "--trace", str(data / trace), "--format", "azure", "--speed", "1", "--duration", str(REPLAY_S),
                    "--stream", "--ttft-slo", "1.0", "--tpot-slo", "0.1", "--json",
                ], stdout=out, stderr=subprocess.STDOUT)
            self.processes.append(loadgen)
            loadgen.wait()
            turn += 1

    def _wait(self) -> None:
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(process.poll() is None for process in self.processes[:2]):
            time.sleep(0.5)
        self.stopping.set()  # no new load from here on
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        if not stopping:
            raise SystemExit("the web server or the Celery worker stopped unexpectedly; see var/demo/logs/")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
