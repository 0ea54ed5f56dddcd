"""Fit the perf model's efficiency factors to the published reference points, and show how well they hold.

    python bench/calibrate_perfmodel.py [--json] [--results-dir DIR]      (or python -m bench.calibrate_perfmodel)

Reads data/reference/gpu_points.csv, fits the Efficiency factors of each (tier, engine) with
scipy.optimize.least_squares on log(predicted/measured) latency, then the power shape on
data/reference/gpu_power_points.csv; prints every reference point (measured, predicted, error), the
excluded points and why, the errors per group, the errors of the factors committed in
profiler/perfmodel.py (the ones the tests hold), and the fitted factors as Python to paste there.

Cost: linear in points x optimizer steps x starts; 288 points, 3 groups, 10 starts: about 2 s.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from scipy.optimize import least_squares

from bench.common import add_json_flag, emit, format_table
from profiler import catalog
from profiler.calibration import (
    Evaluated,
    PowerPrediction,
    ReferencePoint,
    calibration_points,
    error_summary,
    evaluate,
    evaluate_power,
    load_power_points,
    load_reference_points,
    power_errors,
)
from profiler.perfmodel import (
    ALLREDUCE_SWITCH_BYTES,
    POWER_SHAPE,
    Efficiency,
    PowerShape,
    default_efficiency,
)

NAME = "calibrate_perfmodel"

# (field, lower, upper, scale): bounds keep each factor physical; MBU and MFU stop short of the
# hardware peak that no engine reaches. Scales bring every parameter near 1 for the optimizer.
FACTORS: tuple[tuple[str, float, float, float], ...] = (
    ("mfu", 0.05, 0.85, 1.0),
    ("mbu", 0.05, 0.90, 1.0),
    ("prefill_overhead_s", 0.0, 0.2, 0.01),
    ("decode_overhead_s", 0.0, 0.2, 0.01),
    ("decode_seq_overhead_s", 0.0, 2e-3, 1e-4),
    ("allreduce_latency_s", 0.0, 5e-4, 1e-5),
    ("comm_efficiency", 0.02, 1.0, 1.0),
    ("large_comm_efficiency", 0.02, 1.0, 1.0),
    ("attention_efficiency", 0.02, 1.0, 1.0),
)
STARTS = 10
SEED = 0


def _reaches_switch(point: ReferencePoint) -> bool:
    tokens = point.batch * (point.prompt_tokens or 0) if point.phase == "prefill" else point.batch
    return point.tp > 1 and tokens * catalog.model(point.model).hidden_size * 2 >= ALLREDUCE_SWITCH_BYTES


def fit_group(points: Sequence[ReferencePoint], group: tuple[str, str]) -> Efficiency:
    """The factors that minimize the sum of the fourth powers of log(predicted/measured) over the points.

    Fourth powers rather than squares weigh the worst points more, since the calibration is held to
    its worst point as well as its median. A group whose passes never reach the all-reduce switch size
    keeps one all-reduce efficiency.
    """
    names = [name for name, *_ in FACTORS]
    if not any(_reaches_switch(p) for p in points):
        names.remove("large_comm_efficiency")
    spec = {name: (low, high, scale) for name, low, high, scale in FACTORS}
    lower = np.array([spec[n][0] / spec[n][2] for n in names])
    upper = np.array([spec[n][1] / spec[n][2] for n in names])
    scales = np.array([spec[n][2] for n in names])

    def efficiency(x: np.ndarray) -> Efficiency:
        return Efficiency(**{name: float(value) for name, value in zip(names, x * scales, strict=True)})

    def residuals(x: np.ndarray) -> np.ndarray:
        evaluated = evaluate(points, {group: efficiency(x)})
        errors = np.array([math.log(item.predicted_ms / item.point.latency_ms) for item in evaluated])
        weighted: np.ndarray = errors * np.abs(errors)
        return weighted

    rng = np.random.default_rng(SEED)
    best: Any = None
    for _ in range(STARTS):
        start = lower + (upper - lower) * rng.uniform(0.05, 0.6, len(names))
        result = least_squares(residuals, start, bounds=(lower, upper), x_scale="jac")
        if best is None or result.cost < best.cost:
            best = result
    return _rounded(efficiency(best.x))


def _rounded(efficiency: Efficiency) -> Efficiency:
    """Three significant digits: what the committed table holds."""
    values = {
        item.name: float(f"{getattr(efficiency, item.name):.3g}")
        for item in fields(efficiency)
        if getattr(efficiency, item.name) is not None
    }
    return Efficiency(**values)


def fit_power(efficiencies: dict[tuple[str, str], Efficiency]) -> PowerShape:
    """The power shape that minimizes the squared relative error of peak and average power."""
    points = load_power_points()
    efficiency = efficiencies[("A100-SXM-80GB", "vllm")]

    def residuals(x: np.ndarray) -> np.ndarray:
        shape = PowerShape(waiting=float(x[0]), prefill=float(x[1]), decode=float(x[2]))
        return np.array(power_errors(evaluate_power(points, efficiency, shape)))

    result = least_squares(residuals, np.array([0.3, 1.0, 0.8]), bounds=([0.0, 0.2, 0.2], [1.0, 3.0, 3.0]))
    return PowerShape(*(float(f"{value:.3g}") for value in result.x))


def _tokens(point: ReferencePoint) -> str:
    return (
        f"{point.batch}x{point.prompt_tokens}" if point.phase == "prefill" else f"ctx {point.context_tokens}"
    )


def point_rows(evaluated: Sequence[Evaluated], excluded: dict[int, str]) -> list[dict[str, Any]]:
    """One table row per reference point."""
    return [
        {
            "source": item.point.source,
            "model": item.point.model,
            "gpu": item.point.gpu,
            "tp": item.point.tp,
            "phase": item.point.phase,
            "batch": item.point.batch,
            "tokens": _tokens(item.point),
            "measured_ms": round(item.point.latency_ms, 2),
            "predicted_ms": round(item.predicted_ms, 2),
            "error": f"{item.error:+.1%}",
            "note": f"EXCLUDED: {excluded[item.point.line]}" if item.point.line in excluded else "",
        }
        for item in evaluated
    ]


def power_rows(predictions: Sequence[PowerPrediction]) -> list[dict[str, Any]]:
    """One table row per power point: measured and predicted peak and average, as fractions of TDP."""
    return [
        {
            "model": item.point.model,
            "gpu": item.point.gpu,
            "tp": item.point.tp,
            "batch": item.point.batch,
            "prompt": item.point.prompt_tokens,
            "peak": item.point.peak_power_frac,
            "predicted_peak": round(item.peak_frac, 3),
            "average": item.point.average_power_frac,
            "predicted_average": round(item.average_frac, 3),
            "note": f"average EXCLUDED: {item.average_excluded}" if item.average_excluded else "",
        }
        for item in predictions
    ]


def python_table(efficiencies: dict[tuple[str, str], Efficiency], shape: PowerShape) -> str:
    """The fitted factors as the Python to paste into profiler/perfmodel.py."""
    lines = ["_CALIBRATED: dict[tuple[str, str], Efficiency] = {"]
    for (gpu, engine), efficiency in sorted(
        efficiencies.items(), key=lambda item: (item[0][1] != "vllm", item[0])
    ):
        arguments = ", ".join(
            f"{item.name}={getattr(efficiency, item.name)!r}"
            for item in fields(efficiency)
            if getattr(efficiency, item.name) is not None
        )
        lines.append(f'    ("{gpu}", "{engine}"): Efficiency({arguments}),')
    lines.append("}")
    lines.append(
        f"POWER_SHAPE = PowerShape(waiting={shape.waiting!r}, prefill={shape.prefill!r}, decode={shape.decode!r})"
    )
    return "\n".join(lines)


def _summary(label: str, evaluated: Sequence[Evaluated]) -> dict[str, Any]:
    summary = error_summary(evaluated)
    return {
        "points": label,
        "n": int(summary["points"]),
        "median_abs_error": f"{summary['median_abs_error']:.1%}",
        "max_abs_error": f"{summary['max_abs_error']:.1%}",
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit, print the table (or the JSON result), and return the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    all_points = load_reference_points()
    used, exclusions = calibration_points(all_points)
    excluded = {item.point.line: item.reason for item in exclusions}
    groups = sorted({point.group for point in used})
    fitted = {group: fit_group([p for p in used if p.group == group], group) for group in groups}
    shape = fit_power(fitted)
    fit_s = time.perf_counter() - started

    evaluated_fit = evaluate(all_points, fitted)
    used_fit = [item for item in evaluated_fit if item.point.line not in excluded]
    used_committed = [item for item in evaluate(all_points) if item.point.line not in excluded]
    summary_rows = [
        _summary(f"fitted {gpu} {engine}", [i for i in used_fit if i.point.group == (gpu, engine)])
        for gpu, engine in groups
    ]
    summary_rows.append(_summary("fitted, all used points", used_fit))
    summary_rows.append(_summary("committed defaults (tests)", used_committed))
    summary_rows.append(
        _summary("fitted, excluded points", [i for i in evaluated_fit if i.point.line in excluded])
    )

    power_points = load_power_points()
    power_predictions = evaluate_power(power_points, fitted[("A100-SXM-80GB", "vllm")], shape)
    fitted_power = [abs(e) for e in power_errors(power_predictions)]
    committed_power = [
        abs(e)
        for e in power_errors(evaluate_power(power_points, default_efficiency("A100-SXM-80GB"), POWER_SHAPE))
    ]

    if not args.json:
        print(format_table(point_rows(evaluated_fit, excluded)))
        print(f"\n{len(exclusions)} excluded:")
        for item in exclusions:
            print(f"  line {item.point.line}: {item.point.describe()}: {item.reason}")
        print()
        print(format_table(summary_rows))
        print()
        print(format_table(power_rows(power_predictions)))
        print(
            f"\npower (peak and average, A100): fitted median {statistics.median(fitted_power):.1%} "
            f"max {max(fitted_power):.1%}; committed median {statistics.median(committed_power):.1%} "
            f"max {max(committed_power):.1%}"
        )
        print("\nfitted factors, for profiler/perfmodel.py:\n")
        print(python_table(fitted, shape))
        print()

    fitted_summary = error_summary(used_fit)
    committed_summary = error_summary(used_committed)
    metrics = {
        "median_abs_error": fitted_summary["median_abs_error"],
        "max_abs_error": fitted_summary["max_abs_error"],
        "points": len(used_fit),
        "excluded": len(exclusions),
        "committed_median_abs_error": committed_summary["median_abs_error"],
        "committed_max_abs_error": committed_summary["max_abs_error"],
        "power_median_abs_error": statistics.median(fitted_power),
        "power_max_abs_error": max(fitted_power),
        "fit_s": round(fit_s, 2),
        "factors": {f"{gpu}/{engine}": _as_dict(eff) for (gpu, engine), eff in fitted.items()},
        "power_shape": {"waiting": shape.waiting, "prefill": shape.prefill, "decode": shape.decode},
    }
    return emit(NAME, metrics, None, args.json, args.results_dir)


def _as_dict(efficiency: Efficiency) -> dict[str, float | None]:
    return {item.name: getattr(efficiency, item.name) for item in fields(efficiency)}


if __name__ == "__main__":
    main()
