"""The admission classifier on Azure code + conv: better than its baselines, and exported exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from profiler.features import CLASSES, PhaseCostModel
from profiler.models import AdmissionModel, better_than, train_admission
from profiler.traces import read_trace

ROOT = Path(__file__).resolve().parents[2]
AZURE = ROOT / "data" / "traces" / "azure_llm_2023"


@pytest.fixture(scope="module")
def trained():
    services = {}
    records = []
    for name in ("code", "conv"):
        for record in read_trace(AZURE / f"AzureLLMInferenceTrace_{name}.csv", "azure"):
            services[id(record)] = name
            records.append(record)
    cost_model = PhaseCostModel.for_service("llama-3.1-8b", 0.1)
    doc, report = train_admission(records, cost_model, service_of=lambda r: services[id(r)])
    return json.loads(json.dumps(doc)), report


def test_it_beats_both_baselines_in_macro_f1_on_the_later_30_percent(trained):
    doc, report = trained
    metrics = report.metrics
    baselines = metrics["baselines"]
    assert metrics["macro_f1"] > baselines["majority"]["macro_f1"]
    assert metrics["macro_f1"] > baselines["prompt_threshold"]["macro_f1"]
    assert metrics["macro_f1"] > metrics["baseline_macro_f1"] + 0.1
    assert metrics["baseline_macro_f1"] == max(b["macro_f1"] for b in baselines.values())
    assert doc["metrics"] == metrics


def test_the_split_is_by_time(trained):
    _, report = trained
    assert report.train.arrivals.max() <= report.test.arrivals.min()
    assert len(report.train) == round(0.7 * (len(report.train) + len(report.test)))
    assert report.metrics["holdout"]["services"] == {"code": 2063, "conv": 6392}


def test_the_json_export_agrees_with_scikit_learn_on_every_test_row(trained):
    doc, report = trained
    model = AdmissionModel.from_json(doc)
    expected_class = report.estimator.predict(report.test_matrix)
    expected_proba = report.estimator.predict_proba(report.test_matrix)
    for row, inputs in enumerate(report.test.inputs):
        predicted, confidence = model.predict(inputs)
        assert predicted == CLASSES[expected_class[row]]
        assert confidence == expected_proba[row].max()
        assert list(model.predict_proba(inputs).values()) == expected_proba[row].tolist()


def test_it_reports_calibration_for_the_model_and_the_baselines(trained):
    _, report = trained
    for scored in (report.metrics, *report.metrics["baselines"].values()):
        assert 0.0 <= scored["brier"] <= 2.0
        assert 0.0 <= scored["ece"] <= 1.0
    assert report.metrics["brier"] < report.metrics["baselines"]["majority"]["brier"]


def test_the_export_is_plain_json_with_what_the_router_needs(trained):
    doc, _ = trained
    assert doc["kind"] == "admission"
    assert doc["classes"] == list(CLASSES)
    assert doc["categories"]["service"] == ["code", "conv"]
    assert "service=code" in doc["features"]
    assert doc["tree"]["max_depth"] <= 6
    assert doc["trained_on"]["rows"] + doc["metrics"]["holdout"]["rows"] == 8819 + 19366


def test_it_decides_in_under_20_microseconds(trained):
    doc, report = trained
    model = AdmissionModel.from_json(doc)
    rows = report.test.inputs
    started = time.perf_counter()
    for _ in range(5):
        for inputs in rows:
            model.predict(inputs)
    assert (time.perf_counter() - started) / (5 * len(rows)) < 20e-6


def test_missing_and_unknown_inputs_still_get_a_class(trained):
    model = AdmissionModel.from_json(trained[0])
    for inputs in (
        {},
        {"prompt_tokens": 500, "service": "never-seen", "client": None},
        {"max_tokens": 10**9},
    ):
        predicted, confidence = model.predict(inputs)
        assert predicted in CLASSES
        assert 0.0 < confidence <= 1.0


def test_retraining_is_deterministic_and_scores_the_active_model_on_the_same_hold_out(trained):
    doc, report = trained
    records = []
    names = {}
    for name in ("code", "conv"):
        for record in read_trace(AZURE / f"AzureLLMInferenceTrace_{name}.csv", "azure"):
            names[id(record)] = name
            records.append(record)
    cost_model = PhaseCostModel.for_service("llama-3.1-8b", 0.1)
    doc_again, again = train_admission(records, cost_model, service_of=lambda r: names[id(r)], active=doc)
    assert doc_again["tree"] == doc["tree"]
    assert again.active_metrics["holdout"] == again.metrics["holdout"]
    assert again.active_metrics["macro_f1"] == pytest.approx(report.metrics["macro_f1"])
    assert not better_than(again.metrics, again.active_metrics)  # same data, same tree: no better


def test_importing_the_models_does_not_load_scikit_learn():
    code = "import sys, profiler.models; assert 'sklearn' not in sys.modules, 'sklearn was imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
