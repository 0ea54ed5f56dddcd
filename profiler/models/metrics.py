"""Scores of a classifier on a hold-out: macro-F1, accuracy, and how well its probabilities are calibrated.

Classes are indices into CLASSES; probabilities are rows over all of CLASSES (a model that never
predicts a class gives it 0). Plain numpy, so scoring a stored model never needs scikit-learn.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from profiler.errors import ProfilerError
from profiler.features import CLASSES

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

CALIBRATION_BINS = 10


def macro_f1(truth: IntArray, predicted: IntArray) -> float:
    """The mean F1 over the classes that occur in the truth or the predictions (as scikit-learn's macro)."""
    if len(truth) == 0:
        return 0.0
    scores = []
    for label in np.union1d(truth, predicted):
        true_positive = int(np.sum((truth == label) & (predicted == label)))
        denominator = int(np.sum(truth == label)) + int(np.sum(predicted == label))
        scores.append(2.0 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))


def accuracy(truth: IntArray, predicted: IntArray) -> float:
    """The share of rows predicted right."""
    return float(np.mean(truth == predicted)) if len(truth) else 0.0


def brier_score(truth: IntArray, probabilities: FloatArray) -> float:
    """The multi-class Brier score: the mean over rows of the squared error summed over the classes."""
    if len(truth) == 0:
        return 0.0
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(truth)), truth] = 1.0
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def expected_calibration_error(
    truth: IntArray,
    probabilities: FloatArray,
    predicted: IntArray | None = None,
    bins: int = CALIBRATION_BINS,
) -> float:
    """How far the predicted class's probability is from how often it is right, over equal-width bins.

    ``predicted`` defaults to each row's most probable class.
    """
    if len(truth) == 0:
        return 0.0
    if predicted is None:
        predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(truth)), predicted]
    correct = (predicted == truth).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    error = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            error += float(members.mean()) * abs(float(correct[members].mean() - confidence[members].mean()))
    return error


def scores(truth: IntArray, probabilities: FloatArray, predicted: IntArray | None = None) -> dict[str, float]:
    """Macro-F1, accuracy, Brier score and expected calibration error of probabilities over CLASSES.

    ``predicted`` defaults to each row's most probable class; a baseline whose prediction is not its
    most probable class (a range given a minority class for macro-F1's sake) passes its own.
    """
    if probabilities.shape != (len(truth), len(CLASSES)):
        raise ProfilerError(
            f"probabilities must be rows of {len(CLASSES)} classes, got {probabilities.shape}"
        )
    if predicted is None:
        predicted = np.argmax(probabilities, axis=1)
    return {
        "macro_f1": macro_f1(truth, predicted),
        "accuracy": accuracy(truth, predicted),
        "brier": brier_score(truth, probabilities),
        "ece": expected_calibration_error(truth, probabilities, predicted),
    }
