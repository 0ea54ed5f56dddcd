"""The prompt-length baseline the admission model must beat (the other, the majority class, needs no code).

It cuts prompt length at two thresholds into three ranges and gives each whichever class scores best
in macro-F1 on the training part: any of the 27 assignments, over a grid of 101 training quantiles
for each threshold. A single threshold is the case where neighbouring ranges share a class, so this is
at least as strong as the best single threshold.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_THRESHOLD_GRID = 101


@dataclass(frozen=True)
class ThresholdBaseline:
    """Prompt length cut at two thresholds into three ranges, each predicting one class.

    A prompt of p tokens falls in range 0 when p <= low, 1 when low < p <= high, else 2. Each range
    predicts its class; its probabilities, for calibration, are its training rows' class frequencies.
    """

    low: float
    high: float
    range_classes: tuple[int, int, int]
    range_probabilities: FloatArray

    @classmethod
    def fit(cls, prompt_tokens: FloatArray, labels: IntArray) -> ThresholdBaseline:
        """The threshold pair and range classes with the best macro-F1 on the given rows."""
        grid = np.unique(np.quantile(prompt_tokens, np.linspace(0.0, 1.0, _THRESHOLD_GRID)))
        candidates = np.concatenate([[-np.inf], grid])
        below = np.stack(
            [
                np.sum((prompt_tokens[None, :] <= candidates[:, None]) & (labels == k), axis=1)
                for k in range(3)
            ],
            axis=1,
        ).astype(np.float64)
        totals = np.bincount(labels, minlength=3).astype(np.float64)
        low_index, high_index = np.triu_indices(len(candidates))
        regions = np.stack(
            [below[low_index], below[high_index] - below[low_index], totals - below[high_index]], axis=1
        )
        best: tuple[float, int, tuple[int, ...]] = (-1.0, 0, (0, 0, 0))
        for assignment in itertools.product(range(3), repeat=3):
            f1_sum = np.zeros(len(low_index))
            present = np.zeros(len(low_index))
            for label in range(3):
                mine = [r for r in range(3) if assignment[r] == label]
                true_positive = sum((regions[:, r, label] for r in mine), np.zeros(len(low_index)))
                predicted = sum((regions[:, r, :].sum(axis=1) for r in mine), np.zeros(len(low_index)))
                denominator = predicted + totals[label]
                f1_sum += np.where(denominator > 0, 2.0 * true_positive / np.maximum(denominator, 1.0), 0.0)
                present += denominator > 0
            score = f1_sum / np.maximum(present, 1.0)
            at = int(np.argmax(score))
            if score[at] > best[0]:
                best = (float(score[at]), at, assignment)
        _, at, assignment = best
        counts = regions[at]
        sums = counts.sum(axis=1, keepdims=True)
        probabilities = np.where(sums > 0, counts / np.maximum(sums, 1.0), totals / totals.sum())
        return cls(
            low=float(candidates[low_index[at]]),
            high=float(candidates[high_index[at]]),
            range_classes=(assignment[0], assignment[1], assignment[2]),
            range_probabilities=probabilities,
        )

    def ranges(self, prompt_tokens: FloatArray) -> IntArray:
        """Each prompt's range: 0, 1 or 2."""
        return np.where(prompt_tokens <= self.low, 0, np.where(prompt_tokens <= self.high, 1, 2)).astype(
            np.int64
        )

    def predict(self, prompt_tokens: FloatArray) -> IntArray:
        """Each prompt's predicted class index: its range's class."""
        return np.asarray(self.range_classes, dtype=np.int64)[self.ranges(prompt_tokens)]

    def predict_proba(self, prompt_tokens: FloatArray) -> FloatArray:
        """Each prompt's range's training class frequencies over CLASSES."""
        return np.asarray(self.range_probabilities[self.ranges(prompt_tokens)], dtype=np.float64)
