"""The demo's simulated fleet and service: what `make demo` sets up through the same services the API uses.

Every node is a real node agent (`python -m agents.node`) running sim engines on simulated GPUs. On one
machine each node gets its own loopback address (127.0.0.11, .12, ...), as separate machines would have
their own, so workers of different nodes can use the same ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from django.db import transaction

from controlplane.accounts.models import Role, User
from controlplane.accounts.services import token_create
from controlplane.planning.models import Plan, PlanStatus, Rollout
from controlplane.planning.planner import PlanParams, plan_create
from controlplane.planning.rollouts import plan_approve_and_roll_out
from controlplane.traffic.models import Service
from controlplane.traffic.services import api_key_create, service_create
from profiler.traces import read_trace


@dataclass(frozen=True)
class DemoNode:
    name: str
    tier: str
    gpus: int
    address: str


NODES = (
    DemoNode("h100-a", "H100-SXM-80GB", 4, "127.0.0.11"),
    DemoNode("h100-b", "H100-SXM-80GB", 4, "127.0.0.12"),
    DemoNode("h200-a", "H200-SXM-141GB", 4, "127.0.0.13"),
    DemoNode("a100-a", "A100-SXM-80GB", 4, "127.0.0.14"),
    DemoNode("a100-b", "A100-SXM-80GB", 4, "127.0.0.15"),
    DemoNode("l40s-a", "L40S-48GB", 4, "127.0.0.16"),
)
AGENT_PORT = 9100
SERVICE = "chat"
MODEL = "llama-3.1-8b"


def bootstrap_token() -> str:
    """A fresh bootstrap token for the demo's agents (tokens are stored hashed: a new one each run)."""
    agents, created = User.objects.get_or_create(username="demo-agents", defaults={"role": Role.AGENT})
    if created:
        agents.set_unusable_password()
        agents.save(update_fields=["password"])
    _, raw = token_create(actor=None, user=agents, name="demo bootstrap", scope="bootstrap", ttl_days=1)
    return raw


def admin_api_token(username: str) -> str:
    """An API token of the demo admin, for scripts (the CI smoke test reads the API with it)."""
    admin = User.objects.get(username=username)
    _, raw = token_create(actor=None, user=admin, name="demo scripts", ttl_days=1)
    return raw


@transaction.atomic
def demo_service() -> Service:
    """The demo's service, rebalanced every few minutes with auto-approve, so the fleet follows its traffic."""
    service = Service.objects.filter(name=SERVICE).first()
    if service is None:
        service = service_create(
            actor=None, name=SERVICE, model_name=MODEL, ttft_slo_s=1.0, tpot_slo_s=0.1, auto_approve=True,
            rebalance_interval_s=180, rebalance_min_saving=0.1, min_instances_per_phase=1,
        )
    return service


def client_key(service: Service, key_file: Path) -> str:
    """The client key the load generator uses; kept in `key_file` (0600) across demo runs."""
    if key_file.exists() and service.api_keys.filter(revoked_at__isnull=True).exists():
        return key_file.read_text().strip()
    _, raw = api_key_create(actor=None, service=service, name="demo load generator")
    key_file.touch(mode=0o600)
    key_file.write_text(raw + "\n")
    return raw


def first_rollout(service: Service, trace: Path, rate_rps: float) -> Rollout | None:
    """Plan the service for the trace's lengths at `rate_rps` and roll it out, unless a plan is already active."""
    if Plan.objects.filter(service=service, status__in=[PlanStatus.ACTIVE, PlanStatus.ROLLING_OUT]).exists():
        return None
    lengths = tuple((r.prompt_tokens, r.output_tokens) for r in islice(read_trace(trace, "azure"), 2000))
    plan = plan_create(actor=None, service=service, params=PlanParams(
        source="explicit", rate_rps=rate_rps, lengths=lengths, objective="cost",
    ))
    return plan_approve_and_roll_out(actor=None, plan=plan, strategy="all-at-once")


def router_url(service: Service) -> str | None:
    """Where the service's router listens, from its active (or rolling-out) plan."""
    plan = (Plan.objects.filter(service=service, status__in=[PlanStatus.ACTIVE, PlanStatus.ROLLING_OUT])
            .order_by("-created_at").first())
    if plan is None:
        return None
    addresses = {node.name: node.address for node in NODES}
    for entry in plan.placement:
        for worker in entry["workers"]:
            if worker["role"] == "router":
                return f"http://{addresses.get(entry['node'], '127.0.0.1')}:{worker['port']}"
    return None
