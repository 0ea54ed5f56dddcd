"""The workload model: each window's class with a confidence, the next window's forecast, and drift.

A window's class follows from its prefill share of GPU time (``profiler.features``), so labelling a
window needs no learned model; what is uncertain is the share itself, estimated from a sample of
requests. The confidence of a class is the probability that the share lies in that class's range,
taking the share as normal around its estimate with the ratio estimator's standard error
(``WindowProfile.prefill_share_se``): a window far from the thresholds is sure, one on a threshold is a
coin toss, and a window of few requests is never very sure. A logistic of the distance to the
thresholds would need a scale fitted by hand; the standard error is that scale, measured per window.

The forecast is Holt's damped-trend exponential smoothing of the prefill share and of the arrival
rate, its three factors per series fitted on the earlier windows by one-step-ahead error. With so few
windows a day (288 of 5 minutes) a model with more parameters would fit noise; persistence (next =
current) is the special case alpha = 1, beta = 0, and the hold-out compares against it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from profiler.errors import ProfilerError
from profiler.features import CLASSES, DECODE_HEAVY_AT, PREFILL_HEAVY_AT, WindowProfile, classify_share
from profiler.models.schema import FORMAT, ModelFormatError, field, header, number

KIND = "workload"
TRAIN_SHARE = 0.7
MIN_WINDOWS = 6
_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_BETAS = (0.0, 0.05, 0.1, 0.2, 0.3)
_PHIS = (0.8, 0.9, 0.98)
# A forecast share is never surer than this: the floor keeps a model fitted on a smooth day from
# claiming certainty on a rougher one.
_MIN_SHARE_SD = 0.02


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def class_probability(share: float, sd: float | None, workload_class: str) -> float:
    """P(the true share lies in ``workload_class``'s range) for a share estimated with standard error sd.

    ``sd`` None or 0 means the share is exact: 1.0 for its own class, 0.0 for the others.
    """
    if workload_class not in CLASSES:
        raise ProfilerError(f"unknown class {workload_class!r}; classes: {', '.join(CLASSES)}")
    if not sd:
        return 1.0 if classify_share(min(max(share, 0.0), 1.0)) == workload_class else 0.0
    below_prefill = _normal_cdf((PREFILL_HEAVY_AT - share) / sd)
    below_decode = _normal_cdf((DECODE_HEAVY_AT - share) / sd)
    if workload_class == CLASSES[0]:
        return 1.0 - below_prefill
    if workload_class == CLASSES[2]:
        return below_decode
    return below_prefill - below_decode


def classify_window(window: WindowProfile) -> tuple[str | None, float]:
    """A window's class and the confidence in it; an empty window is (None, 0.0).

    A window of one request has no standard error: its confidence is 1/3, no better than a guess.
    """
    if window.prefill_share is None or window.workload_class is None:
        return None, 0.0
    if window.prefill_share_se is None:
        return window.workload_class, 1.0 / len(CLASSES)
    return window.workload_class, class_probability(
        window.prefill_share, window.prefill_share_se, window.workload_class
    )


@dataclass(frozen=True)
class Smoothing:
    """Holt's linear-trend exponential smoothing with a damped trend: level, trend and damping factors."""

    alpha: float
    beta: float
    phi: float

    def one_step(self, series: Sequence[float | None]) -> list[float | None]:
        """Forecasts of series[0..n]: entry i uses series[:i] only (None until a value is seen).

        Missing values (None) leave the level and trend as they are; the n-th entry is the next window's.
        """
        level: float | None = None
        trend = 0.0
        forecasts: list[float | None] = []
        for value in series:
            forecasts.append(None if level is None else level + self.phi * trend)
            if value is None:
                continue
            if level is None:
                level = value
                continue
            previous = level
            level = self.alpha * value + (1.0 - self.alpha) * (level + self.phi * trend)
            trend = self.beta * (level - previous) + (1.0 - self.beta) * self.phi * trend
        forecasts.append(None if level is None else level + self.phi * trend)
        return forecasts

    def to_json(self) -> dict[str, float]:
        return {"alpha": self.alpha, "beta": self.beta, "phi": self.phi}

    @classmethod
    def from_json(cls, doc: object, where: str) -> Smoothing:
        if not isinstance(doc, Mapping):
            raise ModelFormatError(f"{where} must be an object with alpha, beta and phi")
        values = {name: number(doc.get(name), f"{where}.{name}") for name in ("alpha", "beta", "phi")}
        for name, value in values.items():
            if not 0.0 <= value <= 1.0:
                raise ModelFormatError(f"{where}.{name} must be in [0, 1], got {value}")
        return cls(**values)


PERSISTENCE = Smoothing(alpha=1.0, beta=0.0, phi=1.0)


@dataclass(frozen=True)
class Forecast:
    """The next window as forecast: its class (and the confidence in it), prefill share and arrival rate."""

    next_class: str | None
    confidence: float
    prefill_share: float | None
    arrival_rate_rps: float | None


def _shares(windows: Sequence[WindowProfile]) -> list[float | None]:
    return [window.prefill_share for window in windows]


def _rates(windows: Sequence[WindowProfile]) -> list[float | None]:
    return [window.arrival_rate_rps for window in windows]


@dataclass(frozen=True)
class WorkloadModel:
    """Fitted smoothing for share and rate, with the share's forecast error; loaded from JSON."""

    doc: Mapping[str, Any]
    share: Smoothing
    rate: Smoothing
    share_error_sd: float

    @classmethod
    def from_json(cls, doc: object) -> WorkloadModel:
        """Load an exported workload model; ModelFormatError names what is wrong."""
        where = "workload model"
        checked = header(doc, KIND)
        thresholds = field(checked, "thresholds", dict, where)
        for name, value in (("prefill_heavy_at", PREFILL_HEAVY_AT), ("decode_heavy_at", DECODE_HEAVY_AT)):
            found = number(thresholds.get(name), f"{where}: thresholds.{name}")
            if found != value:
                raise ModelFormatError(
                    f"{where}: trained with thresholds.{name} = {found}, but the classes now use {value}"
                )
        forecaster = field(checked, "forecaster", dict, where)
        share_error_sd = number(forecaster.get("share_error_sd"), f"{where}: forecaster.share_error_sd")
        if share_error_sd < 0.0:
            raise ModelFormatError(f"{where}: forecaster.share_error_sd must be >= 0, got {share_error_sd}")
        return cls(
            doc=checked,
            share=Smoothing.from_json(forecaster.get("share"), f"{where}: forecaster.share"),
            rate=Smoothing.from_json(forecaster.get("rate"), f"{where}: forecaster.rate"),
            share_error_sd=share_error_sd,
        )

    @classmethod
    def persistence(cls) -> WorkloadModel:
        """The baseline: next window = this window, with a share error of the floor."""
        return cls(doc={}, share=PERSISTENCE, rate=PERSISTENCE, share_error_sd=_MIN_SHARE_SD)

    @property
    def version(self) -> str | None:
        value = self.doc.get("version")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return dict(self.doc)

    def classify(self, window: WindowProfile) -> tuple[str | None, float]:
        """The window's class and confidence (see ``classify_window``)."""
        return classify_window(window)

    def forecast(self, history: Sequence[WindowProfile]) -> Forecast:
        """The window after ``history`` (oldest first): class, confidence, share and rate."""
        share = self.share.one_step(_shares(history))[-1]
        rate = self.rate.one_step(_rates(history))[-1]
        if rate is not None:
            rate = max(rate, 0.0)
        if share is None:
            return Forecast(None, 0.0, None, rate)
        share = min(max(share, 0.0), 1.0)
        next_class = classify_share(share)
        sd = max(self.share_error_sd, _MIN_SHARE_SD)
        return Forecast(next_class, class_probability(share, sd, next_class), share, rate)


@dataclass(frozen=True)
class WorkloadReport:
    """Hold-out scores of the fitted forecaster and of persistence, on the same windows."""

    metrics: dict[str, Any]
    train_windows: int
    test_windows: int


def _errors(
    smoothing: Smoothing, series: Sequence[Sequence[float | None]], cut: Sequence[int], part: str
) -> list[tuple[float, float]]:
    pairs: list[tuple[float, float]] = []
    for values, at in zip(series, cut, strict=True):
        forecasts = smoothing.one_step(values)
        span = range(1, at) if part == "train" else range(at, len(values))
        pairs.extend(
            (forecast, actual)
            for forecast, actual in ((forecasts[i], values[i]) for i in span)
            if forecast is not None and actual is not None
        )
    return pairs


def _fit(series: Sequence[Sequence[float | None]], cut: Sequence[int]) -> Smoothing:
    best, best_error = PERSISTENCE, math.inf
    for alpha, beta, phi in itertools.product(_ALPHAS, _BETAS, _PHIS):
        candidate = Smoothing(alpha, beta, phi)
        pairs = _errors(candidate, series, cut, "train")
        if not pairs:
            return PERSISTENCE
        error = sum(abs(forecast - actual) for forecast, actual in pairs) / len(pairs)
        if error < best_error - 1e-12:
            best, best_error = candidate, error
    return best


def _holdout(
    share: Smoothing, rate: Smoothing, shares: Any, rates: Any, cut: Sequence[int]
) -> dict[str, Any]:
    share_pairs = _errors(share, shares, cut, "test")
    rate_pairs = _errors(rate, rates, cut, "test")

    def mae(pairs: list[tuple[float, float]]) -> float | None:
        return sum(abs(f - a) for f, a in pairs) / len(pairs) if pairs else None

    hits = [classify_share(min(max(f, 0.0), 1.0)) == classify_share(a) for f, a in share_pairs]
    return {
        "share_mae": mae(share_pairs),
        "rate_mae_rps": mae(rate_pairs),
        "class_accuracy": sum(hits) / len(hits) if hits else None,
        "windows": len(share_pairs),
    }


def train_workload(
    windows: Sequence[WindowProfile] | Mapping[str, Sequence[WindowProfile]],
    *,
    created_at: datetime | None = None,
) -> tuple[dict[str, Any], WorkloadReport]:
    """Fit the share and rate forecasters on windows (one series, or one per service); export as JSON.

    Each series is split by time: its earlier 70% of windows fit the smoothing factors, the later 30%
    score the fitted forecaster and persistence (both forecast each test window from all windows before it).
    """
    series_list = list(windows.values()) if isinstance(windows, Mapping) else [windows]
    series_list = [list(series) for series in series_list if len(series)]
    total = sum(len(series) for series in series_list)
    if total < MIN_WINDOWS:
        raise ProfilerError(f"training the workload model needs at least {MIN_WINDOWS} windows, got {total}")
    cut = [max(round(len(series) * TRAIN_SHARE), 1) for series in series_list]
    shares = [_shares(series) for series in series_list]
    rates = [_rates(series) for series in series_list]
    share_fit, rate_fit = _fit(shares, cut), _fit(rates, cut)
    residuals = [forecast - actual for forecast, actual in _errors(share_fit, shares, cut, "train")]
    share_error_sd = math.sqrt(sum(r * r for r in residuals) / len(residuals)) if residuals else _MIN_SHARE_SD
    metrics = {
        "model": _holdout(share_fit, rate_fit, shares, rates, cut),
        "persistence": _holdout(PERSISTENCE, PERSISTENCE, shares, rates, cut),
    }
    starts = [window.start_s for series in series_list for window in series]
    doc: dict[str, Any] = {
        "kind": KIND,
        "format": FORMAT,
        "version": None,
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "thresholds": {"prefill_heavy_at": PREFILL_HEAVY_AT, "decode_heavy_at": DECODE_HEAVY_AT},
        "forecaster": {
            "method": "holt-damped-trend",
            "share": share_fit.to_json(),
            "rate": rate_fit.to_json(),
            "share_error_sd": max(share_error_sd, _MIN_SHARE_SD),
        },
        "trained_on": {
            "series": len(series_list),
            "windows": total,
            "train_windows": sum(cut),
            "start_s": min(starts),
            "end_s": max(window.end_s for series in series_list for window in series),
        },
        "metrics": metrics,
    }
    return doc, WorkloadReport(metrics=metrics, train_windows=sum(cut), test_windows=total - sum(cut))
