"""The profiler's learned models: admission (per request, in the router) and workload (per window).

Importing this package never loads scikit-learn: the router imports it for ``AdmissionModel``, whose
evaluator is pure Python. Only ``train_admission`` imports scikit-learn, when called.
"""

from __future__ import annotations

from profiler.models.admission import AdmissionModel, admission_inputs, hour_of_day
from profiler.models.drift import Drift, detect_drift
from profiler.models.schema import ModelFormatError, ModelNotFoundError
from profiler.models.store import ModelStore, better_than
from profiler.models.training import AdmissionReport, evaluate_admission, train_admission
from profiler.models.workload import Forecast, WorkloadModel, WorkloadReport, classify_window, train_workload

__all__ = [
    "AdmissionModel",
    "AdmissionReport",
    "Drift",
    "Forecast",
    "ModelFormatError",
    "ModelNotFoundError",
    "ModelStore",
    "WorkloadModel",
    "WorkloadReport",
    "admission_inputs",
    "better_than",
    "classify_window",
    "detect_drift",
    "evaluate_admission",
    "hour_of_day",
    "train_admission",
    "train_workload",
]
