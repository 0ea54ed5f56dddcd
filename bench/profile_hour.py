"""Profiling one hour of traffic: phase costs, 5-minute windows and the overall profile of Azure conv.

    python bench/profile_hour.py [--json] [--results-dir DIR]      (or python -m bench.profile_hour)

The records are read once (reading is the trace readers' cost, reported apart as ``read_s``); the
profile - a phase cost per request, the twelve 5-minute windows and the overall profile - is timed as
the best of several runs, each with a fresh cost model so no cached decode batch carries over.
Cost: linear in requests, plus a sort (n log n) for the windows; the perf model is called once per
distinct (prompt, output) pair and once per 64-token context bucket.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_json_flag, emit
from profiler.features import PhaseCostModel, overall_profile, window_profiles
from profiler.traces import read_trace

ROOT = Path(__file__).resolve().parent.parent
CONV = ROOT / "data" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
RUNS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(parser)
    args = parser.parse_args()

    started = time.perf_counter()
    records = list(read_trace(CONV, "azure"))
    read_s = time.perf_counter() - started

    best_s = float("inf")
    windows, overall = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        cost_model = PhaseCostModel.for_service("llama-3.1-8b", 0.1)
        windows = window_profiles(records, cost_model, 300.0)
        overall = overall_profile(records, cost_model)
        best_s = min(best_s, time.perf_counter() - started)
    assert overall is not None
    span_s = overall.end_s - overall.start_s

    result = {
        "profile_hour_s": best_s,
        "records_per_s": len(records) / best_s,
        "records": len(records),
        "trace_span_s": span_s,
        "windows": len(windows),
        "read_s": read_s,
        "overall_class": overall.workload_class,
        "overall_prefill_share": overall.prefill_share,
    }
    table = [
        {
            "window": f"{w.start_s:.0f}-{w.end_s:.0f}",
            "requests": w.request_count,
            "rate_rps": w.arrival_rate_rps,
            "prefill_share": w.prefill_share,
            "class": w.workload_class,
        }
        for w in windows
    ]
    emit("profile_hour", result, table, as_json=args.json, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
