"""Every page in a browser, as each role: what each role is shown, what a viewer is refused, errors at the
field, and a screenshot of each page for the README (docs/screenshots/)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.planning.models import Plan
from tests.controlplane.console.seed import Seeded, seed
from tests.e2e.conftest import screenshot, wait_for_figures
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def seeded(transactional_db) -> Seeded:
    return seed(now=datetime.now(UTC))


def test_every_page_draws_its_figures(seeded, log_in):
    page = log_in(UserFactory(username="alice", role="admin"))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    for name, url in [("overview", "/?window=1h"), ("fleet", "/fleet/"), ("node", f"/fleet/nodes/{seeded.nodes[0].name}/"),
                      ("traffic", "/traffic/?span=1h"), ("plans", "/plans/"), ("plan", f"/plans/{seeded.draft.pk}/"),
                      ("rollout", f"/plans/{seeded.rolling.pk}/"), ("rebalancing", "/rebalancing/"),
                      ("models", "/models/"), ("audit", "/audit/"), ("users", "/users/")]:
        page.goto(url)
        wait_for_figures(page)
        screenshot(page, name)
    assert errors == []


def test_each_role_is_shown_what_it_may_do(seeded, log_in):
    plan_url = f"/plans/{seeded.draft.pk}/"
    viewer = log_in(UserFactory(username="charlie", role="viewer"))
    assert viewer.get_by_test_id("whoami").inner_text() == "charlie · Viewer"
    viewer.goto(plan_url)
    assert viewer.get_by_test_id("approve").count() == 0
    assert viewer.get_by_test_id("reject").count() == 0
    assert viewer.get_by_role("link", name="Users & tokens").count() == 0
    viewer.goto("/what-if/")
    assert viewer.get_by_test_id("whatif-form").count() == 0

    operator = log_in(UserFactory(username="bob", role="operator"))
    operator.goto(plan_url)
    assert operator.get_by_test_id("approve").is_visible()
    assert operator.get_by_role("link", name="Users & tokens").count() == 0

    admin = log_in(UserFactory(username="alice", role="admin"))
    admin.get_by_role("link", name="Users & tokens").click()
    admin.wait_for_url("**/users/")


def test_a_viewers_forged_approval_is_refused(seeded, log_in, live_server):
    page = log_in(UserFactory(username="charlie", role="viewer"))
    page.goto(f"/plans/{seeded.draft.pk}/")
    csrf = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    response = page.request.post(f"{live_server.url}/plans/{seeded.draft.pk}/approve",
                                 form={"strategy": "rolling", "csrfmiddlewaretoken": csrf},
                                 headers={"Referer": f"{live_server.url}/plans/{seeded.draft.pk}/"})
    assert response.status == 403
    assert Plan.objects.get(pk=seeded.draft.pk).status == "draft"


def test_a_bad_what_if_is_named_at_its_fields(seeded, log_in):
    page = log_in(UserFactory(username="bob", role="operator"))
    page.goto("/what-if/")
    # The browser would stop a negative rate itself (min on the input); the server must name it too.
    page.eval_on_selector("[data-testid=whatif-form]", "form => { form.noValidate = true; }")
    page.select_option("#id_service", label="chat")
    page.fill("#id_rate_rps", "-5")
    page.fill("#id_prompt_tokens_p50", "800")
    page.fill("#id_prompt_tokens_p90", "100")
    page.get_by_test_id("run-whatif").click()
    assert page.locator("[data-error-for=rate_rps]").is_visible()
    assert page.locator("[data-error-for=prompt_tokens_p90]").inner_text() == (
        "The 90th percentile cannot be below the median.")
    assert page.locator("[data-error-for=output_tokens_p50]").is_visible()
    assert page.input_value("#id_prompt_tokens_p50") == "800"  # what was typed stays
