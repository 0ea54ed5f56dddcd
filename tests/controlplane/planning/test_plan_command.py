"""`manage.py plan`: a plan and its baselines as a table or JSON, what-ifs by rate or trace, and the
infeasibility in words."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from controlplane.planning.models import Plan
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

TRACE = Path(__file__).resolve().parents[3] / "data" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"


@pytest.fixture
def chat(db):
    NodeFactory(name="a", status="ready", tier=tier("L40S-48GB"))
    NodeFactory(name="b", status="ready", tier=tier("H100-SXM-80GB"))
    return ServiceFactory(name="chat")


def run(*args: str) -> str:
    out = StringIO()
    call_command("plan", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_an_explicit_what_if_prints_the_plan_beside_its_baselines(chat):
    text = run("chat", "--rate", "2", "--prompt-tokens", "800", "--output-tokens", "150")
    assert "saved as draft plan" in text
    for row in ("plan", "colocated_best_single_tier", "disaggregated_single_tier"):
        assert any(line.startswith(row) for line in text.splitlines())
    assert Plan.objects.filter(status="draft").count() == 1


def test_a_trace_what_if_as_json_without_saving(chat):
    data = json.loads(run("chat", "--trace", str(TRACE), "--format", "azure", "--rate", "3", "--json", "--dry-run"))
    assert data["feasible"]
    assert data["plan"] is None
    assert data["predictions"]["rate_rps"] == 3.0
    assert {"colocated_best_single_tier", "disaggregated_single_tier"} <= set(data["baselines"])
    assert not Plan.objects.exists()


def test_an_infeasible_budget_is_explained(chat):
    with pytest.raises(CommandError, match=r"no feasible plan \(budget\): budget \$0\.1/h is \$"):
        run("chat", "--rate", "2", "--prompt-tokens", "800", "--output-tokens", "150", "--budget", "0.1")
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "no service named 'nobody'"),
        (["chat", "--trace", "missing.csv", "--format", "azure"], "--trace: no file"),
        (["chat", "--trace", str(TRACE)], "--format: required"),
        (["chat", "--prompt-tokens", "100"], "an explicit workload needs"),
        (["chat", "--rate", "-1"], "--rate: must be positive"),
        (["chat"], "no workload profile yet"),
    ],
)
def test_bad_arguments_are_named(chat, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
