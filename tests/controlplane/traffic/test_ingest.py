"""Routers' record batches: stored once by id, validated as a whole, refused when malformed."""

from __future__ import annotations

import uuid

import pytest

from controlplane.traffic.ingest import MAX_BATCH
from controlplane.traffic.models import RequestRecord
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def router(api_as):
    return api_as(UserFactory(username="router-1", role="router"))


@pytest.fixture
def chat(db):
    return ServiceFactory(name="chat")


def record(**overrides):
    body = {
        "id": str(uuid.uuid4()), "service": "chat", "arrival_at": "2026-11-27T10:00:00.250Z", "prompt_tokens": 812,
        "output_tokens": 64, "cached_prompt_tokens": 512, "ttft_s": 0.21, "tpot_s": 0.018, "e2e_s": 1.35,
        "prefill_worker": "node-1/prefill-0", "decode_worker": "node-2/decode-0", "predicted_class": "prefill-heavy",
        "endpoint": "chat", "status": "ok",
    }
    body.update(overrides)
    return body


def test_a_router_stores_a_batch(router, chat):
    batch = [record() for _ in range(3)]
    response = router.post("/api/v1/traffic/records", {"records": batch}, format="json")
    assert response.status_code == 200
    assert response.json() == {"received": 3, "stored": 3, "duplicates": 0}
    stored = RequestRecord.objects.get(id=batch[0]["id"])
    assert (stored.service, stored.prompt_tokens, stored.cached_prompt_tokens, stored.source) == (chat, 812, 512, "router-1")
    assert stored.arrival_at.isoformat() == "2026-11-27T10:00:00.250000+00:00"


def test_a_resent_batch_stores_nothing_twice(router, chat):
    batch = [record() for _ in range(5)]
    router.post("/api/v1/traffic/records", {"records": batch[:3]}, format="json")
    response = router.post("/api/v1/traffic/records", {"records": batch}, format="json")
    assert response.json() == {"received": 5, "stored": 2, "duplicates": 3}
    assert RequestRecord.objects.count() == 5


def test_the_same_id_twice_in_one_batch_is_one_record(router, chat):
    one = record()
    response = router.post("/api/v1/traffic/records", {"records": [one, dict(one)]}, format="json")
    assert response.json()["stored"] == 1


def test_arrival_may_be_unix_seconds(router, chat):
    one = record(arrival_at=1_800_000_000.5)
    router.post("/api/v1/traffic/records", {"records": [one]}, format="json")
    assert RequestRecord.objects.get().arrival_at.timestamp() == 1_800_000_000.5


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"id": "not-a-uuid"}, "id", "Must be a UUID."),
        ({"service": "nope"}, "service", "Unknown service 'nope'."),
        ({"prompt_tokens": -1}, "prompt_tokens", "Must be an integer"),
        ({"prompt_tokens": "812"}, "prompt_tokens", "Must be an integer"),
        ({"prompt_tokens": None}, "prompt_tokens", "This field is required."),
        ({"output_tokens": 1.5}, "output_tokens", "Must be an integer"),
        ({"cached_prompt_tokens": 900}, "cached_prompt_tokens", "Cannot exceed prompt_tokens."),
        ({"arrival_at": "yesterday"}, "arrival_at", "is not an ISO 8601 time"),
        ({"arrival_at": "2026-11-27T10:00:00"}, "arrival_at", "needs a timezone"),
        ({"ttft_s": -0.1}, "ttft_s", "non-negative number"),
        ({"ttft_s": "NaN"}, "ttft_s", "non-negative number"),
        ({"predicted_class": "heavy"}, "predicted_class", "Must be one of"),
        ({"status": "weird"}, "status", "Must be one of"),
        ({"endpoint": "x" * 33}, "endpoint", "at most 32 characters"),
        ({"colour": "blue"}, "colour", "Unknown field."),
    ],
)
def test_one_bad_record_refuses_the_batch_naming_its_field(router, chat, overrides, field, message):
    batch = [record(), record(**overrides), record()]
    response = router.post("/api/v1/traffic/records", {"records": batch}, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == [f"records[1].{field}"]
    assert message in fields[f"records[1].{field}"][0]
    assert not RequestRecord.objects.exists()


@pytest.mark.parametrize("body", [[], {"records": "all of them"}, {"rows": []}])
def test_a_body_without_a_records_list_is_refused(router, chat, body):
    response = router.post("/api/v1/traffic/records", body, format="json")
    assert response.status_code == 400
    assert "records" in response.json()["error"]["fields"]


def test_a_batch_over_the_limit_is_refused(router, chat):
    response = router.post("/api/v1/traffic/records", {"records": [{}] * (MAX_BATCH + 1)}, format="json")
    assert response.status_code == 400
    assert not RequestRecord.objects.exists()


def test_only_routers_agents_and_admins_may_send_records(api_as, chat, alice, bob, charlie, register_node,
                                                        bootstrap_token):
    assert api_as(charlie).post("/api/v1/traffic/records", {"records": [record()]}, format="json").status_code == 403
    assert api_as(bob).post("/api/v1/traffic/records", {"records": [record()]}, format="json").status_code == 403
    bootstrap = api_as(None)
    bootstrap.credentials(HTTP_AUTHORIZATION=f"Bearer {bootstrap_token}")
    assert bootstrap.post("/api/v1/traffic/records", {"records": [record()]}, format="json").status_code == 403
    # A router an agent runs sends with its node's token.
    _, node_client = register_node()
    assert node_client.post("/api/v1/traffic/records", {"records": [record()]}, format="json").status_code == 200
    assert api_as(alice).post("/api/v1/traffic/records", {"records": [record()]}, format="json").status_code == 200


def test_a_router_cannot_read_records(router, chat):
    assert router.get("/api/v1/traffic/records").status_code == 403
