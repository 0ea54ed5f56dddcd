"""Turning request records into per-window workload profiles, with class, confidence, forecast and drift.

A window is closed once its end has passed; each run profiles the closed windows not yet stored, so
the beat task can run every minute, late or twice, and each window is written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.planning.specs import model_spec
from controlplane.traffic.models import (
    ClassifierKind,
    ClassifierModel,
    RequestRecord,
    Service,
    WorkloadProfile,
)
from profiler.features import PhaseCostModel, WindowProfile, window_profiles
from profiler.models import ModelStore, WorkloadModel, detect_drift

# Windows looked back over when forecasting and checking drift.
_HISTORY_WINDOWS = 12


@dataclass(frozen=True, slots=True)
class _Row:
    """A request record as the profiler reads it (arrival in Unix seconds, so windows align to the clock)."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    cached_prompt_tokens: int


def cost_model(service: Service) -> PhaseCostModel:
    """How the profiler prices this service's requests: its model, under its TPOT target."""
    return PhaseCostModel.for_service(model_spec(service), service.tpot_slo_s, dtype=service.dtype)


def model_store() -> ModelStore:
    return ModelStore(settings.CLASSIFIER_STORE_DIR)


def active_workload_model() -> WorkloadModel:
    """The active workload model, or persistence (next window = this one) when none is active."""
    active = ClassifierModel.objects.filter(kind=ClassifierKind.WORKLOAD, is_active=True).first()
    if active is None:
        return WorkloadModel.persistence()
    return WorkloadModel.from_json(model_store().load(ClassifierKind.WORKLOAD, active.version))


def window_from_row(row: WorkloadProfile) -> WindowProfile:
    """A stored profile as the profiler's WindowProfile (for forecasts, drift and training)."""
    return WindowProfile(
        start_s=row.window_start.timestamp(), end_s=row.window_end.timestamp(), request_count=row.request_count,
        arrival_rate_rps=row.arrival_rate_rps, burstiness_cv=row.burstiness_cv,
        prompt_tokens_p50=row.prompt_tokens_p50, prompt_tokens_p90=row.prompt_tokens_p90,
        prompt_tokens_p99=row.prompt_tokens_p99, output_tokens_p50=row.output_tokens_p50,
        output_tokens_p90=row.output_tokens_p90, output_tokens_p99=row.output_tokens_p99,
        prefix_cache_share=row.prefix_cache_share, prefill_share=row.prefill_share,
        workload_class=row.workload_class or None, class_mix=row.class_mix, prefill_gpu_s=row.prefill_gpu_s,
        decode_gpu_s=row.decode_gpu_s, prefill_share_se=row.prefill_share_se,
    )


def _window_start(moment: datetime, window_s: float) -> datetime:
    return datetime.fromtimestamp(math.floor(moment.timestamp() / window_s) * window_s, tz=UTC)


def profiles_update(*, service: Service, now: datetime | None = None, window_s: float | None = None) -> list[WorkloadProfile]:
    """Profile `service`'s closed windows since its last stored one (or its first record within the
    lookback); returns the profiles written."""
    now = now or timezone.now()
    window_s = window_s or settings.PROFILE_WINDOW_S
    closed_until = _window_start(now, window_s)
    last = WorkloadProfile.objects.filter(service=service).order_by("-window_end").first()
    if last is not None:
        since = last.window_end
    else:
        first = (
            RequestRecord.objects.filter(service=service, arrival_at__gte=now - timedelta(seconds=settings.PROFILE_LOOKBACK_S))
            .order_by("arrival_at").values_list("arrival_at", flat=True).first()
        )
        if first is None:
            return []
        since = _window_start(first, window_s)
    if since >= closed_until:
        return []
    rows = [
        _Row(arrival.timestamp(), prompt, output, cached)
        for arrival, prompt, output, cached in RequestRecord.objects.filter(
            service=service, arrival_at__gte=since, arrival_at__lt=closed_until
        ).values_list("arrival_at", "prompt_tokens", "output_tokens", "cached_prompt_tokens").iterator()
    ]
    by_start = {w.start_s: w for w in window_profiles(rows, cost_model(service), window_s)} if rows else {}
    model = active_workload_model()
    history = [window_from_row(row) for row in reversed(
        WorkloadProfile.objects.filter(service=service).order_by("-window_start")[:_HISTORY_WINDOWS]
    )]
    written: list[WorkloadProfile] = []
    start = since
    while start < closed_until:
        end = start + timedelta(seconds=window_s)
        window = by_start.get(start.timestamp()) or _empty(start, end, window_s)
        history = [*history, window][-_HISTORY_WINDOWS:]
        profile = _store(service, start, end, window, model, history)
        if profile is not None:
            written.append(profile)
        start = end
    return written


def _empty(start: datetime, end: datetime, window_s: float) -> WindowProfile:
    return WindowProfile(start.timestamp(), end.timestamp(), 0, 0.0, None, None, None, None, None, None, None, None,
                         None, None, {})


def _store(service: Service, start: datetime, end: datetime, window: WindowProfile, model: WorkloadModel,
           history: list[WindowProfile]) -> WorkloadProfile | None:
    workload_class, confidence = model.classify(window)
    forecast = model.forecast(history)
    drift = detect_drift(history, model=model)
    extras: dict[str, Any] = {
        "model": model.version or "persistence",
        "next_class": forecast.next_class, "next_confidence": forecast.confidence,
        "next_prefill_share": forecast.prefill_share, "next_rate_rps": forecast.arrival_rate_rps,
        "drift": {"changed": drift.changed, "from": drift.from_class, "to": drift.to_class,
                  "rate_change": drift.rate_change, "reason": drift.reason},
    }
    try:
        with transaction.atomic():
            return WorkloadProfile.objects.create(
                service=service, window_start=start, window_end=end, request_count=window.request_count,
                arrival_rate_rps=window.arrival_rate_rps or 0.0, burstiness_cv=window.burstiness_cv,
                prompt_tokens_p50=window.prompt_tokens_p50, prompt_tokens_p90=window.prompt_tokens_p90,
                prompt_tokens_p99=window.prompt_tokens_p99, output_tokens_p50=window.output_tokens_p50,
                output_tokens_p90=window.output_tokens_p90, output_tokens_p99=window.output_tokens_p99,
                prefix_cache_share=window.prefix_cache_share or 0.0, prefill_share=window.prefill_share,
                prefill_share_se=window.prefill_share_se, prefill_gpu_s=window.prefill_gpu_s,
                decode_gpu_s=window.decode_gpu_s, workload_class=workload_class or "",
                confidence=confidence if workload_class else None, class_mix=window.class_mix, forecast=extras,
            )
    except IntegrityError:
        return None  # another run stored this window first
