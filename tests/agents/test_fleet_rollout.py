"""The whole loop on real processes: the control plane (live server), a real Celery worker and broker, and
three node agents running sim engines. A plan is computed, approved and rolled out; the agents then run
exactly the workers the plan says, samples arrive, and the cost the API reports is the plan's GPUs at
their prices. And the faults: an agent killed mid-rollout trips the breaker; a Celery worker killed
mid-step is taken over by another, with no step run twice.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db.models import Count

from controlplane.fleet.models import Assignment, GpuTier, Node, Worker
from controlplane.planning.models import Plan, Rollout, RolloutStep
from controlplane.telemetry.models import NodeSample
from tests.agents.conftest import wait_until
from tests.factories import ServiceFactory, UserFactory
from tests.processes import celery_worker

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow, pytest.mark.e2e]

TIERS = {"n-h100": "H100-SXM-80GB", "n-a100": "A100-SXM-80GB", "n-l40s": "L40S-48GB"}
LENGTHS = [[800, 60], [1200, 30], [400, 150], [2000, 20], [600, 90]] * 4


def start_fleet(start_agent: Any) -> dict[str, Any]:
    agents = {name: start_agent(name, "--tier", tier, "--engine", "sim") for name, tier in TIERS.items()}
    wait_until(lambda: Node.objects.filter(name__in=TIERS, status="ready").count() == len(TIERS), 30, "nodes ready")
    return agents


def plan_for(api: Any, service_id: int, rate: float = 2.0) -> dict[str, Any]:
    response = api.post(f"/api/v1/services/{service_id}/plans", {
        "source": "explicit", "rate_rps": rate, "lengths": LENGTHS, "objective": "cost",
    }, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def plan_gpus_cost(plan: dict[str, Any]) -> float:
    prices = {tier.name: float(tier.price_usd_per_gpu_h) for tier in GpuTier.objects.all()}
    return sum(prices[i["tier"]] * i["tp"] * i["count"] for i in plan["instances"])


def finished(rollout_id: int) -> Rollout | None:
    rollout = Rollout.objects.get(pk=rollout_id)
    return rollout if rollout.status not in ("pending", "running") else None


def wait_for_rollout(rollout_id: int, timeout_s: float = 90) -> Rollout:
    try:
        return wait_until(lambda: finished(rollout_id), timeout_s, "the rollout to end")
    except TimeoutError:
        steps = RolloutStep.objects.filter(rollout_id=rollout_id).order_by("index")
        workers = list(Worker.objects.values_list("node__name", "name", "status"))
        raise TimeoutError(f"rollout {rollout_id} still running; steps: "
                           f"{[(s.kind, s.status, s.detail) for s in steps]}; workers: {workers}") from None


def test_an_approved_plan_runs_exactly_on_the_agents_and_is_priced_right(start_agent, api_as):
    agents = start_fleet(start_agent)
    bob = UserFactory(username="bob", role="operator")
    api = api_as(bob)
    service = ServiceFactory(name="chat", ttft_slo_s=2.0, tpot_slo_s=0.2)
    plan = plan_for(api, service.pk)
    with celery_worker():
        rollout = api.post(f"/api/v1/plans/{plan['id']}/approve", {"strategy": "all-at-once"}, format="json").json()
        done = wait_for_rollout(rollout["id"])
    assert done.status == "succeeded", done.reason
    assert Plan.objects.get(pk=plan["id"]).status == "active"

    for entry in plan["placement"]:
        wanted = {w["name"]: w for w in entry["workers"]}
        running = {w["name"]: w for w in agents[entry["node"]].status()["workers"]}
        assert set(running) == set(wanted), entry["node"]
        for name, worker in wanted.items():
            assert running[name]["gpu_ids"] == worker["gpu_ids"]
            assert running[name]["role"] == worker["role"]
    engines = Worker.objects.filter(service=service, status="ready").exclude(role="router")
    assert engines.count() == sum(i["count"] for i in plan["instances"])

    wait_until(lambda: NodeSample.objects.filter(node__name__in=TIERS).values("node").distinct().count() == 3, 20,
               "samples from every node")
    summary = api.get("/api/v1/telemetry/summary", {"window": "1h", "service": "chat"}).json()
    assert summary["cost_usd_per_h"] == pytest.approx(plan_gpus_cost(plan))


def test_an_agent_killed_mid_rollout_trips_the_breaker_and_rolls_back(start_agent, api_as):
    agents = start_fleet(start_agent)
    api = api_as(UserFactory(username="bob", role="operator"))
    service = ServiceFactory(name="chat", ttft_slo_s=2.0, tpot_slo_s=0.2)
    plan = plan_for(api, service.pk)
    victim = next(entry["node"] for entry in plan["placement"] if any(w["role"] != "router" for w in entry["workers"]))
    agents[victim].kill()
    with celery_worker():
        rollout = api.post(f"/api/v1/plans/{plan['id']}/approve", {
            "strategy": "all-at-once", "options": {"ready_timeout_s": 8},
        }, format="json").json()
        done = wait_for_rollout(rollout["id"])
    assert done.status == "rolled_back"
    assert victim in done.reason or "not ready" in done.reason or "unreachable" in done.reason
    assert Plan.objects.get(pk=plan["id"]).status == "rolled_back"
    failed = RolloutStep.objects.get(rollout=done, status="failed")
    assert failed.kind in ("start", "wait_ready")
    # The survivors were put back as they were: nothing of the plan runs there.
    for name, agent in agents.items():
        if name != victim:
            wait_until(lambda agent=agent: not [w for w in agent.status()["workers"] if w["service"] == "chat"], 20,
                       f"{name} back to its old workers")


def test_a_celery_worker_killed_mid_step_is_resumed_by_another_without_repeating_a_step(start_agent, api_as, settings):
    start_fleet(start_agent)
    api = api_as(UserFactory(username="bob", role="operator"))
    service = ServiceFactory(name="chat", ttft_slo_s=2.0, tpot_slo_s=0.2)
    plan = plan_for(api, service.pk)
    lease = "3"
    with celery_worker(ROLLOUT_STEP_LEASE_S=lease) as first:
        rollout = api.post(f"/api/v1/plans/{plan['id']}/approve", {"strategy": "rolling",
                                                                   "options": {"batch_nodes": 1}}, format="json").json()
        # Kill it hard once it has done some work: a step claimed, or the first ones done.
        wait_until(lambda: RolloutStep.objects.filter(rollout_id=rollout["id"], status__in=["claimed", "done"]).exists(),
                   30, "the first step to be claimed")
        first.kill()
        first.wait()
    with celery_worker(ROLLOUT_STEP_LEASE_S=lease, ROLLOUT_RESUME_INTERVAL_S="2"):
        # The beat is not running in tests: nudge the rollout as the resume beat would.
        from controlplane.planning.tasks import advance_rollout

        time.sleep(float(lease) + 0.5)
        advance_rollout.delay(rollout["id"])
        done = wait_for_rollout(rollout["id"])
    assert done.status == "succeeded", done.reason
    # Each start step created one assignment per node it touched: none twice.
    per_node = Assignment.objects.filter(plan_id=plan["id"]).values("node").annotate(n=Count("id"))
    starts = RolloutStep.objects.filter(rollout=done, kind="start")
    assert all(len(step.detail["assignments"]) == len(step.params["nodes"]) for step in starts)
    assert all(row["n"] <= 2 for row in per_node)  # start, and at most a routing change on the router's node
