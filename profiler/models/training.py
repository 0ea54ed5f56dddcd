"""Training the admission model on completed requests, against baselines, and exporting it as JSON.

Requests are labelled and split by time in ``profiler.models.dataset``; the tree's depth and class
weighting are chosen on a validation split of the training part; the two baselines
(``profiler.models.baselines``) are fitted on the same training part and scored on the same test part.

scikit-learn is imported inside ``train_admission`` only: importing this module (as the control plane
and ``profiler.models`` do) does not load it.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from profiler.errors import ProfilerError
from profiler.features import (
    CLASSES,
    DECODE_HEAVY_AT,
    PREFILL_HEAVY_AT,
    PhaseCostModel,
)
from profiler.models import metrics
from profiler.models.admission import (
    CATEGORICAL_INPUTS,
    INPUTS,
    KIND,
    AdmissionModel,
    encode_inputs,
    feature_names,
)
from profiler.models.baselines import ThresholdBaseline
from profiler.models.dataset import (
    LabelledRequests,
    ServiceOf,
    default_service,
    label_requests,
    time_split,
)
from profiler.models.schema import FORMAT

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MIN_ROWS = 50
# A label becomes a one-hot column only when this many training rows carry it, and an input keeps at
# most MAX_CATEGORIES labels: a rare client must not grow the tree a branch of its own.
MIN_CATEGORY_ROWS = 20
MAX_CATEGORIES = 32
MIN_SAMPLES_LEAF = 20
# Chosen per training run on a validation split of the training part (its latest 20% by arrival).
DEPTHS = (4, 5, 6)
CLASS_WEIGHTS: tuple[str | None, ...] = (None, "balanced")


@dataclass(frozen=True, eq=False)
class AdmissionReport:
    """What a training run found: the model's and baselines' hold-out scores, and what to check them with.

    ``estimator`` is the fitted scikit-learn tree and ``test_matrix`` the encoded test rows, so a caller
    can compare the exported JSON with scikit-learn on every test row; ``active_metrics`` scores the
    model that was active, on the same hold-out, when one was given.
    """

    metrics: dict[str, Any]
    active_metrics: dict[str, Any] | None
    hyperparameters: dict[str, Any]
    validation: list[dict[str, Any]]
    train: LabelledRequests
    test: LabelledRequests
    test_matrix: FloatArray
    estimator: Any


def train_admission(
    records: Iterable[Any],
    cost_model: PhaseCostModel | Mapping[str, PhaseCostModel],
    *,
    service_of: ServiceOf = default_service,
    clock_origin_s: float = 0.0,
    seed: int = 0,
    active: AdmissionModel | Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
) -> tuple[dict[str, Any], AdmissionReport]:
    """Train the admission tree on completed requests; return its JSON export and the training report.

    ``service_of`` names each record's service (default: its ``model``); ``cost_model`` labels every
    record, or maps each service to its own; ``clock_origin_s`` is the Unix time of arrival 0, for the
    hour-of-day input. The export is checked against scikit-learn on every test row before it is returned (a mismatch
    raises ProfilerError). ``active`` (the model in use) is scored on the same hold-out for the
    activation policy: ``better_than(report.metrics, report.active_metrics)``.
    """
    from sklearn.tree import DecisionTreeClassifier

    requests = label_requests(records, cost_model, service_of=service_of, clock_origin_s=clock_origin_s)
    if len(requests) < MIN_ROWS:
        raise ProfilerError(
            f"training the admission model needs at least {MIN_ROWS} records, got {len(requests)}"
        )
    train, test = time_split(requests)
    categories = _categories(train.inputs)
    train_matrix = _matrix(train.inputs, categories)
    test_matrix = _matrix(test.inputs, categories)
    hyperparameters, validation = _choose_hyperparameters(train, categories, seed)
    estimator = DecisionTreeClassifier(
        max_depth=hyperparameters["max_depth"],
        class_weight=hyperparameters["class_weight"],
        min_samples_leaf=MIN_SAMPLES_LEAF,
        random_state=seed,
    ).fit(train_matrix, train.labels)

    doc = _export(estimator, categories, hyperparameters, train, created_at or datetime.now(UTC))
    model = AdmissionModel.from_json(doc)
    _check_export(model, estimator, test, test_matrix)
    doc["metrics"] = _metrics(model, train, test)
    active_metrics = None
    if active is not None:
        active_model = active if isinstance(active, AdmissionModel) else AdmissionModel.from_json(active)
        active_metrics = score_admission(active_model, test)
    report = AdmissionReport(
        metrics=doc["metrics"],
        active_metrics=active_metrics,
        hyperparameters=hyperparameters,
        validation=validation,
        train=train,
        test=test,
        test_matrix=test_matrix,
        estimator=estimator,
    )
    return doc, report


def score_admission(model: AdmissionModel, requests: LabelledRequests) -> dict[str, Any]:
    """A model's macro-F1, accuracy and calibration on labelled requests, with the pure-Python evaluator."""
    probabilities = np.zeros((len(requests), len(CLASSES)))
    columns = [CLASSES.index(name) for name in model.classes]
    for row, inputs in enumerate(requests.inputs):
        probabilities[row, columns] = list(model.predict_proba(inputs).values())
    predicted = np.asarray(
        [CLASSES.index(model.predict(inputs)[0]) for inputs in requests.inputs], dtype=np.int64
    )
    return {**metrics.scores(requests.labels, probabilities, predicted), "holdout": requests.describe()}


def evaluate_admission(
    model: AdmissionModel | Mapping[str, Any],
    records: Iterable[Any],
    cost_model: PhaseCostModel | Mapping[str, PhaseCostModel],
    *,
    service_of: ServiceOf = default_service,
    clock_origin_s: float = 0.0,
) -> dict[str, Any]:
    """Score a stored model on these records (labelled by the cost model), as ``score_admission``."""
    loaded = model if isinstance(model, AdmissionModel) else AdmissionModel.from_json(model)
    requests = label_requests(records, cost_model, service_of=service_of, clock_origin_s=clock_origin_s)
    return score_admission(loaded, requests)


def _categories(inputs: Sequence[Mapping[str, object]]) -> dict[str, list[str]]:
    kept: dict[str, list[str]] = {}
    for name in CATEGORICAL_INPUTS:
        counts = Counter(label for row in inputs if isinstance(label := row.get(name), str))
        frequent = sorted(
            (label for label, n in counts.items() if n >= MIN_CATEGORY_ROWS), key=lambda s: (-counts[s], s)
        )
        kept[name] = sorted(frequent[:MAX_CATEGORIES])
    return kept


def _matrix(inputs: Sequence[Mapping[str, object]], categories: Mapping[str, Sequence[str]]) -> FloatArray:
    width = len(feature_names(categories))
    if not inputs:
        return np.zeros((0, width))
    return np.asarray([encode_inputs(row, categories) for row in inputs], dtype=np.float64)


def _choose_hyperparameters(
    train: LabelledRequests, categories: Mapping[str, Sequence[str]], seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from sklearn.tree import DecisionTreeClassifier

    fit_part, validation_part = time_split(train, 0.8)
    fallback = {"max_depth": max(DEPTHS), "class_weight": "balanced", "min_samples_leaf": MIN_SAMPLES_LEAF}
    if len(validation_part) < MIN_ROWS or len(set(fit_part.labels.tolist())) < 2:
        return fallback, []
    fit_matrix = _matrix(fit_part.inputs, categories)
    validation_matrix = _matrix(validation_part.inputs, categories)
    tried: list[dict[str, Any]] = []
    for depth, weight in itertools.product(DEPTHS, CLASS_WEIGHTS):
        tree = DecisionTreeClassifier(
            max_depth=depth, class_weight=weight, min_samples_leaf=MIN_SAMPLES_LEAF, random_state=seed
        ).fit(fit_matrix, fit_part.labels)
        predicted = tree.predict(validation_matrix).astype(np.int64)
        tried.append(
            {
                "max_depth": depth,
                "class_weight": weight,
                "min_samples_leaf": MIN_SAMPLES_LEAF,
                "validation_macro_f1": metrics.macro_f1(validation_part.labels, predicted),
            }
        )
    # Ties go to the shallower tree, listed first.
    best = max(tried, key=lambda row: row["validation_macro_f1"])
    return {key: best[key] for key in fallback}, tried


def _export(
    estimator: Any,
    categories: Mapping[str, Sequence[str]],
    hyperparameters: Mapping[str, Any],
    train: LabelledRequests,
    created_at: datetime,
) -> dict[str, Any]:
    tree = estimator.tree_
    left = [int(child) for child in tree.children_left]
    # scikit-learn keeps each node's class fractions in tree_.value, and predict_proba returns the leaf's
    # row as it is: exported unchanged, the evaluator gives the very same numbers.
    probabilities = tree.value[:, 0, :]
    return {
        "kind": KIND,
        "format": FORMAT,
        "version": None,
        "created_at": created_at.isoformat(),
        "inputs": list(INPUTS),
        "features": feature_names(categories),
        "categories": {name: list(labels) for name, labels in categories.items()},
        "classes": [CLASSES[int(label)] for label in estimator.classes_],
        "tree": {
            "max_depth": int(tree.max_depth),
            "feature": [int(f) if child >= 0 else -1 for f, child in zip(tree.feature, left, strict=True)],
            "threshold": [
                float(t) if child >= 0 else 0.0 for t, child in zip(tree.threshold, left, strict=True)
            ],
            "left": left,
            "right": [int(child) for child in tree.children_right],
            "probabilities": probabilities.tolist(),
        },
        "hyperparameters": dict(hyperparameters),
        "labels": {
            "measure": "share of the request's GPU time in prefill under the perf model",
            "prefill_heavy_at": PREFILL_HEAVY_AT,
            "decode_heavy_at": DECODE_HEAVY_AT,
        },
        "trained_on": train.describe(),
    }


def _check_export(
    model: AdmissionModel, estimator: Any, test: LabelledRequests, test_matrix: FloatArray
) -> None:
    if not len(test):
        return
    expected = estimator.predict_proba(test_matrix)
    for row, inputs in enumerate(test.inputs):
        got = list(model.predict_proba(inputs).values())
        if got != expected[row].tolist():
            raise ProfilerError(
                f"the exported admission tree disagrees with scikit-learn on test row {row}: {got} != {expected[row].tolist()}"
            )


def _metrics(model: AdmissionModel, train: LabelledRequests, test: LabelledRequests) -> dict[str, Any]:
    scored = score_admission(model, test)
    frequencies = np.bincount(train.labels, minlength=len(CLASSES)).astype(np.float64) / len(train)
    majority = int(np.argmax(frequencies))
    majority_scores = metrics.scores(
        test.labels,
        np.tile(frequencies, (len(test), 1)),
        np.full(len(test), majority, dtype=np.int64),
    )
    threshold = ThresholdBaseline.fit(train.prompt_tokens(), train.labels)
    test_prompts = test.prompt_tokens()
    threshold_scores = metrics.scores(
        test.labels, threshold.predict_proba(test_prompts), threshold.predict(test_prompts)
    )
    baselines = {
        "majority": {**majority_scores, "class": CLASSES[majority]},
        "prompt_threshold": {
            **threshold_scores,
            # a range left empty has the threshold -inf, which JSON cannot hold: null
            "thresholds": [t if math.isfinite(t) else None for t in (threshold.low, threshold.high)],
            "range_classes": [CLASSES[label] for label in threshold.range_classes],
        },
    }
    return {
        **scored,
        "baseline_macro_f1": max(majority_scores["macro_f1"], threshold_scores["macro_f1"]),
        "baselines": baselines,
        "test_class_mix": {
            name: float(np.mean(test.labels == index)) if len(test) else 0.0
            for index, name in enumerate(CLASSES)
        },
        "train_rows": len(train),
    }
