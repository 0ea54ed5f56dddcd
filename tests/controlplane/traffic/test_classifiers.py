"""Classifier versions: trained on stored traffic, stored as JSON, activated by policy or by an operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from controlplane.traffic.models import ClassifierModel
from controlplane.traffic.profiling import model_store, profiles_update
from controlplane.traffic.training import admission_retrain, workload_retrain
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[3] / "data" / "traces" / "azure_llm_2023"
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def traffic(settings, tmp_path):
    settings.CLASSIFIER_STORE_DIR = tmp_path / "models"
    settings.PROFILE_LOOKBACK_S = 7200
    for name, file in (("code", "AzureLLMInferenceTrace_code.csv"), ("conv", "AzureLLMInferenceTrace_conv.csv")):
        ServiceFactory(name=name)
        call_command("import_trace", "--format", "azure", str(DATA / file), "--service", name, "--start",
                     START.isoformat(), stdout=StringIO(), stderr=StringIO())


def test_the_first_admission_model_is_trained_stored_and_activated(traffic):
    outcome = admission_retrain(now=START + timedelta(hours=2))
    assert outcome.activated
    row = ClassifierModel.objects.get(kind="admission")
    assert row.is_active
    assert row.metrics["macro_f1"] > row.metrics["baseline_macro_f1"]
    assert model_store().load("admission", row.version)["kind"] == "admission"


def test_a_retrained_model_no_better_than_the_active_one_waits(traffic, settings):
    admission_retrain(now=START + timedelta(hours=2))
    settings.CLASSIFIER_AUTO_ACTIVATE = False
    second = admission_retrain(now=START + timedelta(hours=2))
    assert not second.activated
    assert ClassifierModel.objects.filter(kind="admission", is_active=True).count() == 1


def test_too_little_traffic_is_not_trained_on(settings, tmp_path):
    settings.CLASSIFIER_STORE_DIR = tmp_path
    outcome = admission_retrain()
    assert outcome.version is None
    assert "retraining needs" in outcome.reason


def test_the_workload_model_trains_on_stored_windows(traffic):
    for name in ("code", "conv"):
        profiles_update(service=ServiceFactory._meta.model.objects.get(name=name), now=START + timedelta(hours=1, minutes=1))
    outcome = workload_retrain()
    assert outcome.version == "workload-0001"
    assert ClassifierModel.objects.get(kind="workload").metrics["persistence"]["windows"] > 0


def test_an_operator_activates_a_version_and_a_viewer_cannot(traffic, api_as, bob, charlie):
    admission_retrain(now=START + timedelta(hours=2))
    admission_retrain(now=START + timedelta(hours=2))
    older = ClassifierModel.objects.order_by("created_at").first()
    older.is_active = False
    older.save()
    newest = ClassifierModel.objects.exclude(pk=older.pk).get()
    assert api_as(charlie).post(f"/api/v1/classifiers/{older.pk}/activate").status_code == 403
    response = api_as(bob).post(f"/api/v1/classifiers/{older.pk}/activate")
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    newest.refresh_from_db()
    assert not newest.is_active
    listed = api_as(charlie).get("/api/v1/classifiers/").json()["results"]
    assert {row["version"] for row in listed} == {"admission-0001", "admission-0002"}


def test_the_routing_document_carries_the_active_admission_model(traffic, api_as, charlie):
    admission_retrain(now=START + timedelta(hours=2))
    service = ServiceFactory._meta.model.objects.get(name="code")
    document = api_as(charlie).get(f"/api/v1/services/{service.pk}/routing").json()
    assert document["admission_model"]["kind"] == "admission"
