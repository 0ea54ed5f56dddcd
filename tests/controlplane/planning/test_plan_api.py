"""Plans over the API: what-ifs from an explicit workload, the latest profile or an uploaded trace; 422 for
what no plan can meet; 400 naming the field for bad input, with nothing written; the diff against the
active plan."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from controlplane.accounts.models import AuditEvent
from controlplane.planning.models import Plan
from controlplane.planning.services import plan_activate, plan_approve
from controlplane.traffic.models import RequestRecord, WorkloadProfile
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

LENGTHS = [[900, 120], [300, 250], [2000, 40], [150, 400]]


@pytest.fixture
def chat(db):
    return ServiceFactory(name="chat", ttft_slo_s=1.0, tpot_slo_s=0.1)


@pytest.fixture
def fleet(db):
    return [
        NodeFactory(name="h100-a", tier=tier("H100-SXM-80GB"), gpu_count=8, status="ready"),
        NodeFactory(name="l40s-a", tier=tier("L40S-48GB"), gpu_count=4, status="ready"),
        NodeFactory(name="l40s-cordoned", tier=tier("L40S-48GB"), gpu_count=8, status="cordoned"),
    ]


def url(service):
    return f"/api/v1/services/{service.pk}/plans"


def explicit(**extra):
    return {"source": "explicit", "rate_rps": 2.0, "lengths": LENGTHS, **extra}


def test_a_what_if_from_an_explicit_rate_and_lengths(api_as, bob, chat, fleet):
    response = api_as(bob).post(url(chat), explicit(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    plan = Plan.objects.get()
    assert (body["id"], body["status"], body["service"]) == (plan.pk, "draft", "chat")
    assert body["predictions"]["slo_attainment"] >= 0.9
    assert body["predictions"]["simulated"]
    assert body["predicted_cost_usd_per_h"] == body["predictions"]["cost_usd_per_h"] > 0
    nodes = {entry["node"] for entry in body["placement"]}
    assert nodes
    assert nodes <= {"h100-a", "l40s-a"}
    routers = [w for entry in body["placement"] for w in entry["workers"] if w["role"] == "router"]
    assert len(routers) == 1
    assert routers[0]["gpu_ids"] == []
    assert routers[0]["port"] == 8000
    assert body["routing"]["version"] == plan.pk
    assert {"colocated_best_single_tier", "disaggregated_single_tier"} <= set(body["baselines"])
    assert body["inputs"]["source"] == "explicit"
    assert body["inputs"]["lengths"][:2] == [[900, 120, 0], [300, 250, 0]]
    assert body["diff"]["against"] is None
    assert body["diff"]["workers_added"]
    assert AuditEvent.objects.filter(verb="plan.create", object_id=str(plan.pk), actor=bob).exists()


def test_a_what_if_from_percentiles(api_as, bob, chat, fleet):
    body = {"source": "explicit", "rate_rps": 1.0, "prompt_tokens_p50": 800, "prompt_tokens_p90": 3000,
            "output_tokens_p50": 150, "objective": "power", "allowed_tiers": ["L40S-48GB"]}
    response = api_as(bob).post(url(chat), body, format="json")
    assert response.status_code == 201, response.content
    assert {i["tier"] for i in response.json()["instances"]} == {"L40S-48GB"}
    assert response.json()["objective"] == "power"


def test_a_plan_from_the_latest_profile_and_recent_records(api_as, bob, chat, fleet):
    now = timezone.now()
    WorkloadProfile.objects.create(
        service=chat, window_start=now - timedelta(minutes=5), window_end=now, request_count=600,
        arrival_rate_rps=2.0, prompt_tokens_p50=800, prompt_tokens_p90=2000, prompt_tokens_p99=4000,
        output_tokens_p50=120, output_tokens_p90=400, output_tokens_p99=800, prefill_share=0.5,
        workload_class="balanced",
    )
    RequestRecord.objects.bulk_create([
        RequestRecord(id=uuid.uuid4(), service=chat, arrival_at=now - timedelta(seconds=i), prompt_tokens=500 + i,
                      output_tokens=100 + i, cached_prompt_tokens=100)
        for i in range(50)
    ])
    response = api_as(bob).post(url(chat), {"source": "profile"}, format="json")
    assert response.status_code == 201, response.content
    inputs = response.json()["inputs"]
    assert inputs["source"] == "profile"
    assert inputs["lengths_from"] == "records"
    assert inputs["workload"]["rate_rps"] == 2.0
    assert len(inputs["lengths"]) == 50
    assert inputs["workload"]["prefix_cache_share"] > 0


def test_a_plan_from_an_uploaded_trace(api_as, bob, chat, fleet):
    rows = "".join(
        f"2023-11-16 18:15:{second:02d}.0000000,{400 + 37 * second % 900},{20 + 13 * second % 200}\n"
        for second in range(0, 60)
    )
    upload = SimpleUploadedFile("small.csv", ("TIMESTAMP,ContextTokens,GeneratedTokens\n" + rows).encode())
    response = api_as(bob).post(url(chat), {"source": "trace", "format": "azure", "trace": upload}, format="multipart")
    assert response.status_code == 201, response.content
    inputs = response.json()["inputs"]
    assert inputs["trace"]["records"] == 60
    assert inputs["trace"]["name"] == "small.csv"
    assert inputs["workload"]["rate_rps"] == pytest.approx(60 / 59)


def test_a_malformed_trace_is_refused_naming_the_line(api_as, bob, chat, fleet):
    upload = SimpleUploadedFile("bad.csv", b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:00.0,many,3\n")
    response = api_as(bob).post(url(chat), {"source": "trace", "format": "azure", "trace": upload}, format="multipart")
    assert response.status_code == 400
    assert "line 2" in response.json()["error"]["fields"]["trace"][0]
    assert not Plan.objects.exists()


def test_an_infeasible_request_answers_422_with_the_binding_constraint(api_as, bob, chat, fleet):
    client = api_as(bob)
    before = AuditEvent.objects.count()
    response = client.post(url(chat), explicit(budget_usd_per_h=0.5), format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "infeasible"
    assert error["message"].startswith("budget $0.5/h is $")
    assert "short of the cheapest feasible plan" in error["fields"]["budget_usd_per_h"][0]
    assert not Plan.objects.exists()
    assert AuditEvent.objects.count() == before


def test_no_ready_node_is_infeasible(api_as, bob, chat):
    NodeFactory(status="draining")
    response = api_as(bob).post(url(chat), explicit(), format="json")
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "no ready nodes: the fleet has no node in status ready"


def test_a_viewer_may_list_but_not_plan(api_as, charlie, chat, fleet):
    client = api_as(charlie)
    assert client.post(url(chat), explicit(), format="json").status_code == 403
    assert client.get(url(chat)).status_code == 200
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "explicit", "lengths": LENGTHS}, "rate_rps"),
        ({"source": "explicit", "rate_rps": 1}, "lengths"),
        (explicit(lengths=[[0, 10]]), "lengths"),
        (explicit(lengths=[[10, 10, 11]]), "lengths"),
        (explicit(lengths=[[10]]), "lengths"),
        (explicit(allowed_tiers=["TPU-v5"]), "allowed_tiers"),
        (explicit(allowed_tp=[3]), "allowed_tp"),
        (explicit(headroom=0.5), "headroom"),
        (explicit(objective="speed"), "objective"),
        (explicit(budget_usd_per_h=-1), "budget_usd_per_h"),
        (explicit(trace_path="/etc/passwd"), "trace_path"),
        ({"source": "trace", "format": "azure", "trace": "/etc/passwd"}, "trace"),
        ({"source": "trace", "format": "azure"}, "trace"),
        (explicit(format="azure"), "format"),
        ({"source": "warehouse"}, "source"),
        ({"source": "profile"}, "source"),  # no profile yet
    ],
)
def test_bad_input_is_refused_naming_the_field(api_as, bob, chat, fleet, body, field):
    client = api_as(bob)
    before = AuditEvent.objects.count()
    response = client.post(url(chat), body, format="json")
    assert response.status_code == 400, response.content
    assert any(name.split("[")[0] == field for name in response.json()["error"]["fields"])
    assert not Plan.objects.exists()
    assert AuditEvent.objects.count() == before


def test_an_unknown_service_is_404(api_as, bob):
    assert api_as(bob).post("/api/v1/services/999/plans", explicit(), format="json").status_code == 404


def test_the_list_holds_the_services_plans_only(api_as, bob, chat, fleet):
    client = api_as(bob)
    client.post(url(chat), explicit(), format="json")
    other = ServiceFactory(name="other")
    client.post(url(other), explicit(), format="json")
    listed = client.get(url(chat)).json()
    assert listed["count"] == 1
    assert listed["results"][0]["service"] == "chat"


def test_the_detail_shows_the_diff_against_the_active_plan(api_as, bob, chat, fleet):
    client = api_as(bob)
    first = Plan.objects.get(pk=client.post(url(chat), explicit(), format="json").json()["id"])
    plan_activate(actor=bob, plan=plan_approve(actor=bob, plan=first))
    again = client.post(url(chat), explicit(), format="json").json()
    assert again["diff"]["against"] == first.pk
    assert again["diff"]["workers_added"] == []
    assert again["diff"]["workers_removed"] == []
    assert again["diff"]["workers_kept"] == sum(len(e["workers"]) for e in first.placement)
    bigger = client.post(url(chat), explicit(rate_rps=12.0), format="json").json()
    diff = client.get(f"/api/v1/plans/{bigger['id']}").json()["diff"]
    assert diff["against"] == first.pk
    assert diff["cost_usd_per_h"]["delta"] == pytest.approx(
        bigger["predicted_cost_usd_per_h"] - first.predicted_cost_usd_per_h
    )
    assert diff["cost_usd_per_h"]["delta"] > 0
    assert diff["workers_added"]
    assert diff["instances"]
    assert all(row["delta"] != 0 for row in diff["instances"])
    active = client.get(f"/api/v1/plans/{first.pk}").json()["diff"]
    assert active == {"against": None, "note": "this is the active plan"}
