"""The admission model's JSON: categorical inputs, and a clear error for every malformed document."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from profiler.features import CLASSES, PhaseCostModel
from profiler.models import AdmissionModel, ModelFormatError, train_admission
from profiler.models.admission import encode_inputs
from profiler.traces import TraceRecord


def synthetic_records(count: int = 3000, seed: int = 0) -> list[TraceRecord]:
    """Chat clients ask for long answers, batch clients for short ones; max_tokens tells them apart."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        chatty = rng.random() < 0.5
        max_tokens = int(rng.choice([800, 1000])) if chatty else int(rng.choice([16, 32]))
        records.append(
            TraceRecord(
                arrival_s=float(i),
                prompt_tokens=int(rng.integers(200, 3000)),
                output_tokens=int(rng.integers(max_tokens // 2, max_tokens + 1)),
                endpoint="/v1/chat/completions" if chatty else "/v1/completions",
                client="chat-app" if chatty else "batch-job",
                max_tokens=max_tokens if rng.random() < 0.9 else None,
                model="llama-3.1-8b",
            )
        )
    return records


@pytest.fixture(scope="module")
def doc():
    exported, _ = train_admission(synthetic_records(), PhaseCostModel.for_service("llama-3.1-8b", 0.1))
    return json.loads(json.dumps(exported))


def test_it_learns_from_max_tokens_and_labels(doc):
    model = AdmissionModel.from_json(doc)
    assert doc["categories"]["client"] == ["batch-job", "chat-app"]
    assert doc["categories"]["service"] == ["llama-3.1-8b"]
    assert model.metrics["macro_f1"] > model.metrics["baseline_macro_f1"]
    chat = {
        "prompt_tokens": 1000,
        "max_tokens": 1000,
        "endpoint": "/v1/chat/completions",
        "client": "chat-app",
    }
    assert model.predict(chat)[0] == "decode-heavy"


def test_encoding_gives_one_column_per_kept_category(doc):
    row = encode_inputs({"prompt_tokens": 10, "client": "chat-app"}, doc["categories"])
    assert len(row) == len(doc["features"])
    assert row[:3] == [10.0, -1.0, -1.0]  # max_tokens and hour_of_day missing
    assert row[doc["features"].index("client=chat-app")] == 1.0
    assert row[doc["features"].index("client=batch-job")] == 0.0


def broken(doc, change):
    bad = copy.deepcopy(doc)
    change(bad)
    return bad


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(kind="workload"), "field 'kind' must be 'admission', got 'workload'"),
        (lambda d: d.update(format=7), "field 'format' must be 1, got 7"),
        (lambda d: d.pop("tree"), "missing field 'tree'"),
        (lambda d: d.update(tree=[]), "field 'tree' must be an object, got list"),
        (lambda d: d.update(classes=["prefill-heavy", "tiny"]), "classes must be distinct names"),
        (lambda d: d["tree"]["left"].pop(), "tree: left has .* entries where feature has"),
        (lambda d: d["tree"]["left"].__setitem__(0, 10_000), r"tree.left\[0\] = 10000 is not a later node"),
        (lambda d: d["tree"]["left"].__setitem__(0, 0), r"tree.left\[0\] = 0 is not a later node"),
        (lambda d: d["tree"]["feature"].__setitem__(0, 99), r"tree.feature\[0\] = 99 is not a feature index"),
        (
            lambda d: d["tree"]["threshold"].__setitem__(0, "big"),
            r"tree.threshold\[0\] must be a finite number",
        ),
        (
            lambda d: d["tree"]["probabilities"].__setitem__(0, [1.0]),
            r"tree.probabilities\[0\] must be a list of 3",
        ),
        (lambda d: d["features"].append("colour=red"), "features .* do not match the inputs and categories"),
        (lambda d: d["categories"].update(colour=["red"]), r"categories has unknown inputs \['colour'\]"),
        (lambda d: d["categories"].update(client="chat-app"), "categories.client must be a list of strings"),
    ],
)
def test_a_malformed_model_names_what_is_wrong(doc, change, message):
    with pytest.raises(ModelFormatError, match=message):
        AdmissionModel.from_json(broken(doc, change))


@pytest.mark.parametrize("document", [None, [], "admission", 3])
def test_a_document_that_is_not_an_object_is_refused(document):
    with pytest.raises(ModelFormatError, match="expected a JSON object"):
        AdmissionModel.from_json(document)


def test_a_non_numeric_input_names_the_input(doc):
    model = AdmissionModel.from_json(doc)
    with pytest.raises(ModelFormatError, match="admission input 'prompt_tokens' must be a number"):
        model.predict({"prompt_tokens": "1200", "max_tokens": 800, "client": "chat-app"})


def test_too_few_records_to_train_is_a_clear_error():
    with pytest.raises(ValueError, match="needs at least 50 records, got 10"):
        train_admission(synthetic_records(10), PhaseCostModel.for_service("llama-3.1-8b", 0.1))
    with pytest.raises(ValueError, match="got 0"):
        train_admission([], PhaseCostModel.for_service("llama-3.1-8b", 0.1))


def test_a_service_without_a_cost_model_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"no cost model for service 'llama-3.1-8b'; services with one: other"
    ):
        train_admission(synthetic_records(100), {"other": PhaseCostModel.for_service("llama-3.1-8b", 0.1)})


def test_probabilities_cover_the_trained_classes(doc):
    model = AdmissionModel.from_json(doc)
    proba = model.predict_proba({"prompt_tokens": 100})
    assert set(proba) == set(model.classes) <= set(CLASSES)
    assert sum(proba.values()) == pytest.approx(1.0)
