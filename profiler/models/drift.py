"""Drift: whether a service's workload has moved away from what its active plan was made for.

Scheduled rebalancing asks this every cycle. The reference is the profile the plan was made for (or,
without one, the windows before the recent ones); the current state is the recent windows pooled,
or, with a workload model, its forecast of the next window. The class has drifted when the current
class differs from the reference's with at least ``min_confidence``; the load has drifted when the
arrival rate moved by ``rate_tolerance`` or more of the reference rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from profiler.errors import ProfilerError
from profiler.features import WindowProfile, classify_share
from profiler.models.workload import WorkloadModel, class_probability

DEFAULT_RECENT = 3
DEFAULT_RATE_TOLERANCE = 0.25
DEFAULT_MIN_CONFIDENCE = 0.8


@dataclass(frozen=True)
class Drift:
    """The verdict: whether it changed, the classes before and now, the relative rate change, and why."""

    changed: bool
    from_class: str | None
    to_class: str | None
    rate_change: float | None
    reason: str
    confidence: float = 0.0


@dataclass(frozen=True)
class Pooled:
    """Windows taken together: prefill share of their GPU time, its standard error, and the mean rate."""

    prefill_share: float | None
    prefill_share_se: float | None
    arrival_rate_rps: float | None
    request_count: int


def pool(windows: Sequence[WindowProfile]) -> Pooled:
    """Windows pooled: the share of their summed GPU time, and the rate over their summed duration."""
    gpu = [(w.prefill_gpu_s, w.prefill_gpu_s + w.decode_gpu_s, w.prefill_share_se) for w in windows]
    total = sum(both for _, both, _ in gpu)
    share = sum(prefill for prefill, _, _ in gpu) / total if total > 0.0 else None
    se = None
    if total > 0.0 and all(s is not None for _, both, s in gpu if both > 0.0):
        se = math.sqrt(sum(((s or 0.0) * both) ** 2 for _, both, s in gpu)) / total
    timed = [(w.arrival_rate_rps, w.end_s - w.start_s) for w in windows if w.arrival_rate_rps is not None]
    duration = sum(span for _, span in timed)
    rate = sum((r or 0.0) * span for r, span in timed) / duration if timed and duration > 0.0 else None
    return Pooled(share, se, rate, sum(w.request_count for w in windows))


def detect_drift(
    history: Sequence[WindowProfile],
    *,
    baseline: WindowProfile | None = None,
    model: WorkloadModel | None = None,
    recent: int = DEFAULT_RECENT,
    rate_tolerance: float = DEFAULT_RATE_TOLERANCE,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> Drift:
    """Whether the workload in ``history`` (oldest first) drifted from ``baseline``.

    ``baseline`` is the profile the active plan was made for; None pools the windows before the last
    ``recent``. With ``model`` the current state is its forecast of the next window; without, the last
    ``recent`` windows pooled.
    """
    if recent < 1:
        raise ProfilerError(f"recent must be >= 1 window, got {recent}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ProfilerError(f"min_confidence must be in [0, 1], got {min_confidence}")
    if rate_tolerance < 0.0:
        raise ProfilerError(f"rate_tolerance must be >= 0, got {rate_tolerance}")
    windows = list(history)
    reference = pool([baseline]) if baseline is not None else pool(windows[:-recent])
    if baseline is None and len(windows) <= recent:
        return Drift(
            False, None, None, None, f"not enough history: {len(windows)} windows, need more than {recent}"
        )
    if reference.prefill_share is None:
        return Drift(False, None, None, None, "the reference windows hold no requests")

    current = pool(windows[-recent:])
    if model is not None:
        forecast = model.forecast(windows)
        to_share, to_rate = forecast.prefill_share, forecast.arrival_rate_rps
        to_class, confidence = forecast.next_class, forecast.confidence
        source = "forecast of the next window"
    else:
        to_share, to_rate = current.prefill_share, current.arrival_rate_rps
        to_class = None if to_share is None else classify_share(to_share)
        confidence = (
            0.0
            if to_share is None or to_class is None
            else class_probability(to_share, current.prefill_share_se, to_class)
        )
        source = f"last {min(recent, len(windows))} windows"
    from_class = classify_share(reference.prefill_share)

    rate_change = None
    if reference.arrival_rate_rps and to_rate is not None:
        rate_change = (to_rate - reference.arrival_rate_rps) / reference.arrival_rate_rps
    reasons = []
    if to_class is not None and to_class != from_class:
        if confidence >= min_confidence:
            reasons.append(
                f"class {from_class} -> {to_class} (prefill share {reference.prefill_share:.2f} -> "
                f"{to_share:.2f}, confidence {confidence:.2f}, {source})"
            )
        else:
            reasons.append(
                f"class may be moving to {to_class} but confidence {confidence:.2f} < {min_confidence}"
            )
    rate_drifted = rate_change is not None and abs(rate_change) >= rate_tolerance
    if rate_drifted:
        reasons.append(
            f"arrival rate {reference.arrival_rate_rps:.3g} -> {to_rate:.3g} req/s ({rate_change:+.0%}, {source})"
        )
    class_drifted = to_class is not None and to_class != from_class and confidence >= min_confidence
    changed = class_drifted or rate_drifted
    if not reasons:
        reasons.append(f"steady: {from_class}, rate within {rate_tolerance:.0%} ({source})")
    return Drift(changed, from_class, to_class, rate_change, "; ".join(reasons), confidence)
