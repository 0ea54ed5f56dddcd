"""The admission model's evaluator: a request's class from what is known when it arrives, in pure Python.

The router decides every request it admits with this module, which imports neither scikit-learn nor
numpy: a decision is a walk down a small tree of plain lists (about a microsecond). (The package's
``__init__`` loads numpy for the workload model; nothing under ``profiler.models`` loads scikit-learn
until ``train_admission`` runs.) Training lives in
``profiler.models.training``; both sides encode inputs with ``encode_inputs`` here, so the tree sees
the same numbers in training and in the router.

Inputs (a Mapping, keys as in INPUTS):
  prompt_tokens, max_tokens, hour_of_day: integers; missing (absent or None) is MISSING (-1).
  endpoint, service, client: labels, one-hot encoded over the categories kept in training; a label
  not kept (rare, new, or None) sets none of its columns.
Numbers are clipped to NUMERIC_CAP, so every encoded value is an integer that float32 holds exactly:
scikit-learn compares in float32, and this evaluator in float64, and on such values the two agree.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from profiler.models.schema import (
    ModelFormatError,
    field,
    header,
    integer,
    number,
    same_length,
    string_list,
)

KIND = "admission"
NUMERIC_INPUTS = ("prompt_tokens", "max_tokens", "hour_of_day")
CATEGORICAL_INPUTS = ("endpoint", "service", "client")
INPUTS = NUMERIC_INPUTS + CATEGORICAL_INPUTS
MISSING = -1
NUMERIC_CAP = 2**20
_KNOWN_CLASSES = ("prefill-heavy", "balanced", "decode-heavy")
_FAST_NUMBERS = (int, float)


class ArrivingRequest(Protocol):
    """What is known of a request when it arrives (TraceRecord has it)."""

    @property
    def arrival_s(self) -> float | None: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def endpoint(self) -> str | None: ...
    @property
    def client(self) -> str | None: ...


def hour_of_day(arrival_s: float | None, clock_origin_s: float = 0.0) -> int | None:
    """The UTC hour (0-23) of an arrival on a clock whose 0 is ``clock_origin_s`` Unix seconds."""
    if arrival_s is None:
        return None
    return int(((clock_origin_s + arrival_s) % 86400.0) // 3600.0)


def admission_inputs(
    request: ArrivingRequest, service: str | None, clock_origin_s: float = 0.0
) -> dict[str, object]:
    """The admission inputs of a request, as the router builds them at arrival."""
    return {
        "prompt_tokens": request.prompt_tokens,
        "max_tokens": request.max_tokens,
        "hour_of_day": hour_of_day(request.arrival_s, clock_origin_s),
        "endpoint": request.endpoint,
        "service": service,
        "client": request.client,
    }


def feature_names(categories: Mapping[str, Sequence[str]]) -> list[str]:
    """The encoded columns: the numeric inputs, then ``input=label`` per kept category."""
    names = list(NUMERIC_INPUTS)
    for name in CATEGORICAL_INPUTS:
        names.extend(f"{name}={label}" for label in categories.get(name, ()))
    return names


def _numeric(value: object, name: str) -> float:
    if value is None:
        return float(MISSING)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ModelFormatError(f"admission input {name!r} must be a number or None, got {value!r}")
    return float(min(float(value), NUMERIC_CAP))


def encode_inputs(inputs: Mapping[str, object], categories: Mapping[str, Sequence[str]]) -> list[float]:
    """The inputs as the tree's feature vector, in ``feature_names(categories)`` order."""
    row = [_numeric(inputs.get(name), name) for name in NUMERIC_INPUTS]
    for name in CATEGORICAL_INPUTS:
        label = inputs.get(name)
        row.extend(1.0 if label == kept else 0.0 for kept in categories.get(name, ()))
    return row


@dataclass(frozen=True)
class AdmissionModel:
    """A decision tree over encoded admission inputs, loaded from its JSON export."""

    doc: Mapping[str, Any]
    classes: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]]
    features: tuple[str, ...]
    # The tree as parallel lists: for node i, the input it reads, the label it compares against (None for
    # a number), its threshold and children (-1 at a leaf); at a leaf, its class and that class's probability.
    _input: tuple[str, ...]
    _label: tuple[str | None, ...]
    _threshold: tuple[float, ...]
    _left: tuple[int, ...]
    _right: tuple[int, ...]
    _probabilities: tuple[tuple[float, ...], ...]
    _leaf_class: tuple[str, ...]
    _leaf_confidence: tuple[float, ...]

    @property
    def version(self) -> str | None:
        """The version the model store gave it (None before it is stored)."""
        value = self.doc.get("version")
        return value if isinstance(value, str) else None

    @property
    def metrics(self) -> Mapping[str, Any]:
        """Its hold-out metrics as trained."""
        value = self.doc.get("metrics")
        return value if isinstance(value, Mapping) else {}

    @property
    def node_count(self) -> int:
        return len(self._left)

    def to_json(self) -> dict[str, Any]:
        """The JSON document it was loaded from."""
        return dict(self.doc)

    @classmethod
    def from_json(cls, doc: object) -> AdmissionModel:
        """Load an exported admission model, checking every field; ModelFormatError names what is wrong."""
        where = "admission model"
        checked = header(doc, KIND)
        classes = tuple(string_list(checked.get("classes"), f"{where}: classes"))
        if not classes or len(set(classes)) != len(classes) or set(classes) - set(_KNOWN_CLASSES):
            raise ModelFormatError(
                f"{where}: classes must be distinct names among {list(_KNOWN_CLASSES)}, got {list(classes)}"
            )
        raw_categories = field(checked, "categories", dict, where)
        unknown = set(raw_categories) - set(CATEGORICAL_INPUTS)
        if unknown:
            raise ModelFormatError(f"{where}: categories has unknown inputs {sorted(unknown)}")
        categories = {
            name: tuple(string_list(raw_categories.get(name, []), f"{where}: categories.{name}"))
            for name in CATEGORICAL_INPUTS
        }
        features = tuple(string_list(checked.get("features"), f"{where}: features"))
        expected = tuple(feature_names(categories))
        if features != expected:
            raise ModelFormatError(
                f"{where}: features {list(features)} do not match the inputs and categories, "
                f"which give {list(expected)}"
            )
        tree = field(checked, "tree", dict, where)
        nodes = _read_tree(tree, features, len(classes), f"{where}: tree")
        columns: list[tuple[str, str | None]] = [(name, None) for name in NUMERIC_INPUTS]
        for name in CATEGORICAL_INPUTS:
            columns.extend((name, label) for label in categories[name])
        feature, threshold, left, right, probabilities = nodes
        leaf_class, leaf_confidence = [], []
        for row in probabilities:
            best = max(range(len(row)), key=row.__getitem__)  # the first of equal maxima, as numpy's argmax
            leaf_class.append(classes[best])
            leaf_confidence.append(row[best])
        return cls(
            doc=checked,
            classes=classes,
            categories=categories,
            features=features,
            _input=tuple(columns[index][0] if index >= 0 else "" for index in feature),
            _label=tuple(columns[index][1] if index >= 0 else None for index in feature),
            _threshold=tuple(threshold),
            _left=tuple(left),
            _right=tuple(right),
            _probabilities=tuple(tuple(row) for row in probabilities),
            _leaf_class=tuple(leaf_class),
            _leaf_confidence=tuple(leaf_confidence),
        )

    def _leaf(self, inputs: Mapping[str, object]) -> int:
        left, right, threshold, names, labels = (
            self._left,
            self._right,
            self._threshold,
            self._input,
            self._label,
        )
        for name in NUMERIC_INPUTS:
            given = inputs.get(name)
            # NaN is the one number unequal to itself; anything but int, float and None takes the slow check.
            if given is not None and (type(given) not in _FAST_NUMBERS or given != given):
                _numeric(given, name)
        node = 0
        while left[node] >= 0:
            label = labels[node]
            if label is None:
                value: Any = inputs.get(names[node])
                if value is None:
                    value = MISSING
                elif value > NUMERIC_CAP:
                    value = NUMERIC_CAP
            else:
                value = 1.0 if inputs.get(names[node]) == label else 0.0
            node = left[node] if value <= threshold[node] else right[node]
        return node

    def predict(self, inputs: Mapping[str, object]) -> tuple[str, float]:
        """The request's class and the tree's probability for it, from its admission inputs."""
        leaf = self._leaf(inputs)
        return self._leaf_class[leaf], self._leaf_confidence[leaf]

    def predict_proba(self, inputs: Mapping[str, object]) -> dict[str, float]:
        """The tree's probability of each class for these inputs."""
        return dict(zip(self.classes, self._probabilities[self._leaf(inputs)], strict=True))


def _read_tree(
    tree: Mapping[str, object], features: Sequence[str], class_count: int, where: str
) -> tuple[list[int], list[float], list[int], list[int], list[list[float]]]:
    feature_raw = field(tree, "feature", list, where)
    threshold_raw = field(tree, "threshold", list, where)
    left_raw = field(tree, "left", list, where)
    right_raw = field(tree, "right", list, where)
    probabilities_raw = field(tree, "probabilities", list, where)
    count = same_length(
        where,
        {
            "feature": feature_raw,
            "threshold": threshold_raw,
            "left": left_raw,
            "right": right_raw,
            "probabilities": probabilities_raw,
        },
    )
    if count == 0:
        raise ModelFormatError(f"{where}: has no nodes")
    feature = [integer(value, f"{where}.feature[{i}]") for i, value in enumerate(feature_raw)]
    threshold = [number(value, f"{where}.threshold[{i}]") for i, value in enumerate(threshold_raw)]
    left = [integer(value, f"{where}.left[{i}]") for i, value in enumerate(left_raw)]
    right = [integer(value, f"{where}.right[{i}]") for i, value in enumerate(right_raw)]
    probabilities: list[list[float]] = []
    for i, row in enumerate(probabilities_raw):
        if not isinstance(row, list) or len(row) != class_count:
            raise ModelFormatError(f"{where}.probabilities[{i}] must be a list of {class_count} numbers")
        probabilities.append(
            [number(value, f"{where}.probabilities[{i}][{j}]") for j, value in enumerate(row)]
        )
    for i in range(count):
        if (left[i] < 0) != (right[i] < 0):
            raise ModelFormatError(f"{where}: node {i} has one child; a node has two or none")
        if left[i] < 0:
            continue
        # scikit-learn numbers children after their parent; requiring it also rules out cycles.
        for side, child in (("left", left[i]), ("right", right[i])):
            if not i < child < count:
                raise ModelFormatError(f"{where}.{side}[{i}] = {child} is not a later node ({count} nodes)")
        if not 0 <= feature[i] < len(features):
            raise ModelFormatError(
                f"{where}.feature[{i}] = {feature[i]} is not a feature index (there are {len(features)})"
            )
    return feature, threshold, left, right, probabilities
