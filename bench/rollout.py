"""Seconds for a rolling rollout over 100 simulated node agents, and how many steps it took.

    python bench/rollout.py [--json] [--nodes 100] [--batch-nodes 10]

The control plane is real (PostgreSQL, the rollout executor, signed httpx calls to the agents); the
agents are simulated in this process: one Starlette app serves every node's agent API under
`/agents/<node>`, verifies each call's signature with that node's key, and a heartbeat thread reports
each pushed assignment applied and its workers ready half a second later (a real agent reconciles, a
sim worker starts in about 0.3 s). The executor is driven in this process instead of through Celery.
The service moves from one placement on every node to another that uses different GPUs, so every node
goes make-before-break: start, wait ready, route, drain, stop. Cost grows linearly with nodes (one
assignment per node per phase, plus polling of the batch being started).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_json_flag, emit
from bench.django_env import setup_postgres_django

NAME = "rollout"
APPLY_DELAY_S = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def placement(nodes: list[str], service: str, gpus: tuple[int, ...], port0: int) -> list[dict[str, Any]]:
    return [{"node": node, "workers": [
        {"name": f"{service}-{'prefill' if i == 0 else 'decode'}-{gpu}", "role": "prefill" if i == 0 else "decode",
         "engine": "sim", "model": "llama-3.1-8b", "tp": 1, "gpu_ids": [gpu], "port": port0 + i, "tier": "H100-SXM-80GB",
         "dtype": "bf16", "service": service, "engine_args": {}}
        for i, gpu in enumerate(gpus)
    ]} for node in nodes]


class SimulatedAgents:
    """Every node's agent API in one app; assignments are applied (reported by heartbeat) after a delay."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self.keys = keys
        self.held: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.pending: dict[str, float] = {}
        self.lock = threading.Lock()

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from profiler.signing import SignatureError, verify

        async def call(request: Request) -> JSONResponse:
            node, rest = request.path_params["node"], "/" + request.path_params["rest"]
            body = await request.body()
            try:
                generation = verify(self.keys[node], dict(request.headers), method=request.method, path=rest,
                                    body=body, now=time.time())
            except (SignatureError, KeyError) as exc:
                return JSONResponse({"error": {"code": "bad_signature", "message": str(exc)}}, status_code=401)
            if rest == "/v1/assignment":
                with self.lock:
                    held = self.held.get(node, (0, []))[0]
                    if generation < held:
                        return JSONResponse({"error": {"code": "stale_generation", "message": "stale"}}, 409)
                    self.held[node] = (generation, json.loads(body)["workers"])
                    self.pending[node] = time.monotonic() + APPLY_DELAY_S
                return JSONResponse({"accepted": True, "generation": generation}, status_code=202)
            if rest == "/v1/status":
                workers = self.held.get(node, (0, []))[1]
                return JSONResponse({"node": node, "workers": [{"name": w["name"], "status": "ready", "drained": True}
                                                               for w in workers]})
            return JSONResponse({"drained": True}, status_code=202)

        return Starlette(routes=[Route("/agents/{node}/{rest:path}", call, methods=["GET", "PUT", "POST"])])

    def heartbeat_forever(self, node_ids: dict[str, int]) -> None:
        from django.db import close_old_connections

        from controlplane.fleet.models import Node
        from controlplane.fleet.registration import node_heartbeat

        while True:
            now = time.monotonic()
            with self.lock:
                due = [node for node, at in self.pending.items() if at <= now]
                for node in due:
                    del self.pending[node]
                applied = {node: self.held[node] for node in due}
            for node, (generation, workers) in applied.items():
                node_heartbeat(node=Node(pk=node_ids[node]), generation_applied=generation, agent_version="bench",
                               workers=[{"name": w["name"], "role": w["role"], "engine": "sim", "model_name": w["model"],
                                         "tp": w["tp"], "gpu_ids": w["gpu_ids"], "port": w["port"], "status": "ready",
                                         "service_id": None, "plan_id": None} for w in workers])
            close_old_connections()
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--batch-nodes", type=int, default=10)
    add_json_flag(parser)
    args = parser.parse_args()
    setup_postgres_django()
    import uvicorn

    from controlplane.accounts.models import User
    from controlplane.accounts.services import token_create
    from controlplane.fleet.models import GpuTier, Node
    from controlplane.fleet.registration import node_register
    from controlplane.planning.models import Plan, PlanStatus, Rollout
    from controlplane.planning.rollouts import plan_approve_and_roll_out, rollout_advance
    from controlplane.traffic.models import Service
    from profiler.signing import signing_key

    names = [f"bench-rollout-{i:03d}" for i in range(args.nodes)]
    Node.objects.filter(name__startswith="bench-rollout-").delete()
    Service.objects.filter(name="bench-rollout").delete()
    service = Service.objects.create(name="bench-rollout", model_name="llama-3.1-8b", ttft_slo_s=1, tpot_slo_s=0.1)
    agents_user, _ = User.objects.get_or_create(username="bench-agents", defaults={"role": "agent"})
    _, bootstrap = token_create(actor=None, user=agents_user, name="bench", scope="bootstrap")
    from controlplane.accounts.models import ApiToken

    bootstrap_row = ApiToken.objects.get(prefix=bootstrap.split("_")[1])
    port = free_port()
    tier = GpuTier.objects.get(name="H100-SXM-80GB")
    keys, ids = {}, {}
    for name in names:
        registration = node_register(bootstrap=bootstrap_row, name=name, tier=tier, gpu_count=8,
                                     agent_url=f"http://127.0.0.1:{port}/agents/{name}")
        keys[name] = signing_key(registration.token)
        ids[name] = registration.node.pk
    Node.objects.filter(name__in=names).update(status="ready")

    agents = SimulatedAgents(keys)
    server = uvicorn.Server(uvicorn.Config(agents.app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    threading.Thread(target=agents.heartbeat_forever, args=(ids,), daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    def roll_out(gpus: tuple[int, ...], port0: int, strategy: str) -> tuple[float, int, Rollout]:
        plan = Plan.objects.create(service=service, status=PlanStatus.DRAFT,
                                   placement=placement(names, service.name, gpus, port0), routing={"pools": {}})
        began = time.perf_counter()
        rollout = plan_approve_and_roll_out(actor=None, plan=plan, strategy=strategy,
                                            options={"batch_nodes": args.batch_nodes, "drain_deadline_s": 5})
        while True:
            again = rollout_advance(rollout.pk)
            rollout.refresh_from_db()
            if rollout.status != "running":
                break
            time.sleep(again or 0.05)
        return time.perf_counter() - began, rollout.steps.count(), rollout

    roll_out((0, 1, 2, 3), 8100, "all-at-once")  # the active placement the measured rollout starts from
    seconds, steps, rollout = roll_out((4, 5, 6, 7), 8200, "rolling")
    assert rollout.status == "succeeded", rollout.reason
    server.should_exit = True
    emit(NAME, {"nodes": args.nodes, "seconds": round(seconds, 2), "steps": steps, "batch_nodes": args.batch_nodes,
                "strategy": "rolling"},
         [{"strategy": "rolling", "nodes": args.nodes, "batch_nodes": args.batch_nodes, "steps": steps,
           "seconds": seconds}], as_json=args.json, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
