"""Online correction of the perf model: live workers' measured step times against the model's predictions.

Every few minutes (the `telemetry.perf_corrections` beat task) the worker samples taken since the last
update of a key are compared with what the uncorrected perf model predicts for them, per key (model,
tier, TP, phase), and the key's factor (measured over predicted) moves toward what they show. The planner
times workers with these factors (PlanRequest.corrections), so plans improve from live data without an
offline profiling run.

What a sample measures:
- decode (decode and colocated workers; samples with requests running and an ITL p50): one serving step.
  Predicted: ``decode_step_s(batch=requests_running, total_context=kv_cache_usage x kv_capacity_tokens)``;
  measured: ``itl_p50_s``. A colocated worker's steps carry prompt chunks too, so its ITL leans toward
  the (longer) mixed steps: that is why the decode factor also corrects mixed steps in the perf model.
- prefill (prefill workers; samples with nothing waiting, so queueing does not count, and a TTFT p50):
  one prefill pass. Predicted: the median, over the service's requests that went through a prefill
  worker in the lookback, of each one's solo pass (its uncached tokens, attending over its cached
  prefix); prefill time grows with the prompt, so with no queueing or batching the p50 TTFT is exactly
  the median of those passes. Without such records, the latest profile's median prompt less its prefix
  cache share. Bias: nothing waits at the scrape instant, but prompts may have queued between scrapes or
  shared a batched pass, and both lengthen TTFT: the prefill factor leans high (more prefill capacity
  planned, the safe side). Requests prefilled locally on decode workers are not in the median, so a
  local-prefill threshold does not bias it low.

The update, per key, from its samples newer than ``last_observed`` within the lookback: nothing unless
there are at least PERF_CORRECTION_MIN_SAMPLES; else the median log ratio of the window, r, moves the
log factor by PERF_CORRECTION_ALPHA of the way: log f <- log f + alpha (r - log f), and f is bounded to
[PERF_CORRECTION_MIN_FACTOR, PERF_CORRECTION_MAX_FACTOR]. The median and the smoothing mean one bad
window cannot swing plans. A run reads the samples of the lookback once: O(samples), a dictionary
lookup and an O(1) prediction each. Factors are derived data, like roll-ups: not audited.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from controlplane.fleet.models import Node, Worker
from controlplane.planning.specs import catalog_tiers, model_spec
from controlplane.telemetry.models import PerfCorrection, WorkerSample
from controlplane.traffic.models import RecordStatus, RequestRecord, Service, WorkloadProfile
from profiler import catalog
from profiler.catalog import GpuTier, ModelArch
from profiler.errors import ProfilerError
from profiler.perfmodel import Corrections, PerfModel, default_efficiency

Key = tuple[str, str, int, str]  # (model_name, tier, tp, phase)
PROMPT_SAMPLE = 2000  # the newest prefill-pool records a service's median pass is taken over
_LOCK_KEY = 0x7E1E_C0DE


@dataclass(frozen=True)
class Bounds:
    """How factors move: smoothing weight of a new window, the samples a move needs, the factor's range."""

    alpha: float = 0.2
    min_samples: int = 5
    low: float = 0.5
    high: float = 2.0

    @classmethod
    def from_settings(cls) -> Bounds:
        return cls(
            alpha=settings.PERF_CORRECTION_ALPHA, min_samples=settings.PERF_CORRECTION_MIN_SAMPLES,
            low=settings.PERF_CORRECTION_MIN_FACTOR, high=settings.PERF_CORRECTION_MAX_FACTOR,
        )


def smoothed_factor(previous: float, log_ratios: Iterable[float], bounds: Bounds) -> float | None:
    """The factor after one window of log(measured / predicted); None where the window is too small to move it."""
    ratios = list(log_ratios)
    if len(ratios) < bounds.min_samples:
        return None
    low, high = math.log(bounds.low), math.log(bounds.high)
    prior = min(max(math.log(previous), low), high)
    moved = prior + bounds.alpha * (statistics.median(ratios) - prior)
    return math.exp(min(max(moved, low), high))


@dataclass(frozen=True)
class CorrectionsDone:
    """What one update did: keys moved, keys left alone for too few samples, samples compared."""

    updated: int
    too_few: int
    samples: int


@dataclass(frozen=True)
class _Worker:
    tier: str
    tp: int
    model_name: str


class _Predictions:
    """Perf models and prefill medians, built once per run and reused across samples."""

    def __init__(self, tiers: Mapping[str, GpuTier], since: datetime, now: datetime) -> None:
        self.tiers = tiers
        self.since, self.now = since, now
        self._models: dict[tuple[str, str, str, int], PerfModel | None] = {}
        self._archs: dict[str, ModelArch | None] = {}
        self._services: dict[int, Service] = Service.objects.in_bulk()
        self._prompts: dict[int, list[tuple[int, int]]] = {}
        self._prefill: dict[tuple[int, str, int], float | None] = {}

    def service(self, service_id: int | None) -> Service | None:
        return self._services.get(service_id) if service_id is not None else None

    def perf(self, service: Service | None, model_name: str, tier: str, tp: int) -> PerfModel | None:
        """The uncorrected model of one worker (the factor is relative to it); None where it cannot run."""
        dtype = service.dtype if service is not None else "bf16"
        key = (model_name, dtype, tier, tp)
        if key not in self._models:
            arch = self._arch(service, model_name)
            gpu = self.tiers.get(tier)
            perf = None
            if arch is not None and gpu is not None:
                try:
                    perf = PerfModel(model=arch, tier=gpu, tp=tp, dtype=dtype,
                                     efficiency=default_efficiency(tier, "vllm"))
                except ProfilerError:
                    perf = None
            self._models[key] = perf if perf is not None and perf.kv_capacity_tokens > 0 else None
        return self._models[key]

    def _arch(self, service: Service | None, model_name: str) -> ModelArch | None:
        if model_name not in self._archs:
            try:
                self._archs[model_name] = model_spec(service) if service is not None else catalog.model(model_name)
            except (ProfilerError, TypeError):
                self._archs[model_name] = None
        return self._archs[model_name]

    def prefill_s(self, service: Service, perf: PerfModel) -> float | None:
        """The median predicted solo prefill pass of the service's recent prefill-pool requests on ``perf``."""
        key = (service.pk, perf.tier.name, perf.tp)
        if key not in self._prefill:
            times = [
                perf.prefill_time_from_sums_s(max(prompt - cached, 1),
                                              _attention_sq(prompt, cached), 1)
                for prompt, cached in self._prompts_of(service)
            ]
            self._prefill[key] = statistics.median(times) if times else None
        return self._prefill[key]

    def _prompts_of(self, service: Service) -> list[tuple[int, int]]:
        if service.pk not in self._prompts:
            rows = list(
                RequestRecord.objects.filter(
                    service=service, status=RecordStatus.OK, arrival_at__gte=self.since, arrival_at__lte=self.now,
                ).exclude(prefill_worker="")
                .order_by("-arrival_at").values_list("prompt_tokens", "cached_prompt_tokens")[:PROMPT_SAMPLE]
            )
            if not rows:
                profile = WorkloadProfile.objects.filter(service=service).order_by("-window_end", "-id").first()
                if profile is not None and profile.prompt_tokens_p50:
                    prompt = max(round(profile.prompt_tokens_p50), 1)
                    rows = [(prompt, min(round(prompt * profile.prefix_cache_share), prompt))]
            self._prompts[service.pk] = [(int(p), int(c)) for p, c in rows]
        return self._prompts[service.pk]


def _attention_sq(prompt: int, cached: int) -> float:
    # Causal attention of the uncached tokens over themselves and over the cached prefix (as capacity.py).
    uncached = max(prompt - cached, 1)
    return float(uncached * uncached + 2 * uncached * max(prompt - uncached, 0))


def _lock() -> None:
    """Serialize two updates (a redelivered task beside the next beat); SQLite's write transactions already are."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _workers(node_ids: list[int]) -> dict[tuple[int, str], _Worker]:
    rows = Worker.objects.filter(node_id__in=node_ids).values_list("node_id", "name", "tp", "node__tier__name",
                                                                   "model_name")
    return {(node_id, name): _Worker(tier, tp, model_name) for node_id, name, tp, tier, model_name in rows}


def _observations(
    samples: Iterable[Mapping[str, Any]], workers: Mapping[tuple[int, str], _Worker], predictions: _Predictions
) -> dict[Key, list[tuple[datetime, float]]]:
    """log(measured / predicted) of every usable sample, by key, with the sample's time."""
    found: dict[Key, list[tuple[datetime, float]]] = {}
    for sample in samples:
        worker = workers.get((sample["node_id"], sample["worker_name"]))
        if worker is None:
            continue
        service = predictions.service(sample["service_id"])
        model_name = service.model_name if service is not None else worker.model_name
        if not model_name:
            continue
        perf = predictions.perf(service, model_name, worker.tier, worker.tp)
        if perf is None:
            continue
        if sample["role"] == "prefill":
            phase, measured = "prefill", sample["ttft_p50_s"]
            predicted = predictions.prefill_s(service, perf) if service is not None else None
        else:
            phase, measured = "decode", sample["itl_p50_s"]
            batch = int(sample["requests_running"])
            context = max(int(sample["kv_cache_usage"] * perf.kv_capacity_tokens), batch)
            predicted = perf.decode_step_s(batch, context)
        if not predicted or not measured or measured <= 0 or predicted <= 0:
            continue
        key = (model_name, worker.tier, worker.tp, phase)
        found.setdefault(key, []).append((sample["ts"], math.log(measured / predicted)))
    return found


@transaction.atomic
def perf_corrections_update(*, now: datetime, bounds: Bounds | None = None) -> CorrectionsDone:
    """Move each key's factor toward what the worker samples since its last update show.

    Samples of the last PERF_CORRECTION_LOOKBACK_S only; each is used once (a key keeps the time of its
    newest), so a task run twice changes nothing the second time. See the module docstring for the rules.
    """
    bounds = bounds or Bounds.from_settings()
    _lock()
    since = now - timedelta(seconds=settings.PERF_CORRECTION_LOOKBACK_S)
    node_ids = list(Node.objects.values_list("id", flat=True))
    usable = (Q(role="prefill", requests_waiting=0, ttft_p50_s__isnull=False)
              | Q(role__in=("decode", "colocated"), requests_running__gt=0, itl_p50_s__isnull=False))
    samples = (
        WorkerSample.objects.filter(usable, node_id__in=node_ids, ts__gt=since, ts__lte=now)
        .values("node_id", "worker_name", "service_id", "role", "ts", "requests_running", "kv_cache_usage",
                "ttft_p50_s", "itl_p50_s")
        .iterator(chunk_size=5000)
    )
    observed = _observations(samples, _workers(node_ids), _Predictions(catalog_tiers(), since, now))
    rows = {(r.model_name, r.tier, r.tp, r.phase): r for r in PerfCorrection.objects.filter(
        model_name__in={key[0] for key in observed})}
    updated = too_few = compared = 0
    for key, window in sorted(observed.items()):
        row = rows.get(key)
        fresh = [(ts, ratio) for ts, ratio in window if row is None or ts > row.last_observed]
        factor = smoothed_factor(row.factor if row is not None else 1.0, (ratio for _, ratio in fresh), bounds)
        if factor is None:
            too_few += 1
            continue
        compared += len(fresh)
        newest = max(ts for ts, _ in fresh)
        if row is None:
            model_name, tier, tp, phase = key
            PerfCorrection.objects.create(model_name=model_name, tier=tier, tp=tp, phase=phase, factor=factor,
                                          samples=len(fresh), updated_at=now, last_observed=newest)
        else:
            row.factor, row.samples, row.updated_at, row.last_observed = (
                factor, row.samples + len(fresh), now, newest)
            row.save(update_fields=["factor", "samples", "updated_at", "last_observed"])
        updated += 1
    return CorrectionsDone(updated=updated, too_few=too_few, samples=compared)


def perf_corrections_for(model_name: str) -> Corrections:
    """The factors of one model's workers, as the planner takes them: {(tier, tp, phase): factor}."""
    rows = PerfCorrection.objects.filter(model_name=model_name).values_list("tier", "tp", "phase", "factor")
    return Corrections.of({(tier, tp, phase): factor for tier, tp, phase, factor in rows})
