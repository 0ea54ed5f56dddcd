"""The whole loop in a browser: a simulated fleet of real node agents reports to the control plane, the
overview fills and refreshes itself, an operator plans a workload on the what-if page, approves the plan
and watches its rollout finish, with a real Celery worker driving the rollout and the agents starting
the simulated engines."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from controlplane.accounts.services import token_create
from controlplane.fleet.models import Node, NodeStatus
from controlplane.telemetry.models import NodeSample
from controlplane.traffic.services import service_create
from tests.e2e.conftest import screenshot, wait_for_figures
from tests.e2e.simfleet import sim_agents, wait_until
from tests.factories import UserFactory
from tests.processes import celery_worker, child_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

def rollout_story() -> str:
    """What the rollout did, for a failure message."""
    from controlplane.fleet.models import Worker
    from controlplane.planning.models import Rollout

    lines = []
    for rollout in Rollout.objects.prefetch_related("steps"):
        lines.append(f"rollout {rollout.pk} {rollout.status} {rollout.reason}")
        lines.extend(f"  {step.index} {step.kind} {step.status} {step.detail}" for step in rollout.steps.all())
    lines.extend(f"worker {w.node.name}/{w.name} {w.role} {w.status}" for w in Worker.objects.select_related("node"))
    return "\n".join(lines)


NODES = [("sim-h100-a", "H100-SXM-80GB", 4), ("sim-h100-b", "H100-SXM-80GB", 4)]


@pytest.fixture
def running_fleet(live_server, transactional_db, tmp_path, settings) -> Iterator[list[Node]]:
    # The planner places engines of the kind the nodes run; these run the simulated one.
    settings.CLEAVE_WORKER_ENGINE = "sim"
    service_create(actor=None, name="chat", model_name="llama-3.1-8b", ttft_slo_s=2.0, tpot_slo_s=0.2)
    agents_user = UserFactory(username="agents", role="agent")
    _, bootstrap = token_create(actor=None, user=agents_user, name="bootstrap", scope="bootstrap")
    with celery_worker(), sim_agents(control_plane=live_server.url, bootstrap_token=bootstrap, workdir=tmp_path,
                                     nodes=NODES, env=child_env()) as agents:
        try:
            wait_until(lambda: Node.objects.filter(status=NodeStatus.READY).count() == len(NODES), timeout_s=30,
                       what="every node registered and ready")
        except TimeoutError as error:
            raise AssertionError("\n".join([str(error), *(agent.log.read_text()[-2000:] for agent in agents)])) from None
        yield list(Node.objects.order_by("name"))


def test_the_overview_fills_from_a_running_fleet_and_refreshes_itself(running_fleet, log_in):
    page = log_in(UserFactory(username="charlie", role="viewer"))
    stamp = page.locator("[data-live-stamp]")
    wait_until(lambda: NodeSample.objects.filter(node__in=running_fleet).exists(), timeout_s=20,
               what="GPU samples from the agents")
    # Without a reload: the tiles are swapped in by the page's live refresh.
    page.wait_for_function("() => Number(document.querySelector('[data-live-stamp]').dataset.updates || 0) >= 1",
                           timeout=30_000)
    assert stamp.inner_text().startswith("Updated")
    cost = page.get_by_test_id("cost-now").inner_text()
    assert re.fullmatch(r"\$[\d,]+\.\d\d/h", cost), cost
    assert cost != "$0.00/h"
    page.wait_for_function("() => /kW$/.test(document.querySelector('[data-testid=power-now]').innerText)",
                           timeout=30_000)
    assert float(page.get_by_test_id("power-now").inner_text().split()[0]) > 0
    assert page.get_by_test_id("nodes-ready").inner_text().startswith("2 / 2")

    page.goto("/fleet/")
    wait_for_figures(page)
    for node in running_fleet:
        assert page.get_by_role("link", name=node.name).is_visible()
    screenshot(page, "fleet-live")


def test_an_operator_plans_a_workload_approves_it_and_watches_the_rollout_finish(running_fleet, log_in):
    page = log_in(UserFactory(username="bob", role="operator"))
    page.goto("/what-if/")
    page.select_option("#id_service", label="chat")
    page.fill("#id_rate_rps", "2")
    page.fill("#id_prompt_tokens_p50", "400")
    page.fill("#id_prompt_tokens_p90", "1200")
    page.fill("#id_output_tokens_p50", "120")
    page.fill("#id_output_tokens_p90", "400")
    page.get_by_test_id("run-whatif").click()
    result = page.get_by_test_id("whatif-result")
    result.wait_for()
    assert page.get_by_test_id("whatif-cost").inner_text().startswith("$")
    wait_for_figures(page)
    screenshot(page, "whatif")

    page.check("#id_save")
    page.get_by_test_id("run-whatif").click()
    page.wait_for_url(re.compile(r"/plans/\d+/$"))
    assert page.locator(".badge", has_text="Draft").first.is_visible()
    page.select_option("#id_strategy", "all-at-once")
    page.get_by_test_id("approve").click()
    page.wait_for_url(re.compile(r"/plans/\d+/$"))
    page.get_by_test_id("rollout").wait_for()

    # The rollout section refreshes itself until the rollout ends: no reload here.
    page.wait_for_function(
        "() => !['pending', 'running'].includes(document.querySelector('[data-testid=rollout]').dataset.status)",
        timeout=240_000,
    )
    assert page.get_by_test_id("rollout").get_attribute("data-status") == "succeeded", rollout_story()
    assert page.locator("#plan-status .badge").inner_text() == "Active"
    steps = page.locator("[data-testid=rollout-steps] tbody tr[data-step-status]")
    assert steps.count() >= 3
    assert set(steps.evaluate_all("rows => rows.map(row => row.dataset.stepStatus)")) <= {"done", "skipped"}
    wait_for_figures(page)
    screenshot(page, "plan-rolled-out")
