"""Engine metrics in one shape: Prometheus text from vLLM, SGLang or the sim read into WorkerMetrics.

Each engine names the same quantities differently; a MetricNames lists, per quantity, the names to
try in order (newest first, so an older engine version still reads). Samples of one name with
several label sets (several engines of one server, several TP ranks) are summed, except the KV
usage, a share, of which the largest is kept. Two snapshots give rates and latency percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

INF = math.inf


class MetricsError(ValueError):
    """Prometheus text that cannot be read."""


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: upper bounds (the last is +Inf), cumulative counts, sum and count."""

    bounds: tuple[float, ...] = (INF,)
    cumulative_counts: tuple[float, ...] = (0.0,)
    sum: float = 0.0
    count: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made since ``earlier``; the whole of self where the buckets differ or counts fell."""
        if earlier.bounds != self.bounds or earlier.count > self.count:
            return self
        return Histogram(
            self.bounds,
            tuple(
                now - then
                for now, then in zip(self.cumulative_counts, earlier.cumulative_counts, strict=True)
            ),
            self.sum - earlier.sum,
            self.count - earlier.count,
        )

    def quantile(self, q: float) -> float | None:
        """The q-quantile, interpolated inside its bucket as Prometheus' histogram_quantile does."""
        return histogram_quantile(q, self.bounds, self.cumulative_counts)

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count > 0 else None


def histogram_quantile(
    q: float, bounds: tuple[float, ...], cumulative_counts: tuple[float, ...]
) -> float | None:
    """The q-quantile (0..1) of a cumulative histogram, None when it holds no observation.

    Linear inside the bucket the rank falls in, from the previous bound (0 for the first bucket);
    a rank in the +Inf bucket gives the largest finite bound, as Prometheus does.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    if not cumulative_counts or cumulative_counts[-1] <= 0:
        return None
    rank = q * cumulative_counts[-1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative_counts, strict=True):
        if count >= rank and count > previous_count:
            if math.isinf(bound):
                return previous_bound
            if previous_bound > bound:  # a first bucket with a negative bound
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return previous_bound


@dataclass(frozen=True)
class SimActivity:
    """The simulated engine's step counters, cumulative: what drives its simulated GPUs.

    Busy seconds are wall-clock (model time times the time scale). Prefill tokens are prompt tokens
    computed; decode seqs count one per sequence per decode step; decode context tokens sum each
    decode step's total context.
    """

    prefill_busy_s: float = 0.0
    decode_busy_s: float = 0.0
    prefill_steps: float = 0.0
    decode_steps: float = 0.0
    prefill_tokens: float = 0.0
    decode_seqs: float = 0.0
    decode_context_tokens: float = 0.0

    def minus(self, earlier: SimActivity) -> SimActivity:
        """The activity since ``earlier``; all of self where a counter fell (the engine restarted)."""
        if self.prefill_busy_s < earlier.prefill_busy_s or self.decode_busy_s < earlier.decode_busy_s:
            return self
        return SimActivity(
            self.prefill_busy_s - earlier.prefill_busy_s,
            self.decode_busy_s - earlier.decode_busy_s,
            self.prefill_steps - earlier.prefill_steps,
            self.decode_steps - earlier.decode_steps,
            self.prefill_tokens - earlier.prefill_tokens,
            self.decode_seqs - earlier.decode_seqs,
            self.decode_context_tokens - earlier.decode_context_tokens,
        )


@dataclass(frozen=True)
class WorkerMetrics:
    """One scrape of a worker, whatever its engine. Counters are cumulative since the engine started."""

    requests_running: int = 0
    requests_waiting: int = 0
    kv_cache_usage: float = 0.0
    prompt_tokens_total: float = 0.0
    generation_tokens_total: float = 0.0
    requests_finished_total: float = 0.0
    ttft_seconds: Histogram = field(default_factory=Histogram)
    itl_seconds: Histogram = field(default_factory=Histogram)
    sim: SimActivity | None = None
    info: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class WorkerRates:
    """What a worker did between two scrapes: rates per second and latency percentiles (None: no data)."""

    interval_s: float
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    requests_per_s: float
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    itl_p50_s: float | None
    itl_p90_s: float | None
    prefill_busy_share: float | None = None
    decode_busy_share: float | None = None


def rates_between(earlier: WorkerMetrics, later: WorkerMetrics, interval_s: float) -> WorkerRates:
    """Rates and p50/p90 latencies over the ``interval_s`` seconds between two scrapes.

    A counter that fell means the engine restarted in between: the later value is then the whole
    delta. Busy shares are given for the sim only.
    """
    if interval_s <= 0:
        raise ValueError(f"interval must be > 0 s, got {interval_s}")

    def delta(now: float, then: float) -> float:
        return now - then if now >= then else now

    ttft = later.ttft_seconds.minus(earlier.ttft_seconds)
    itl = later.itl_seconds.minus(earlier.itl_seconds)
    prefill_share = decode_share = None
    if later.sim is not None:
        activity = later.sim.minus(earlier.sim or SimActivity())
        prefill_share = min(activity.prefill_busy_s / interval_s, 1.0)
        decode_share = min(activity.decode_busy_s / interval_s, 1.0)
    return WorkerRates(
        interval_s=interval_s,
        prompt_tokens_per_s=delta(later.prompt_tokens_total, earlier.prompt_tokens_total) / interval_s,
        generation_tokens_per_s=delta(later.generation_tokens_total, earlier.generation_tokens_total)
        / interval_s,
        requests_per_s=delta(later.requests_finished_total, earlier.requests_finished_total) / interval_s,
        ttft_p50_s=ttft.quantile(0.5),
        ttft_p90_s=ttft.quantile(0.9),
        itl_p50_s=itl.quantile(0.5),
        itl_p90_s=itl.quantile(0.9),
        prefill_busy_share=prefill_share,
        decode_busy_share=decode_share,
    )


@dataclass(frozen=True)
class MetricNames:
    """Per quantity, the metric names an engine may use for it, tried in order.

    Counter names are given with their ``_total`` suffix, histogram names without ``_bucket``.
    """

    requests_running: tuple[str, ...]
    requests_waiting: tuple[str, ...]
    kv_cache_usage: tuple[str, ...]
    prompt_tokens_total: tuple[str, ...]
    generation_tokens_total: tuple[str, ...]
    requests_finished_total: tuple[str, ...]
    ttft_seconds: tuple[str, ...]
    itl_seconds: tuple[str, ...]
    # A share reported in percent (0..100) rather than 0..1, as no engine here does today.
    kv_cache_usage_in_percent: bool = False


Sample = tuple[dict[str, str], float]


def read_samples(text: str) -> dict[str, list[Sample]]:
    """Every sample of a Prometheus text, by sample name (``x_total``, ``x_bucket``...)."""
    samples: dict[str, list[Sample]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    except ValueError as error:
        raise MetricsError(f"unreadable Prometheus text: {error}") from error
    return samples


def parse_worker_metrics(text: str, names: MetricNames, *, info_name: str | None = None) -> WorkerMetrics:
    """Read one engine's ``/metrics`` text into WorkerMetrics, by that engine's names."""
    samples = read_samples(text)
    usage = _first(samples, names.kv_cache_usage, largest=True)
    if names.kv_cache_usage_in_percent:
        usage /= 100.0
    info: dict[str, str] = {}
    if info_name and samples.get(info_name):
        info = dict(samples[info_name][0][0])
    return WorkerMetrics(
        requests_running=round(_first(samples, names.requests_running)),
        requests_waiting=round(_first(samples, names.requests_waiting)),
        kv_cache_usage=min(max(usage, 0.0), 1.0),
        prompt_tokens_total=_first(samples, names.prompt_tokens_total),
        generation_tokens_total=_first(samples, names.generation_tokens_total),
        requests_finished_total=_first(samples, names.requests_finished_total),
        ttft_seconds=_histogram(samples, names.ttft_seconds),
        itl_seconds=_histogram(samples, names.itl_seconds),
        info=info,
    )


def _first(samples: Mapping[str, list[Sample]], candidates: Iterable[str], *, largest: bool = False) -> float:
    for name in candidates:
        values = [value for _, value in samples.get(name, ())]
        if values:
            return max(values) if largest else sum(values)
    return 0.0


def _histogram(samples: Mapping[str, list[Sample]], candidates: Iterable[str]) -> Histogram:
    for name in candidates:
        buckets = samples.get(name + "_bucket")
        if not buckets:
            continue
        # Several label sets (engines, ranks) of the same buckets add up bucket by bucket.
        by_bound: dict[float, float] = {}
        for labels, value in buckets:
            bound = float(labels.get("le", "+Inf"))
            by_bound[bound] = by_bound.get(bound, 0.0) + value
        bounds = tuple(sorted(by_bound))
        total_sum = sum(value for _, value in samples.get(name + "_sum", ()))
        count = sum(value for _, value in samples.get(name + "_count", ()))
        return Histogram(
            bounds, tuple(by_bound[bound] for bound in bounds), total_sum, count or by_bound[bounds[-1]]
        )
    return Histogram()
