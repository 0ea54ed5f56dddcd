"""Plans: one active per service, held by the database; approve and reject are idempotent and audited."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from controlplane.accounts.models import AuditEvent
from controlplane.planning.models import Plan
from controlplane.planning.services import plan_activate, plan_approve
from tests.factories import PlanFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def test_the_database_holds_one_active_plan_per_service():
    service = ServiceFactory()
    PlanFactory(service=service, status="active")
    with pytest.raises(IntegrityError), transaction.atomic():
        PlanFactory(service=service, status="active")
    PlanFactory(status="active")  # another service may have its own


def test_activating_a_plan_supersedes_the_active_one(bob):
    service = ServiceFactory()
    old = PlanFactory(service=service, status="active")
    new = PlanFactory(service=service, status="approved")
    plan_activate(actor=bob, plan=new)
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == ("superseded", "active")
    assert list(AuditEvent.objects.filter(verb__startswith="plan.").values_list("verb", flat=True).order_by("id")) == [
        "plan.supersede", "plan.activate",
    ]


def test_a_draft_cannot_be_activated_without_approval(bob):
    from controlplane.common.errors import ConflictError

    plan = PlanFactory(status="draft")
    with pytest.raises(ConflictError, match="only a approved or rolling_out plan"):
        plan_activate(actor=bob, plan=plan)


def test_approving_starts_a_rollout_and_approving_twice_is_one_approval(api_as, bob):
    plan = PlanFactory()
    client = api_as(bob)
    first = client.post(f"/api/v1/plans/{plan.pk}/approve", {"strategy": "all-at-once"}, format="json")
    assert first.status_code == 200
    assert first.json()["plan"] == plan.pk
    assert first.json()["strategy"] == "all-at-once"
    again = client.post(f"/api/v1/plans/{plan.pk}/approve")
    assert again.json()["id"] == first.json()["id"]
    assert AuditEvent.objects.filter(verb="plan.approve").count() == 1
    plan.refresh_from_db()
    assert plan.status == "rolling_out"


def test_a_plan_whose_rollout_cannot_start_stays_a_draft(api_as, bob):
    service = ServiceFactory()
    client = api_as(bob)
    client.post(f"/api/v1/plans/{PlanFactory(service=service).pk}/approve")
    second = PlanFactory(service=service)
    response = client.post(f"/api/v1/plans/{second.pk}/approve")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "rollout_in_flight"
    second.refresh_from_db()
    assert second.status == "draft"


def test_an_unknown_strategy_is_named(api_as, bob):
    response = api_as(bob).post(f"/api/v1/plans/{PlanFactory().pk}/approve", {"strategy": "yolo"}, format="json")
    assert response.status_code == 400
    assert "strategy" in response.json()["error"]["fields"]


def test_a_rejected_plan_cannot_be_approved(api_as, bob):
    plan = PlanFactory()
    client = api_as(bob)
    assert client.post(f"/api/v1/plans/{plan.pk}/reject", {"reason": "too costly"}, format="json").status_code == 200
    response = client.post(f"/api/v1/plans/{plan.pk}/approve")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "plan_wrong_status"
    assert Plan.objects.get().reason == "too costly"


def test_plan_approve_records_who(bob):
    plan = plan_approve(actor=bob, plan=PlanFactory())
    assert plan.decided_by == bob
