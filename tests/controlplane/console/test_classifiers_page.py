"""Models: versions with their scores against baselines; an operator activates one, a viewer cannot."""

from __future__ import annotations

import pytest

from controlplane.accounts.models import AuditEvent
from controlplane.traffic.models import ClassifierModel

pytestmark = pytest.mark.django_db


def test_the_page_shows_each_versions_macro_f1_against_its_baseline(fleet, as_viewer):
    body = as_viewer.get("/models/").content.decode()
    assert "admission-0002" in body
    assert "0.720" in body
    assert "0.550" in body
    assert "chart-admission" in body


def test_an_operator_activates_a_version(fleet, as_operator):
    older = ClassifierModel.objects.get(version="admission-0002")
    assert as_operator.post(f"/models/{older.pk}/activate").status_code == 302
    older.refresh_from_db()
    assert older.is_active
    assert older.activated_by.username == "bob"
    assert not ClassifierModel.objects.get(version="admission-0001").is_active
    assert AuditEvent.objects.filter(verb="classifier.activate", actor_label="bob").exists()


def test_a_viewer_cannot_activate(fleet, as_viewer):
    older = ClassifierModel.objects.get(version="admission-0002")
    assert as_viewer.post(f"/models/{older.pk}/activate").status_code == 403
    older.refresh_from_db()
    assert not older.is_active
