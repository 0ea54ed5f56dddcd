"""The whole loop, measured: a sped-up replay of Azure conv through the demo's fleet and its router.

    python bench/loop.py [--json] [--minutes 10] [--speed 5]

The control plane (gunicorn and a Celery worker, on the PostgreSQL bench database), the demo's six node
agents (sim engines at time scale 1/speed), the first plan rolled out by Celery, the router it placed,
and the load generator replaying the first `--minutes` of Azure conv at `--speed`. Reports SLO
attainment (TTFT 1 s, TPOT 0.1 s, in model time), $ per million tokens (the plan's GPU cost over the
replayed span / tokens served) and the request records the router sent and the control plane stored:
every one, none twice. Wall time is about minutes x 60 / speed plus a minute of start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from itertools import takewhile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import add_json_flag, emit
from bench.django_env import ROOT, setup_postgres_django

NAME = "loop"
TRACE = ROOT / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what} not within {timeout_s} s")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=5.0)
    add_json_flag(parser)
    args = parser.parse_args()
    # This process and the Celery worker must share the (filesystem) broker: one var dir for both.
    work = Path(tempfile.mkdtemp(prefix="cleave-loop-"))
    os.environ["CLEAVE_VAR_DIR"] = str(work)
    database_url = setup_postgres_django()
    from controlplane.demo import fleet
    from controlplane.fleet.models import Node
    from controlplane.planning.models import Plan, Rollout
    from controlplane.traffic.models import RequestRecord, Service
    from profiler.traces import read_trace

    time_scale = 1 / args.speed
    Service.objects.filter(name=fleet.SERVICE).delete()
    Node.objects.filter(name__in=[n.name for n in fleet.NODES]).delete()
    port = free_port()
    control_plane = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": database_url, "CLEAVE_VAR_DIR": str(work), "DEBUG": "0",
           "SECRET_KEY": "bench-loop-secret-key-not-for-production-xxxxxxxx", "PYTHONPATH": str(ROOT),
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING"}
    logs = work / "logs"
    logs.mkdir()
    started: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, argv: list[str], extra: dict[str, str] | None = None) -> None:
        with (logs / f"{name}.log").open("ab") as out:
            started.append(subprocess.Popen(argv, cwd=ROOT, env={**env, **(extra or {})}, stdout=out,
                                            stderr=subprocess.STDOUT))

    try:
        spawn("web", [sys.executable, "-m", "gunicorn", "controlplane.wsgi", "--bind", f"127.0.0.1:{port}",
                      "--workers", "2", "--threads", "4"])
        spawn("celery", [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q",
                         "default,rollout,telemetry,profiling", "--concurrency", "1", "-l", "WARNING"])
        wait_for(lambda: answers(f"{control_plane}/healthz"), 60, "the web server")
        bootstrap = fleet.bootstrap_token()
        for node in fleet.NODES:
            spawn(f"agent-{node.name}", [
                sys.executable, "-m", "agents.node", "--control-plane", control_plane, "--tier", node.tier, "--gpus",
                str(node.gpus), "--name", node.name, "--listen", f"{node.address}:{fleet.AGENT_PORT}", "--state-dir",
                str(work / "agents" / node.name), "--engine", "sim", "--time-scale", str(time_scale),
                "--heartbeat-s", "1", "--sample-s", "5", "--log-level", "warning",
            ], {"CLEAVE_BOOTSTRAP_TOKEN": bootstrap})
        names = [n.name for n in fleet.NODES]
        wait_for(lambda: Node.objects.filter(name__in=names, status="ready").count() == len(names), 60, "the nodes")
        service = fleet.demo_service()
        key = fleet.client_key(service, work / "client_key")
        records = list(takewhile(lambda r: (r.arrival_s or 0.0) < args.minutes * 60, read_trace(TRACE, "azure")))
        rate = len(records) / (args.minutes * 60)
        rollout = fleet.first_rollout(service, TRACE, rate)
        assert rollout is not None
        wait_for(lambda: Rollout.objects.get(pk=rollout.pk).status != "running", 120, "the first rollout")
        plan = Plan.objects.get(pk=rollout.plan_id)
        router = wait_for(lambda: (url := fleet.router_url(service)) and answers(f"{url}/health") and url, 60,
                          "the router")
        began = time.monotonic()
        report = json.loads(subprocess.run(
            [sys.executable, "-m", "agents.loadgen", "--router", router, "--api-key", key, "--model", fleet.MODEL,
             "--trace", str(TRACE), "--format", "azure", "--speed", str(args.speed), "--duration",
             str(args.minutes * 60 / args.speed), "--stream", "--ttft-slo", "1.0", "--tpot-slo", "0.1",
             "--time-scale", str(time_scale), "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1])
        replay_wall_s = time.monotonic() - began
        sent = report["requests"]
        deadline = time.monotonic() + 60  # the router sends in batches every couple of seconds
        while RequestRecord.objects.filter(service=service).count() < sent and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(3)  # anything the router would send twice would land by now
        stored = RequestRecord.objects.filter(service=service).count()
        served = RequestRecord.objects.filter(service=service, status="ok")
        tokens = sum(p + o for p, o in served.values_list("prompt_tokens", "output_tokens"))
        model_hours = replay_wall_s * args.speed / 3600
        usd = float(plan.predicted_cost_usd_per_h or 0.0) * model_hours
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
    emit(NAME, {
        "attainment": report["slo"]["attainment"], "usd_per_mtok": round(usd / tokens * 1e6, 4) if tokens else None,
        "records_sent": sent, "records_stored": stored, "minutes": args.minutes, "speed": args.speed,
        "plan_cost_usd_per_h": plan.predicted_cost_usd_per_h, "errors": report["errors"],
        "ttft_p90_s": report["ttft_s"]["p90"], "tpot_p90_s": report["tpot_s"]["p90"],
    }, [{"figure": "requests sent", "value": sent}, {"figure": "records stored", "value": stored},
        {"figure": "attainment", "value": report["slo"]["attainment"]}], as_json=args.json,
        results_dir=args.results_dir)


if __name__ == "__main__":
    main()
