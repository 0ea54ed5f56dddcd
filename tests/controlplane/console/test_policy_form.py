"""Rebalancing policies: an operator edits one through the traffic services; bad input is named and writes nothing."""

from __future__ import annotations

import pytest

from controlplane.accounts.models import AuditEvent
from controlplane.traffic.models import Service

pytestmark = pytest.mark.django_db


def post(client, service, **values):
    prefix = f"s{service.pk}"
    data = {"service": service.pk, **{f"{prefix}-{name}": value for name, value in values.items()}}
    return client.post("/rebalancing/", data)


def test_an_operator_edits_a_policy(fleet, as_operator):
    chat = fleet.services[0]
    response = post(as_operator, chat, rebalance_interval_s="1800", rebalance_min_saving="0.2", auto_approve="on")
    assert response.status_code == 302
    chat.refresh_from_db()
    assert (chat.rebalance_interval_s, chat.rebalance_min_saving, chat.auto_approve) == (1800, 0.2, True)
    event = AuditEvent.objects.get(verb="service.update", actor_label="bob")
    assert event.after["auto_approve"] is True


@pytest.mark.parametrize(("values", "fields"), [
    ({"rebalance_interval_s": "10", "rebalance_min_saving": "0.1"}, ["rebalance_interval_s"]),
    ({"rebalance_interval_s": "often", "rebalance_min_saving": "1.5"}, ["rebalance_interval_s", "rebalance_min_saving"]),
    ({"rebalance_interval_s": "900", "rebalance_min_saving": "-0.1"}, ["rebalance_min_saving"]),
    ({"rebalance_interval_s": "", "rebalance_min_saving": ""}, ["rebalance_interval_s", "rebalance_min_saving"]),
])
def test_bad_input_is_named_and_nothing_is_written(fleet, as_operator, values, fields):
    chat = fleet.services[0]
    before = Service.objects.values().get(pk=chat.pk)
    response = post(as_operator, chat, **values)
    assert response.status_code == 400
    body = response.content.decode()
    for field in fields:
        assert f'data-error-for="{field}"' in body
    assert Service.objects.values().get(pk=chat.pk) == before
    assert not AuditEvent.objects.filter(verb="service.update").exists()


def test_a_viewer_reads_policies_but_cannot_change_them(fleet, as_viewer):
    chat = fleet.services[0]
    page = as_viewer.get("/rebalancing/").content.decode()
    assert "rebalance_interval_s" not in page
    assert post(as_viewer, chat, rebalance_interval_s="60", rebalance_min_saving="0").status_code == 403
    chat.refresh_from_db()
    assert chat.rebalance_interval_s == 900


def test_the_page_shows_what_the_scheduled_replans_decided_and_why(fleet, as_viewer):
    body = as_viewer.get("/rebalancing/").content.decode()
    assert "saves 17% over the active plan" in body
    assert "saving 3% is under 10%" in body
    assert f'href="/plans/{fleet.draft.pk}/"' in body  # the plan the scheduler proposed
