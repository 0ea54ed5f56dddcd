"""Reads of services, records and profiles shared by the API and the console."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.traffic.models import RequestRecord, Service, WorkloadProfile


def service_list() -> QuerySet[Service]:
    return Service.objects.all()


def record_list() -> QuerySet[RequestRecord]:
    return RequestRecord.objects.select_related("service")


def profile_list() -> QuerySet[WorkloadProfile]:
    return WorkloadProfile.objects.select_related("service")


def service_ids_by_name() -> dict[str, int]:
    return dict(Service.objects.values_list("name", "id"))
