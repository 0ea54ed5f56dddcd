"""Retraining the classifiers on recent traffic, storing each version, and choosing the active one.

Policy: a new version becomes active when there is none yet, or when it beats the active one in
macro-F1 on the same hold-out (admission) / in forecast error (workload) and
CLASSIFIER_AUTO_ACTIVATE is on; otherwise it waits for an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.traffic.models import (
    ClassifierKind,
    ClassifierModel,
    RecordStatus,
    RequestRecord,
    Service,
    WorkloadProfile,
)
from controlplane.traffic.profiling import cost_model, model_store, window_from_row
from profiler.errors import ProfilerError
from profiler.models import better_than, train_admission, train_workload


@dataclass(frozen=True, slots=True)
class _Completed:
    """A completed request as admission training reads it (arrival in Unix seconds: hour of day in UTC)."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    cached_prompt_tokens: int
    max_tokens: int | None
    endpoint: str | None
    client: str | None
    service: str


@dataclass(frozen=True)
class RetrainOutcome:
    kind: str
    version: str | None
    activated: bool
    reason: str


@transaction.atomic
def classifier_activate(*, actor: User | None, classifier: ClassifierModel, reason: str = "") -> ClassifierModel:
    """Make `classifier` the active version of its kind (one active per kind, held by the database)."""
    classifier = ClassifierModel.objects.select_for_update().get(pk=classifier.pk)
    if classifier.is_active:
        return classifier
    previous = ClassifierModel.objects.select_for_update().filter(kind=classifier.kind, is_active=True).first()
    if previous is not None:
        previous.is_active = False
        previous.save(update_fields=["is_active"])
    classifier.is_active = True
    classifier.activated_at = timezone.now()
    classifier.activated_by = actor
    classifier.save(update_fields=["is_active", "activated_at", "activated_by"])
    audit_record(
        actor=actor, verb="classifier.activate", obj=classifier,
        before={"active": previous.version if previous else None}, after={"active": classifier.version, "reason": reason},
        system="retrain",
    )
    return classifier


def _register(doc: dict[str, Any], kind: str) -> ClassifierModel:
    version = model_store().save(doc)
    stored = model_store().load(kind, version)
    return ClassifierModel.objects.create(
        kind=kind, version=version, metrics=stored.get("metrics", {}), trained_on=stored.get("trained_on", {}),
        features=stored.get("features", []),
    )


def _active_document(kind: str) -> dict[str, Any] | None:
    active = ClassifierModel.objects.filter(kind=kind, is_active=True).first()
    return model_store().load(kind, active.version) if active else None


def admission_retrain(*, now: datetime | None = None) -> RetrainOutcome:
    """Train the admission tree on the last CLASSIFIER_TRAINING_DAYS of completed requests of every service."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.CLASSIFIER_TRAINING_DAYS)
    services = {service.name: service for service in Service.objects.all()}
    rows = [
        _Completed(arrival.timestamp(), prompt, output, cached, max_tokens, endpoint or None, client or None, name)
        for arrival, prompt, output, cached, max_tokens, endpoint, client, name in RequestRecord.objects.filter(
            arrival_at__gte=since, status=RecordStatus.OK
        ).order_by("arrival_at").values_list(
            "arrival_at", "prompt_tokens", "output_tokens", "cached_prompt_tokens", "max_tokens", "endpoint", "client",
            "service__name",
        ).iterator()
    ]
    if len(rows) < settings.CLASSIFIER_MIN_TRAINING_ROWS:
        return RetrainOutcome(ClassifierKind.ADMISSION, None, False,
                              f"{len(rows)} completed requests; retraining needs {settings.CLASSIFIER_MIN_TRAINING_ROWS}")
    costs = {name: cost_model(service) for name, service in services.items()}
    active = _active_document(ClassifierKind.ADMISSION)
    try:
        doc, report = train_admission(rows, costs, service_of=lambda row: row.service, active=active)
    except ProfilerError as exc:
        return RetrainOutcome(ClassifierKind.ADMISSION, None, False, f"training failed: {exc}")
    classifier = _register(doc, ClassifierKind.ADMISSION)
    wins = better_than(report.metrics, report.active_metrics)
    return _maybe_activate(classifier, wins, f"macro-F1 {report.metrics['macro_f1']:.3f}"
                           + (f" vs active {report.active_metrics['macro_f1']:.3f}" if report.active_metrics else ""))


def workload_retrain() -> RetrainOutcome:
    """Fit the workload forecaster on the stored windows of every service (each its own series)."""
    series: dict[str, list[Any]] = {}
    for row in WorkloadProfile.objects.select_related("service").order_by("service", "window_start").iterator():
        series.setdefault(row.service.name, []).append(window_from_row(row))
    try:
        doc, report = train_workload(series)
    except ProfilerError as exc:
        return RetrainOutcome(ClassifierKind.WORKLOAD, None, False, f"training skipped: {exc}")
    classifier = _register(doc, ClassifierKind.WORKLOAD)
    model_error = report.metrics["model"].get("share_mae")
    persistence_error = report.metrics["persistence"].get("share_mae")
    wins = model_error is not None and (persistence_error is None or model_error <= persistence_error)
    return _maybe_activate(classifier, wins, f"share MAE {model_error} vs persistence {persistence_error}")


def _maybe_activate(classifier: ClassifierModel, wins: bool, reason: str) -> RetrainOutcome:
    has_active = ClassifierModel.objects.filter(kind=classifier.kind, is_active=True).exists()
    if not has_active or (wins and settings.CLASSIFIER_AUTO_ACTIVATE):
        classifier_activate(actor=None, classifier=classifier, reason=f"policy: {reason}")
        return RetrainOutcome(classifier.kind, classifier.version, True, reason)
    return RetrainOutcome(classifier.kind, classifier.version, False, f"kept the active version: {reason}")
