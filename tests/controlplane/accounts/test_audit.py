"""Every state change made through a service leaves an AuditEvent; the log is read-only."""

from __future__ import annotations

import pytest

from controlplane.accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_creating_and_editing_a_node_is_audited_with_before_and_after(api_as, bob):
    client = api_as(bob)
    node_id = client.post("/api/v1/nodes/", {"name": "n1", "tier": "A100-SXM-80GB", "gpu_count": 8}, format="json").json()["id"]
    client.patch(f"/api/v1/nodes/{node_id}/", {"status": "cordoned"}, format="json")
    events = list(AuditEvent.objects.filter(object_type="fleet.node", object_id=str(node_id)).order_by("id"))
    assert [event.verb for event in events] == ["node.create", "node.update"]
    assert events[1].actor_label == "bob"
    assert events[1].before["status"] == "registered"
    assert events[1].after["status"] == "cordoned"


def test_a_price_change_is_audited(api_as, alice):
    api_as(alice).patch("/api/v1/tiers/L4-24GB/", {"price_usd_per_gpu_h": "0.5"}, format="json")
    event = AuditEvent.objects.get(verb="tier.update")
    assert event.after == {"price_usd_per_gpu_h": "0.5000", "id": event.after["id"]}


def test_the_audit_log_cannot_be_written_through_the_api(api_as, alice):
    client = api_as(alice)
    assert client.post("/api/v1/audit-events/", {"verb": "x"}, format="json").status_code == 405
    event_id = AuditEvent.objects.values_list("id", flat=True).first()
    assert client.delete(f"/api/v1/audit-events/{event_id}/").status_code == 405


def test_token_secrets_never_reach_the_audit_log(api_as, alice):
    raw = api_as(alice).post("/api/v1/tokens/", {"name": "ci", "user": "alice"}, format="json").json()["token"]
    for event in AuditEvent.objects.all():
        assert raw not in str(event.before)
        assert raw not in str(event.after)
