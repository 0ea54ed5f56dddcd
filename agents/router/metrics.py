"""The router's Prometheus metrics (``GET /metrics``), in a registry of its own.

Counters and histograms are updated as requests finish; gauges that mirror state (the plan's version,
each worker's breaker and outstanding tokens, the queue, the spool) are read when scraped.

  cleave_router_requests_total{service,pool,status}       status: ok, error, rejected, cancelled
  cleave_router_errors_total{service,pool,kind}           why a request failed or was refused
  cleave_router_ttft_seconds / _tpot_seconds / _e2e_seconds{service,pool}   histograms
  cleave_router_disaggregated_requests_total{service}     requests that took a prefill and a decode leg
  cleave_router_predicted_class_total{service,class}      the admission model's class of each request
  cleave_router_prompt_tokens_total / _generation_tokens_total{service}
  cleave_router_upstream_requests_total{worker,leg,outcome}   legs sent to workers: ok, error, refused
  cleave_router_retries_total{service,leg}                legs retried on another worker
  cleave_router_affinity_hits_total                       requests sent where their prefix was last
  cleave_router_plan_version{service}, cleave_router_plan_swaps_total
  cleave_router_breaker_state{worker}                     0 closed, 1 half-open, 2 open
  cleave_router_breaker_ejections_total{worker}
  cleave_router_worker_outstanding_tokens{worker}, cleave_router_worker_in_flight{worker}
  cleave_router_queue_depth, cleave_router_queue_limit    requests in flight, and the bound
  cleave_router_control_plane_up
  cleave_router_records_total{outcome}                    sent, spooled, rejected (a 400), dropped
  cleave_router_spool_bytes, cleave_router_spool_segments, cleave_router_spool_dropped_records_total
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

TTFT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
    80.0, 160.0,
)  # fmt: skip
TPOT_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
    0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
)  # fmt: skip
E2E_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0,
)  # fmt: skip


@dataclass(frozen=True)
class StateSnapshot:
    """What the state gauges show, gathered at scrape time."""

    service: str = ""
    plan_version: float | None = None
    plan_swaps: int = 0
    queue_depth: int = 0
    queue_limit: int = 0
    control_plane_up: bool | None = None
    breakers: dict[str, int] = field(default_factory=dict)
    ejections: dict[str, int] = field(default_factory=dict)
    outstanding_tokens: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    spool_bytes: int = 0
    spool_segments: int = 0
    spool_dropped_records: int = 0
    affinity_hits: int = 0


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], StateSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        state = self._snapshot()
        version = GaugeMetricFamily(
            "cleave_router_plan_version", "The version of the routing plan followed.", labels=["service"]
        )
        if state.plan_version is not None:
            version.add_metric([state.service], state.plan_version)
        yield version
        yield CounterMetricFamily(
            "cleave_router_plan_swaps",
            "Routing plans (or key lists) taken since start.",
            value=state.plan_swaps,
        )
        yield GaugeMetricFamily("cleave_router_queue_depth", "Requests in flight.", value=state.queue_depth)
        yield GaugeMetricFamily(
            "cleave_router_queue_limit", "Requests in flight beyond which the router answers 429.",
            value=state.queue_limit,
        )  # fmt: skip
        if state.control_plane_up is not None:
            yield GaugeMetricFamily(
                "cleave_router_control_plane_up", "Did the last routing poll reach the control plane.",
                value=float(state.control_plane_up),
            )  # fmt: skip
        per_worker: list[tuple[str, str, dict[str, int], type[GaugeMetricFamily | CounterMetricFamily]]] = [
            ("cleave_router_breaker_state", "Breaker per worker: 0 closed, 1 half-open, 2 open.",
             state.breakers, GaugeMetricFamily),
            ("cleave_router_breaker_ejections", "Times each worker's breaker opened.", state.ejections,
             CounterMetricFamily),
            ("cleave_router_worker_outstanding_tokens", "Tokens each worker still owes the router.",
             state.outstanding_tokens, GaugeMetricFamily),
            ("cleave_router_worker_in_flight", "Legs in flight per worker.", state.in_flight, GaugeMetricFamily),
        ]  # fmt: skip
        for name, help_text, values, family_type in per_worker:
            family = family_type(name, help_text, labels=["worker"])
            for worker in sorted(values):
                family.add_metric([worker], values[worker])
            yield family
        yield GaugeMetricFamily(
            "cleave_router_spool_bytes", "Bytes of records spooled on disk.", value=state.spool_bytes
        )
        yield GaugeMetricFamily(
            "cleave_router_spool_segments", "Spool segment files waiting.", value=state.spool_segments
        )
        yield CounterMetricFamily(
            "cleave_router_spool_dropped_records", "Spooled records dropped to keep the spool under its bound.",
            value=state.spool_dropped_records,
        )  # fmt: skip
        yield CounterMetricFamily(
            "cleave_router_affinity_hits", "Requests sent to the worker that last served their prefix.",
            value=state.affinity_hits,
        )  # fmt: skip


class RouterMetrics:
    """The router's counters and histograms, and its /metrics text."""

    def __init__(self, snapshot: Callable[[], StateSnapshot]) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "cleave_router_requests", "Requests by outcome.", ["service", "pool", "status"], registry=registry
        )
        self.errors = Counter(
            "cleave_router_errors", "Requests that failed or were refused, by kind.", ["service", "pool", "kind"],
            registry=registry,
        )  # fmt: skip
        self.disaggregated = Counter(
            "cleave_router_disaggregated_requests", "Requests served by a prefill and a decode worker.",
            ["service"], registry=registry,
        )  # fmt: skip
        self.classes = Counter(
            "cleave_router_predicted_class", "Requests by the class the admission model gave them.",
            ["service", "class"], registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "cleave_router_prompt_tokens", "Prompt tokens of served requests.", ["service"], registry=registry
        )
        self.generation_tokens = Counter(
            "cleave_router_generation_tokens", "Tokens generated for clients.", ["service"], registry=registry
        )
        self.upstream = Counter(
            "cleave_router_upstream_requests", "Legs sent to workers, by outcome.", ["worker", "leg", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.retries = Counter(
            "cleave_router_retries", "Legs retried on another worker.", ["service", "leg"], registry=registry
        )
        self.ttft = Histogram(
            "cleave_router_ttft_seconds", "Time to first token as clients saw it (streamed requests).",
            ["service", "pool"], buckets=TTFT_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.tpot = Histogram(
            "cleave_router_tpot_seconds", "Mean time per output token after the first (streamed requests).",
            ["service", "pool"], buckets=TPOT_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.e2e = Histogram(
            "cleave_router_e2e_seconds", "Time from arrival to the last byte.", ["service", "pool"],
            buckets=E2E_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.records = Counter(
            "cleave_router_records", "Request records by what became of them.", ["outcome"], registry=registry
        )
        registry.register(_StateCollector(snapshot))

    def observe(
        self,
        *,
        service: str,
        pool: str,
        status: str,
        ttft_s: float | None,
        tpot_s: float | None,
        e2e_s: float,
        prompt_tokens: int,
        output_tokens: int,
        predicted_class: str = "",
    ) -> None:
        """Count one finished request."""
        self.requests.labels(service, pool, status).inc()
        if predicted_class:
            self.classes.labels(service, predicted_class).inc()
        if status != "ok":
            return
        self.e2e.labels(service, pool).observe(e2e_s)
        if ttft_s is not None:
            self.ttft.labels(service, pool).observe(ttft_s)
        if tpot_s is not None:
            self.tpot.labels(service, pool).observe(tpot_s)
        self.prompt_tokens.labels(service).inc(prompt_tokens)
        self.generation_tokens.labels(service).inc(output_tokens)

    def render(self) -> bytes:
        """The Prometheus text of every metric."""
        return generate_latest(self.registry)
