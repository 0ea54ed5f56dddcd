"""GET /api/v1/perf-corrections/: the perf model's live factors, for viewers and up, read-only, filtered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.telemetry.models import PerfCorrection

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
URL = "/api/v1/perf-corrections/"


@pytest.fixture
def corrections(db):
    rows = [
        ("llama-3.1-8b", "H100-SXM-80GB", 1, "decode", 1.4),
        ("llama-3.1-8b", "H100-SXM-80GB", 1, "prefill", 0.9),
        ("llama-3.1-8b", "A100-SXM-80GB", 2, "decode", 1.1),
        ("llama-3.1-70b", "H100-SXM-80GB", 4, "decode", 1.7),
    ]
    PerfCorrection.objects.bulk_create([
        PerfCorrection(model_name=model, tier=tier, tp=tp, phase=phase, factor=factor, samples=12, updated_at=NOW,
                       last_observed=NOW)
        for model, tier, tp, phase, factor in rows
    ])


def listed(client, query=""):
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    return [(row["model_name"], row["tier"], row["tp"], row["phase"]) for row in response.json()["results"]]


def test_anonymous_callers_are_refused_and_viewers_read(api_as, charlie, corrections):
    assert api_as(None).get(URL).status_code == 401
    body = api_as(charlie).get(URL).json()
    assert body["count"] == 4
    first = body["results"][0]
    assert set(first) == {"id", "model_name", "tier", "tp", "phase", "factor", "samples", "updated_at",
                          "last_observed"}


def test_nobody_writes_a_factor_through_the_api(api_as, alice, corrections):
    client = api_as(alice)
    row = PerfCorrection.objects.first()
    assert client.post(URL, {"model_name": "x", "tier": "y", "tp": 1, "phase": "decode", "factor": 9},
                       format="json").status_code == 405
    assert client.patch(f"{URL}{row.pk}/", {"factor": 9}, format="json").status_code == 405
    assert client.delete(f"{URL}{row.pk}/").status_code == 405


def test_machine_identities_are_refused(api_as, corrections):
    from tests.factories import UserFactory

    assert api_as(UserFactory(username="router-1", role="router")).get(URL).status_code == 403


def test_it_filters_by_model_tier_tp_and_phase(api_as, charlie, corrections):
    client = api_as(charlie)
    assert len(listed(client, "model=llama-3.1-8b")) == 3
    assert listed(client, "model=llama-3.1-8b&tier=H100-SXM-80GB&phase=decode") == [
        ("llama-3.1-8b", "H100-SXM-80GB", 1, "decode")
    ]
    assert listed(client, "tp=4") == [("llama-3.1-70b", "H100-SXM-80GB", 4, "decode")]
    assert client.get(f"{URL}?phase=idle").status_code == 400
