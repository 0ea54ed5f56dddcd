"""The what-if form: bad input of every kind is named at its field and writes nothing; good input computes a
plan against the baselines without writing, or saves it as a draft when asked."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from controlplane.accounts.models import AuditEvent
from controlplane.console import forms
from controlplane.planning.models import Plan

pytestmark = pytest.mark.django_db


def good(fleet, **changes):
    return {"service": fleet.services[0].pk, "rate_rps": "4", "prompt_tokens_p50": "800", "prompt_tokens_p90": "2000",
            "output_tokens_p50": "200", "output_tokens_p90": "500", "objective": "cost", **changes}


def assert_refused(response, *fields):
    assert response.status_code == 400
    body = response.content.decode()
    for field in fields:
        assert f'data-error-for="{field}"' in body, (field, body[body.find("field-error") - 300:][:800])


def assert_nothing_written(before):
    assert (Plan.objects.count(), AuditEvent.objects.count()) == before


@pytest.fixture
def counts(fleet):
    return Plan.objects.count(), AuditEvent.objects.count()


@pytest.mark.parametrize(("changes", "fields"), [
    ({"rate_rps": "-3"}, ["rate_rps"]),
    ({"rate_rps": "lots"}, ["rate_rps"]),
    ({"rate_rps": ""}, ["rate_rps"]),
    ({"prompt_tokens_p50": "0", "output_tokens_p50": "1.5"}, ["prompt_tokens_p50", "output_tokens_p50"]),
    ({"prompt_tokens_p50": "", "output_tokens_p50": ""}, ["prompt_tokens_p50", "output_tokens_p50"]),
    ({"prompt_tokens_p90": "100"}, ["prompt_tokens_p90"]),
    ({"budget_usd_per_h": "-1", "power_cap_kw": "zero"}, ["budget_usd_per_h", "power_cap_kw"]),
    ({"objective": "cheapest", "service": "999999"}, ["objective", "service"]),
    ({"allowed_tiers": ["NOT-A-GPU"]}, ["allowed_tiers"]),
])
def test_bad_input_is_named_at_its_field_and_nothing_is_written(fleet, as_operator, counts, changes, fields):
    assert_refused(as_operator.post("/what-if/", good(fleet, save="on", **changes)), *fields)
    assert_nothing_written(counts)


def test_a_malformed_trace_is_named_at_the_trace_field(fleet, as_operator, counts):
    trace = SimpleUploadedFile("trace.csv", b"TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,many,few\n")
    response = as_operator.post("/what-if/", good(fleet, rate_rps="", save="on", trace=trace, trace_format="azure"))
    assert_refused(response, "trace")
    assert_nothing_written(counts)


def test_a_trace_needs_its_format(fleet, as_operator, counts):
    trace = SimpleUploadedFile("trace.csv", b"TIMESTAMP,ContextTokens,GeneratedTokens\n")
    assert_refused(as_operator.post("/what-if/", good(fleet, trace=trace, save="on")), "trace_format")
    assert_nothing_written(counts)


def test_a_too_large_trace_is_refused(fleet, as_operator, counts, monkeypatch):
    monkeypatch.setattr(forms, "MAX_TRACE_BYTES", 1024)
    trace = SimpleUploadedFile("big.csv", b"TIMESTAMP,ContextTokens,GeneratedTokens\n" + b"x" * 2048)
    response = as_operator.post("/what-if/", good(fleet, save="on", trace=trace, trace_format="azure"))
    assert_refused(response, "trace")
    assert "at most" in response.content.decode()
    assert_nothing_written(counts)


def test_a_what_if_shows_the_plan_against_the_baselines_and_writes_nothing(fleet, as_operator, counts):
    response = as_operator.post("/what-if/", good(fleet))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="whatif-result"' in body
    assert 'data-testid="baselines"' in body
    assert "chart-whatif-baselines" in body
    assert_nothing_written(counts)


def test_a_what_if_from_a_trace_saved_as_a_draft(fleet, as_operator, counts):
    rows = "".join(f"2023-11-16 18:15:{i:02d}.0000000,{300 + 20 * i},{50 + i}\n" for i in range(40))
    trace = SimpleUploadedFile("azure.csv", f"TIMESTAMP,ContextTokens,GeneratedTokens\n{rows}".encode())
    response = as_operator.post("/what-if/", good(fleet, rate_rps="", save="on", trace=trace, trace_format="azure"))
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = Plan.objects.get(pk=int(response["Location"].strip("/").split("/")[-1]))
    assert (plan.status, plan.created_by.username, plan.inputs["source"]) == ("draft", "bob", "trace")
    assert plan.inputs["trace"]["records"] == 40


def test_a_viewer_cannot_run_a_what_if(fleet, as_viewer, counts):
    assert as_viewer.post("/what-if/", good(fleet, save="on")).status_code == 403
    assert_nothing_written(counts)
