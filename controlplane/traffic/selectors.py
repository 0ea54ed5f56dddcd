"""Reads of services, records and profiles shared by the API and the console."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db.models import QuerySet

from controlplane.planning.models import Plan, PlanStatus
from controlplane.traffic.models import (
    ClassifierKind,
    ClassifierModel,
    RequestRecord,
    Service,
    ServiceApiKey,
    WorkloadProfile,
)


def service_list() -> QuerySet[Service]:
    return Service.objects.all()


def record_list() -> QuerySet[RequestRecord]:
    return RequestRecord.objects.select_related("service")


def profile_list() -> QuerySet[WorkloadProfile]:
    return WorkloadProfile.objects.select_related("service")


def service_ids_by_name() -> dict[str, int]:
    return dict(Service.objects.values_list("name", "id"))


def routing_document(service: Service) -> dict[str, Any]:
    """What a router needs from the control plane: the active plan's routing and the client keys' digests."""
    plan = Plan.objects.filter(service=service, status=PlanStatus.ACTIVE).only("pk", "routing").first()
    digests = sorted(ServiceApiKey.objects.filter(service=service, revoked_at__isnull=True).values_list("digest", flat=True))
    document: dict[str, Any] = {
        "service": service.name,
        "plan": plan.pk if plan else None,
        "routing": plan.routing if plan else None,
        "admission_model": active_admission_document(),
        "api_key_digests": digests,
    }
    document["etag"] = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
    return document


def classifier_list() -> QuerySet[ClassifierModel]:
    return ClassifierModel.objects.select_related("activated_by")


def active_admission_document() -> dict[str, Any] | None:
    """The active admission model's JSON (what routers evaluate), or None when none is active."""
    from controlplane.traffic.profiling import model_store

    active = ClassifierModel.objects.filter(kind=ClassifierKind.ADMISSION, is_active=True).only("version").first()
    return model_store().load(ClassifierKind.ADMISSION, active.version) if active else None
