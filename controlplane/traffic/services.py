"""Writes for services (their SLOs and rebalancing policy). Each is one transaction with an AuditEvent."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import audit_record
from controlplane.accounts.tokens import token_digest
from controlplane.common.bulk import insert_ignoring_conflicts
from controlplane.common.errors import ApplicationError
from controlplane.common.snapshots import snapshot
from controlplane.traffic.ingest import COLUMNS
from controlplane.traffic.models import RequestRecord, Service, ServiceApiKey
from profiler import catalog

_SERVICE_FIELDS = (
    "name", "model_name", "architecture", "dtype", "ttft_slo_s", "tpot_slo_s", "slo_percentile", "attainment_target",
    "rebalance_interval_s", "rebalance_min_saving", "auto_approve", "min_instances_per_phase",
)


def _check_model(model_name: str, architecture: dict[str, Any] | None) -> None:
    if architecture is None and model_name not in catalog.MODELS:
        known = ", ".join(sorted(catalog.MODELS))
        raise ApplicationError(
            f"Model {model_name!r} is not in the catalog; give its architecture or use one of: {known}.",
            fields={"model_name": [f"Unknown model; known: {known}."]},
        )


@transaction.atomic
def service_create(*, actor: User | None, name: str, model_name: str, **fields: Any) -> Service:
    _check_model(model_name, fields.get("architecture"))
    service = Service.objects.create(name=name, model_name=model_name, **fields)
    audit_record(actor=actor, verb="service.create", obj=service, after=snapshot(service, _SERVICE_FIELDS))
    return service


@transaction.atomic
def service_update(*, actor: User, service: Service, **changes: Any) -> Service:
    service = Service.objects.select_for_update().get(pk=service.pk)
    before = snapshot(service, _SERVICE_FIELDS)
    for field, value in changes.items():
        setattr(service, field, value)
    _check_model(service.model_name, service.architecture)
    service.save()
    audit_record(actor=actor, verb="service.update", obj=service, before=before, after=snapshot(service, _SERVICE_FIELDS))
    return service


@transaction.atomic
def service_delete(*, actor: User, service: Service) -> None:
    if service.plans.filter(status__in=["active", "rolling_out"]).exists():
        raise ApplicationError(
            f"Service {service.name} has a plan that is active or rolling out; retire it first.",
            code="service_in_use",
            http_status=409,
        )
    audit_record(actor=actor, verb="service.delete", obj=service, before=snapshot(service, _SERVICE_FIELDS))
    service.delete()


@dataclass(frozen=True)
class IngestResult:
    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def records_ingest(*, rows: Sequence[Sequence[Any]]) -> IngestResult:
    """Store request records (rows in `ingest.COLUMNS` order) in one transaction; ids already stored are skipped.

    Records are data, not state changes: they are not audited one by one (a fleet sends tens of
    thousands a second); who sent them is in each record's `source`.
    """
    stored = insert_ignoring_conflicts(RequestRecord, COLUMNS, rows)
    return IngestResult(received=len(rows), stored=stored)


_KEY_FIELDS = ("service", "name", "prefix", "revoked_at")


@transaction.atomic
def api_key_create(*, actor: User | None, service: Service, name: str) -> tuple[ServiceApiKey, str]:
    """Issue a client key for `service`. Returns the row and the key, which is never stored or shown again."""
    prefix = secrets.token_hex(4)
    raw = f"sk-clv-{prefix}-{secrets.token_urlsafe(32)}"
    key = ServiceApiKey.objects.create(service=service, name=name, prefix=prefix, digest=token_digest(raw), created_by=actor)
    audit_record(actor=actor, verb="api_key.create", obj=key, after=snapshot(key, _KEY_FIELDS))
    return key, raw


@transaction.atomic
def api_key_revoke(*, actor: User, key: ServiceApiKey) -> ServiceApiKey:
    """Revoke a client key; routers stop accepting it at their next refresh. Revoking twice is a no-op."""
    key = ServiceApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        before = snapshot(key, _KEY_FIELDS)
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(actor=actor, verb="api_key.revoke", obj=key, before=before, after=snapshot(key, _KEY_FIELDS))
    return key
