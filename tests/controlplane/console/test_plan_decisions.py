"""Approving a plan from its page starts its rollout with the chosen strategy; rejecting keeps the reason;
a viewer's POST is refused; a rollout that cannot start leaves the plan as it was."""

from __future__ import annotations

import pytest
from django.test import Client

from controlplane.accounts.models import AuditEvent
from controlplane.planning.models import Plan, Rollout

pytestmark = pytest.mark.django_db


def test_an_operator_approves_a_plan_and_its_rollout_starts(fleet, as_operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = as_operator.post(f"/plans/{fleet.draft.pk}/approve", {"strategy": "canary", "canary_share": "0.2"})
    assert response.status_code == 302
    assert response["Location"] == f"/plans/{fleet.draft.pk}/"
    fleet.draft.refresh_from_db()
    assert fleet.draft.status == "rolling_out"
    assert fleet.draft.decided_by.username == "bob"
    rollout = Rollout.objects.get(plan=fleet.draft)
    assert (rollout.strategy, rollout.options["canary_share"]) == ("canary", 0.2)
    assert len(callbacks) == 1  # the task that advances it, enqueued when the approval commits
    verbs = set(AuditEvent.objects.filter(actor_label="bob").values_list("verb", flat=True))
    assert {"plan.approve", "rollout.start"} <= verbs


def test_a_viewer_cannot_approve_or_reject(fleet, as_viewer):
    assert as_viewer.post(f"/plans/{fleet.draft.pk}/approve", {"strategy": "rolling"}).status_code == 403
    assert as_viewer.post(f"/plans/{fleet.draft.pk}/reject", {"reason": "no"}).status_code == 403
    fleet.draft.refresh_from_db()
    assert fleet.draft.status == "draft"
    assert not AuditEvent.objects.filter(actor_label="charlie").exists()


def test_bad_rollout_options_are_named_and_nothing_is_written(fleet, as_operator):
    response = as_operator.post(f"/plans/{fleet.draft.pk}/approve", {"strategy": "sideways", "canary_share": "5"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-error-for="strategy"' in body
    assert 'data-error-for="canary_share"' in body
    fleet.draft.refresh_from_db()
    assert fleet.draft.status == "draft"
    assert not Rollout.objects.filter(plan=fleet.draft).exists()


def test_when_the_rollout_cannot_start_the_plan_stays_a_draft(fleet, as_operator):
    # chat-1 already has a rollout in flight: the database refuses a second one.
    other = Plan.objects.create(service=fleet.rolling.service, status="draft", placement=[], predictions={})
    response = as_operator.post(f"/plans/{other.pk}/approve", {"strategy": "rolling"})
    assert response.status_code == 409
    assert "already has a rollout in flight" in response.content.decode()
    other.refresh_from_db()
    assert other.status == "draft"
    assert not AuditEvent.objects.filter(verb="plan.approve", object_id=str(other.pk)).exists()


def test_an_operator_rejects_a_plan_with_a_reason(fleet, as_operator):
    response = as_operator.post(f"/plans/{fleet.draft.pk}/reject", {"reason": "too many A100s"})
    assert response.status_code == 302
    fleet.draft.refresh_from_db()
    assert (fleet.draft.status, fleet.draft.reason) == ("rejected", "too many A100s")


def test_a_post_without_the_csrf_token_is_refused(fleet, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert client.post(f"/plans/{fleet.draft.pk}/approve", {"strategy": "rolling"}).status_code == 403
    fleet.draft.refresh_from_db()
    assert fleet.draft.status == "draft"


def test_a_too_long_reason_is_named_and_the_plan_stays_a_draft(fleet, as_operator):
    response = as_operator.post(f"/plans/{fleet.draft.pk}/reject", {"reason": "x" * 2001})
    assert response.status_code == 400
    assert 'data-error-for="reason"' in response.content.decode()
    fleet.draft.refresh_from_db()
    assert fleet.draft.status == "draft"
