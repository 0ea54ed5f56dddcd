"""The profiler on the command line, without a database.

    python -m profiler classify TRACE --format azure --model llama-3.1-8b [--tpot 0.1] [--tier T]
                                [--tp N] [--window 300] [--json]
    python -m profiler train admission TRACE [TRACE ...] --format F --model M [--store DIR] [--json]
    python -m profiler train workload TRACE [TRACE ...] --format F --model M [--window 60] [--store DIR] [--json]

``classify`` prints each window's class (with its confidence and class mix) and the trace's overall
class. ``train`` fits a model on the traces (each file is one service, named by its file name without
the extension), prints its hold-out scores against the baselines, and with ``--store`` saves it as
the next version in a model store. Bad input exits with status 2 and a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from profiler.errors import ProfilerError
from profiler.features import (
    CLASSES,
    DEFAULT_TIER,
    DEFAULT_WINDOW_S,
    PhaseCostModel,
    WindowProfile,
    overall_profile,
    window_profiles,
)
from profiler.traces import FORMATS, TraceRecord, read_trace

DEFAULT_TPOT_S = 0.1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m profiler", description="Cleave's traffic profiler.")
    commands = parser.add_subparsers(dest="command", required=True)

    def service_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--format", required=True, choices=FORMATS, help="the trace format")
        sub.add_argument("--model", required=True, help="the service's model, a catalog name")
        sub.add_argument("--tpot", type=float, default=DEFAULT_TPOT_S, help="TPOT target in seconds (0.1)")
        sub.add_argument("--tier", default=DEFAULT_TIER, help=f"reference GPU tier ({DEFAULT_TIER})")
        sub.add_argument("--tp", type=int, default=None, help="TP degree (default: smallest that fits)")
        sub.add_argument("--dtype", default="bf16", help="weight dtype (bf16)")
        sub.add_argument("--json", action="store_true", help="print one JSON object")

    classify = commands.add_parser("classify", help="classify a trace's windows and the whole trace")
    classify.add_argument("trace", type=Path)
    service_flags(classify)
    classify.add_argument("--window", type=float, default=DEFAULT_WINDOW_S, help="window length in seconds")

    train = commands.add_parser("train", help="train a model on traces")
    kinds = train.add_subparsers(dest="kind", required=True)
    for kind, default_window in (("admission", None), ("workload", 60.0)):
        sub = kinds.add_parser(kind, help=f"train the {kind} model")
        sub.add_argument("traces", type=Path, nargs="+", help="trace files, one service each")
        service_flags(sub)
        sub.add_argument("--store", type=Path, default=None, help="save the model in this model store")
        if default_window is not None:
            sub.add_argument("--window", type=float, default=default_window, help="window length in seconds")
    return parser


def _cost_model(args: argparse.Namespace) -> PhaseCostModel:
    return PhaseCostModel.for_service(args.model, args.tpot, tier=args.tier, tp=args.tp, dtype=args.dtype)


def _mix(profile: WindowProfile) -> str:
    if not profile.class_mix:
        return "-"
    return " ".join(f"{profile.class_mix[name]:.0%}" for name in CLASSES)


def _classify(args: argparse.Namespace) -> dict[str, Any]:
    from profiler.models.workload import classify_window

    cost_model = _cost_model(args)
    records = list(read_trace(args.trace, args.format))
    windows = window_profiles(records, cost_model, args.window)
    overall = overall_profile(records, cost_model)
    rows = []
    for window in windows:
        window_class, confidence = classify_window(window)
        rows.append({**window.to_dict(), "confidence": confidence if window_class else None})
    result = {
        "trace": str(args.trace),
        "cost_model": cost_model.describe(),
        "window_s": args.window,
        "windows": rows,
        "overall": overall.to_dict(),
    }
    if args.json:
        return result
    print(f"{args.trace.name}: {cost_model.describe()}")
    print(
        f"{'window (s)':>13}  {'requests':>8}  {'req/s':>6}  {'prefill':>7}  {'class':<13}  {'conf':>4}  mix P/B/D"
    )
    for window, row in zip(windows, rows, strict=True):
        share = "-" if window.prefill_share is None else f"{window.prefill_share:.2f}"
        rate = "-" if window.arrival_rate_rps is None else f"{window.arrival_rate_rps:.2f}"
        confidence_text = "-" if row["confidence"] is None else f"{row['confidence']:.2f}"
        print(
            f"{window.start_s:>6.0f}-{window.end_s:<6.0f}  {window.request_count:>8}  {rate:>6}  {share:>7}  "
            f"{window.workload_class or '-':<13}  {confidence_text:>4}  {_mix(window)}"
        )
    mix = ", ".join(f"{name} {overall.class_mix[name]:.1%}" for name in CLASSES)
    print(
        f"overall: {overall.workload_class} (prefill share {overall.prefill_share:.3f} of GPU time, "
        f"{overall.request_count} requests); request mix: {mix}"
    )
    return result


def _read_services(args: argparse.Namespace) -> dict[str, list[TraceRecord]]:
    services: dict[str, list[TraceRecord]] = {}
    for path in args.traces:
        services.setdefault(path.stem, []).extend(read_trace(path, args.format))
    return services


def _train(args: argparse.Namespace) -> dict[str, Any]:
    from profiler.models.store import ModelStore

    cost_model = _cost_model(args)
    services = _read_services(args)
    if args.kind == "admission":
        from profiler.models.training import train_admission

        service_of = {id(record): name for name, records in services.items() for record in records}
        everything = [record for records in services.values() for record in records]
        doc, report = train_admission(
            everything, cost_model, service_of=lambda record: service_of[id(record)]
        )
        summary: dict[str, Any] = {"metrics": report.metrics, "hyperparameters": report.hyperparameters}
    else:
        from profiler.models.workload import train_workload

        windows = {
            name: window_profiles(records, cost_model, args.window) for name, records in services.items()
        }
        doc, workload_report = train_workload(windows)
        summary = {"metrics": workload_report.metrics}
    version = ModelStore(args.store).save(doc) if args.store is not None else None
    result = {"kind": args.kind, "version": version, **summary}
    if not args.json:
        print(json.dumps(result, indent=2))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        result = _classify(args) if args.command == "classify" else _train(args)
    except ProfilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
