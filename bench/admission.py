"""The admission classifier on Azure code + conv: macro-F1 against its baselines, calibration, decision time.

    python bench/admission.py [--json] [--results-dir DIR]      (or python -m bench.admission)

Labels each request of both Azure traces with its phase-cost class (Llama-3.1-8B, H100, TPOT 100 ms),
merges them (service = the file), trains on the earliest 70% by arrival and scores the later 30%
against the majority class and the best prompt-length thresholds. ``decision_us`` is the mean time of
one pure-Python decision (``AdmissionModel.predict``, what the router runs) over every test row,
repeated. Cost: training is O(n log n) in requests (about a second for 28k); a decision is O(depth).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_json_flag, emit
from profiler.features import PhaseCostModel
from profiler.models import AdmissionModel, train_admission
from profiler.traces import TraceRecord, read_trace

ROOT = Path(__file__).resolve().parent.parent
AZURE = ROOT / "data" / "traces" / "azure_llm_2023"
REPETITIONS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_flag(parser)
    args = parser.parse_args()

    services: dict[int, str] = {}
    records: list[TraceRecord] = []
    for name in ("code", "conv"):
        for record in read_trace(AZURE / f"AzureLLMInferenceTrace_{name}.csv", "azure"):
            services[id(record)] = name
            records.append(record)
    cost_model = PhaseCostModel.for_service("llama-3.1-8b", 0.1)

    started = time.perf_counter()
    doc, report = train_admission(records, cost_model, service_of=lambda record: services[id(record)])
    train_s = time.perf_counter() - started

    model = AdmissionModel.from_json(doc)
    rows = report.test.inputs
    predict = model.predict
    started = time.perf_counter()
    for _ in range(REPETITIONS):
        for inputs in rows:
            predict(inputs)
    decision_us = (time.perf_counter() - started) / (REPETITIONS * len(rows)) * 1e6

    metrics = report.metrics
    majority = metrics["baselines"]["majority"]
    threshold = metrics["baselines"]["prompt_threshold"]
    result = {
        "decision_us": decision_us,
        "macro_f1": metrics["macro_f1"],
        "baseline_macro_f1": metrics["baseline_macro_f1"],
        "majority_macro_f1": majority["macro_f1"],
        "threshold_macro_f1": threshold["macro_f1"],
        "accuracy": metrics["accuracy"],
        "brier": metrics["brier"],
        "ece": metrics["ece"],
        "majority_brier": majority["brier"],
        "threshold_brier": threshold["brier"],
        "threshold_ece": threshold["ece"],
        "train_s": train_s,
        "train_rows": metrics["train_rows"],
        "test_rows": metrics["holdout"]["rows"],
        "tree_nodes": model.node_count,
        "max_depth": doc["tree"]["max_depth"],
    }
    table = [
        {"classifier": "decision tree", **{k: metrics[k] for k in ("macro_f1", "accuracy", "brier", "ece")}},
        {
            "classifier": "majority class",
            **{k: majority[k] for k in ("macro_f1", "accuracy", "brier", "ece")},
        },
        {
            "classifier": "prompt thresholds",
            **{k: threshold[k] for k in ("macro_f1", "accuracy", "brier", "ece")},
        },
    ]
    emit("admission", result, table, as_json=args.json, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
