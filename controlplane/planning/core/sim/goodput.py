"""Goodput: the highest Poisson arrival rate at which a cluster still holds its SLO attainment target."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .engine import simulate
from .spec import ClusterSpec, SimulationError, Slo
from .workload import LengthSampler, poisson_requests


@dataclass(frozen=True)
class GoodputProbe:
    """One simulated rate and the attainment it reached."""

    rate_rps: float
    attainment: float


@dataclass(frozen=True)
class GoodputSearch:
    """The goodput found (0 where even the lowest rate tried fails) and every rate simulated on the way."""

    rate_rps: float
    probes: tuple[GoodputProbe, ...]


def goodput_search(
    cluster: ClusterSpec | Callable[[float], ClusterSpec],
    lengths: Sequence[tuple[int, int]] | LengthSampler,
    slo: Slo,
    attainment_target: float,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    lo: float | None = None,
    hi: float | None = None,
    tolerance: float = 0.02,
    min_rate: float = 1e-3,
    max_rate: float = 1e6,
    prices_usd_per_gpu_h: Mapping[str, float] | None = None,
) -> GoodputSearch:
    """Find the highest rate (req/s) whose Poisson workload meets ``attainment_target``, by bisection.

    Each probe simulates ``count`` requests (or ``duration_s`` seconds) of Poisson arrivals with lengths
    drawn from ``lengths``; every probe uses the same seed, so rates differ only in how close together the
    same requests arrive (common random numbers). Attainment then falls with the rate all but monotonically,
    and bisection is sound: the search first brackets the goodput, doubling up from ``lo`` (default 1) while
    the rate passes, or halving down from ``hi`` while it fails, then halves the bracket until it is within
    ``tolerance`` of its lower end. The answer is the highest passing rate found, with a failing one at
    most ``tolerance`` above it; where attainment is not monotone, some higher rate may pass too.
    ``cluster`` may be a function of the rate, for a cluster sized to the load.
    """
    if not 0.0 < attainment_target <= 1.0:
        raise SimulationError(f"attainment_target must be in (0, 1], got {attainment_target}")
    if not 0.0 < tolerance < 1.0:
        raise SimulationError(f"tolerance must be in (0, 1), got {tolerance}")
    probes: list[GoodputProbe] = []

    def passes(rate: float) -> bool:
        spec = cluster(rate) if callable(cluster) else cluster
        requests = poisson_requests(rate, duration_s=duration_s, count=count, lengths=lengths, seed=seed)
        attainment = simulate(spec, requests, slo, prices_usd_per_gpu_h=prices_usd_per_gpu_h).attainment
        probes.append(GoodputProbe(rate, attainment))
        return attainment >= attainment_target

    low, high = _bracket(passes, lo, hi, min_rate, max_rate)
    if low == 0.0:
        return GoodputSearch(0.0, tuple(probes))
    while math.isfinite(high) and high - low > tolerance * low:
        middle = (low + high) / 2.0
        if passes(middle):
            low = middle
        else:
            high = middle
    return GoodputSearch(low, tuple(probes))


def _bracket(
    passes: Callable[[float], bool], lo: float | None, hi: float | None, min_rate: float, max_rate: float
) -> tuple[float, float]:
    """A passing rate and a failing one above it; (0, rate) where nothing down to min_rate passes, and
    (rate, inf) where everything up to max_rate does."""
    for name, value in (("lo", lo), ("hi", hi)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SimulationError(f"{name} must be a positive rate, got {value}")
    if lo is not None and hi is not None and lo >= hi:
        raise SimulationError(f"lo ({lo}) must be below hi ({hi})")
    low: float | None = None
    high: float | None = None
    start = lo if lo is not None else (hi / 2.0 if hi is not None else 1.0)
    if passes(start):
        low = start
        high = hi if hi is not None and not passes(hi) else None
        if hi is not None and high is None:
            low = hi
        while high is None:
            if low * 2.0 > max_rate:
                return low, math.inf
            if passes(low * 2.0):
                low *= 2.0
            else:
                high = low * 2.0
        return low, high
    high = start
    while True:
        if high / 2.0 < min_rate:
            return 0.0, high
        if passes(high / 2.0):
            return high / 2.0, high
        high /= 2.0


def goodput_rps(
    cluster: ClusterSpec | Callable[[float], ClusterSpec],
    lengths: Sequence[tuple[int, int]] | LengthSampler,
    slo: Slo,
    attainment_target: float,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    seed: int = 0,
    lo: float | None = None,
    hi: float | None = None,
    tolerance: float = 0.02,
    prices_usd_per_gpu_h: Mapping[str, float] | None = None,
) -> float:
    """The highest Poisson rate (req/s) holding ``attainment_target``; see goodput_search for the search."""
    return goodput_search(
        cluster,
        lengths,
        slo,
        attainment_target,
        count=count,
        duration_s=duration_s,
        seed=seed,
        lo=lo,
        hi=hi,
        tolerance=tolerance,
        prices_usd_per_gpu_h=prices_usd_per_gpu_h,
    ).rate_rps
