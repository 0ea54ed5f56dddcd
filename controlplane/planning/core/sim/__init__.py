"""The discrete-event cluster simulator: a trace or Poisson workload served by prefill/decode or colocated
pools of GPU instances timed by the perf model, reporting SLO attainment, goodput, energy and cost.

Pure Python (profiler, numpy, stdlib): no Django, no I/O.
"""

from __future__ import annotations

from .engine import simulate
from .goodput import GoodputProbe, GoodputSearch, goodput_rps, goodput_search
from .metrics import LatencyStats, PoolResult, SimResult
from .spec import ROLES, ClusterSpec, PoolSpec, SimulationError, Slo, tier_price
from .workload import (
    LengthSampler,
    Request,
    fit_context,
    poisson_requests,
    requests_from_trace,
)

__all__ = [
    "ROLES",
    "ClusterSpec",
    "GoodputProbe",
    "GoodputSearch",
    "LatencyStats",
    "LengthSampler",
    "PoolResult",
    "PoolSpec",
    "Request",
    "SimResult",
    "SimulationError",
    "Slo",
    "fit_context",
    "goodput_rps",
    "goodput_search",
    "poisson_requests",
    "requests_from_trace",
    "simulate",
    "tier_price",
]
