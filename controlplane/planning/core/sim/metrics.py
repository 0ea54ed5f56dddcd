"""What a simulation reports: latency per request and in percentiles, SLO attainment, throughput, and what
the cluster drew and cost, per pool and in all."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ledger import Ledger
from .spec import ClusterSpec, PoolSpec, Slo, tier_price
from .workers import Instance
from .workload import Request

_HOUR_S = 3600.0


@dataclass(frozen=True)
class LatencyStats:
    """Mean and percentiles of one latency over the requests, in seconds."""

    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: np.ndarray) -> LatencyStats:
        """The stats of ``values`` (zeros for none)."""
        if values.size == 0:
            return cls(0.0, 0.0, 0.0, 0.0)
        p50, p90, p99 = np.percentile(values, [50, 90, 99]).tolist()
        return cls(float(values.mean()), p50, p90, p99)


@dataclass(frozen=True)
class PoolResult:
    """One pool over the run: instance-seconds busy, the busy share of its instance-time, energy, cost."""

    role: str
    tier: str
    tp: int
    count: int
    engine: str
    gpus: int
    busy_s: float
    utilization: float
    energy_j: float
    cost_usd: float
    cost_usd_per_h: float


@dataclass(frozen=True)
class SimResult:
    """The outcome of one simulation.

    Per-request tuples (ttft_s, tpot_s, e2e_s) follow the order of the requests given. TTFT is from arrival
    to the first token at the client: after the KV transfer in a disaggregated cluster. TPOT is
    (e2e - ttft) / (output_tokens - 1), and 0 for a one-token output; its stats cover the requests with
    more than one token. A request attains the SLO when both its TTFT and its TPOT are within it.

    The run lasts from the first arrival to the last token (duration_s). Every GPU costs its tier's price
    for all of it, busy or idle; energy is each instance's busy steps at their power plus its idle time
    at idle power. Throughput and the per-token figures count prompt and output tokens together
    (tokens_in + tokens_out); output_tokens_per_s counts the output alone. mean_in_system is the
    time-average of requests arrived and not finished, kept by the event loop (Little's law: it equals
    arrival rate times mean e2e). events counts what the event loop handled (arrivals included) and
    engine_steps the forward passes it timed (prefill passes, mixed and decode steps): the second grows
    with the tokens generated, the first only with the requests.
    """

    requests: int
    completed: int
    duration_s: float
    slo: Slo
    ttft_s: tuple[float, ...]
    tpot_s: tuple[float, ...]
    e2e_s: tuple[float, ...]
    attainment: float
    ttft_attainment: float
    tpot_attainment: float
    ttft: LatencyStats
    tpot: LatencyStats
    e2e: LatencyStats
    tokens_in: int
    tokens_out: int
    arrival_rate_rps: float
    throughput_tokens_per_s: float
    output_tokens_per_s: float
    mean_in_system: float
    pools: tuple[PoolResult, ...]
    energy_j: float
    cost_usd: float
    cost_usd_per_h: float
    power_kw: float
    tokens_per_joule: float
    usd_per_million_tokens: float
    events: int
    engine_steps: int

    def as_dict(self, *, per_request: bool = True) -> dict[str, Any]:
        """The result as plain JSON-ready values; ``per_request=False`` leaves out the per-request lists."""
        data = dataclasses.asdict(self)
        if not per_request:
            for name in ("ttft_s", "tpot_s", "e2e_s"):
                data.pop(name)
        return data


def build_result(
    cluster: ClusterSpec,
    requests: Sequence[Request],
    slo: Slo,
    ledger: Ledger,
    instances: Sequence[Instance],
    prices_usd_per_gpu_h: Mapping[str, float] | None,
    *,
    events: int,
) -> SimResult:
    """Turn the ledger and the instances' accounts into a SimResult."""
    arrival = np.fromiter((r.arrival_s for r in requests), float, len(requests))
    first = np.asarray(ledger.first_token_s)
    finish = np.asarray(ledger.finish_s)
    outputs = np.asarray(ledger.output)
    ttft = first - arrival
    e2e = finish - arrival
    multi = outputs > 1
    tpot = np.zeros(len(requests))
    tpot[multi] = (e2e[multi] - ttft[multi]) / (outputs[multi] - 1)
    start, end = float(arrival.min()), float(finish.max())
    duration = end - start
    meets_ttft = ttft <= slo.ttft_s
    meets_tpot = tpot <= slo.tpot_s
    tokens_in, tokens_out = int(sum(ledger.prompt)), int(outputs.sum())
    tokens = tokens_in + tokens_out

    pools = _pool_results(cluster.pools, instances, duration, prices_usd_per_gpu_h)
    energy = sum(pool.energy_j for pool in pools)
    cost = sum(pool.cost_usd for pool in pools)
    per_s = 1.0 / duration if duration > 0 else math.nan
    return SimResult(
        requests=len(requests),
        completed=int(np.count_nonzero(finish == finish)),
        duration_s=duration,
        slo=slo,
        ttft_s=tuple(ttft.tolist()),
        tpot_s=tuple(tpot.tolist()),
        e2e_s=tuple(e2e.tolist()),
        attainment=float(np.mean(meets_ttft & meets_tpot)),
        ttft_attainment=float(np.mean(meets_ttft)),
        tpot_attainment=float(np.mean(meets_tpot)),
        ttft=LatencyStats.of(ttft),
        tpot=LatencyStats.of(tpot[multi]),
        e2e=LatencyStats.of(e2e),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        arrival_rate_rps=len(requests) * per_s,
        throughput_tokens_per_s=tokens * per_s,
        output_tokens_per_s=tokens_out * per_s,
        mean_in_system=ledger.in_system_area * per_s,
        pools=pools,
        energy_j=energy,
        cost_usd=cost,
        cost_usd_per_h=cluster.cost_usd_per_h(prices_usd_per_gpu_h),
        power_kw=energy * per_s / 1000.0,
        tokens_per_joule=tokens / energy if energy > 0 else math.nan,
        usd_per_million_tokens=cost / tokens * 1e6,
        events=events,
        engine_steps=sum(instance.steps_run for instance in instances),
    )


def _pool_results(
    pools: Sequence[PoolSpec],
    instances: Sequence[Instance],
    duration_s: float,
    prices_usd_per_gpu_h: Mapping[str, float] | None,
) -> tuple[PoolResult, ...]:
    results = []
    for index, pool in enumerate(pools):
        members = [instance for instance in instances if instance.pool == index]
        busy = sum(instance.busy_s for instance in members)
        idle_s = sum(max(duration_s - instance.busy_s, 0.0) for instance in members)
        energy = sum(instance.busy_energy_j for instance in members) + idle_s * pool.tier.idle_w * pool.tp
        price_per_h = pool.gpus * tier_price(pool.tier, prices_usd_per_gpu_h)
        instance_time = pool.count * duration_s
        results.append(
            PoolResult(
                role=pool.role,
                tier=pool.tier.name,
                tp=pool.tp,
                count=pool.count,
                engine=pool.engine,
                gpus=pool.gpus,
                busy_s=busy,
                utilization=busy / instance_time if instance_time > 0 else 0.0,
                energy_j=energy,
                cost_usd=price_per_h * duration_s / _HOUR_S,
                cost_usd_per_h=price_per_h,
            )
        )
    return tuple(results)
