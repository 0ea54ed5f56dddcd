"""Requests as the admission model learns from them: inputs known at arrival, phase-cost labels, a time split.

A request's label is its phase-cost class (``profiler.features``); its inputs are what the router knows
at arrival (``profiler.models.admission``). The split is by time: the earliest 70% of requests by
arrival train and the latest 30% test, as a model trained on today's traffic meets tomorrow's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from profiler.errors import ProfilerError
from profiler.features import PhaseCostModel
from profiler.models.admission import admission_inputs

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

TRAIN_SHARE = 0.7

ServiceOf = Callable[[Any], "str | None"]


def default_service(record: Any) -> str | None:
    """The service of a record by default: its model name."""
    model = getattr(record, "model", None)
    return model if isinstance(model, str) else None


@dataclass(frozen=True, eq=False)
class LabelledRequests:
    """Requests as the admission model sees them: inputs at arrival, and their phase-cost class."""

    inputs: list[dict[str, object]]
    labels: IntArray
    arrivals: FloatArray | None
    services: list[str | None]

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, rows: IntArray) -> LabelledRequests:
        return LabelledRequests(
            inputs=[self.inputs[i] for i in rows],
            labels=self.labels[rows],
            arrivals=None if self.arrivals is None else self.arrivals[rows],
            services=[self.services[i] for i in rows],
        )

    def prompt_tokens(self) -> FloatArray:
        return np.asarray([row["prompt_tokens"] for row in self.inputs], dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        """Rows, arrival range and a digest that identifies these exact rows (for same-hold-out checks)."""
        digest = hashlib.sha256()
        for row, label in zip(self.inputs, self.labels.tolist(), strict=True):
            digest.update(repr((sorted(row.items(), key=lambda item: item[0]), label)).encode())
        return {
            "rows": len(self),
            "start_s": None if self.arrivals is None or not len(self) else float(self.arrivals.min()),
            "end_s": None if self.arrivals is None or not len(self) else float(self.arrivals.max()),
            "services": dict(sorted(Counter(str(s) for s in self.services).items())),
            "digest": digest.hexdigest()[:16],
        }


def label_requests(
    records: Iterable[Any],
    cost_model: PhaseCostModel | Mapping[str, PhaseCostModel],
    *,
    service_of: ServiceOf = default_service,
    clock_origin_s: float = 0.0,
) -> LabelledRequests:
    """Each record's admission inputs and phase-cost class, ordered by arrival (stable).

    ``cost_model`` prices every record, or is a mapping from service to the cost model of that service
    (a record whose service has none raises ProfilerError). Without arrival times the order is kept.
    """
    rows = list(records)
    services = [service_of(record) for record in rows]
    labels = np.zeros(len(rows), dtype=np.int64)
    if isinstance(cost_model, PhaseCostModel):
        labels = cost_model.costs(rows).class_index
    else:
        for service in sorted(set(services), key=str):
            if service is None or service not in cost_model:
                known = ", ".join(sorted(cost_model)) or "none"
                raise ProfilerError(f"no cost model for service {service!r}; services with one: {known}")
            members = np.asarray([i for i, s in enumerate(services) if s == service], dtype=np.int64)
            labels[members] = cost_model[service].costs([rows[i] for i in members]).class_index
    inputs = [
        admission_inputs(record, service, clock_origin_s)
        for record, service in zip(rows, services, strict=True)
    ]
    arrival_values = [record.arrival_s for record in rows]
    arrivals = None
    order = np.arange(len(rows), dtype=np.int64)
    if rows and all(value is not None for value in arrival_values):
        arrivals = np.asarray(arrival_values, dtype=np.float64)
        order = np.argsort(arrivals, kind="stable").astype(np.int64)
    return LabelledRequests(inputs, labels, arrivals, services).subset(order)


def time_split(
    requests: LabelledRequests, train_share: float = TRAIN_SHARE
) -> tuple[LabelledRequests, LabelledRequests]:
    """The earlier ``train_share`` of the (arrival-ordered) requests, and the rest."""
    cut = round(len(requests) * train_share)
    everything = np.arange(len(requests), dtype=np.int64)
    return requests.subset(everything[:cut]), requests.subset(everything[cut:])
