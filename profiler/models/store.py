"""Versioned models on disk, as JSON with their metadata, and the rule for activating a new one.

``root/<kind>/<kind>-0001.json``, ``...-0002.json``: versions count up per kind and are never reused
or overwritten. A save writes a temporary file in the same folder and links it to its version's name,
which fails rather than replaces when another process took that version first; the save then takes
the next one. Which version is active is the control plane's to keep (in its database), not the store's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profiler.errors import ProfilerError
from profiler.models.admission import AdmissionModel
from profiler.models.schema import KINDS, ModelFormatError, ModelNotFoundError
from profiler.models.workload import WorkloadModel

_VERSION = re.compile(r"(?P<kind>[a-z]+)-(?P<number>\d{4,})")
_MAX_SAVE_ATTEMPTS = 1000
# The fields list() reports of each version, when present.
METADATA_FIELDS = (
    "kind",
    "version",
    "created_at",
    "saved_at",
    "trained_on",
    "metrics",
    "features",
    "classes",
)

_VALIDATORS: dict[str, Callable[[object], object]] = {
    "admission": AdmissionModel.from_json,
    "workload": WorkloadModel.from_json,
}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ProfilerError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}")


def version_number(kind: str, version: str) -> int:
    """The number in a version name like ``admission-0003``; ProfilerError when it is not one of ``kind``."""
    match = _VERSION.fullmatch(version)
    if match is None or match["kind"] != kind:
        raise ProfilerError(f"{version!r} is not a {kind} model version (like {kind}-0001)")
    return int(match["number"])


class ModelStore:
    """Models of each kind stored under ``root`` as JSON files named by version."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _folder(self, kind: str) -> Path:
        _check_kind(kind)
        return self.root / kind

    def _numbers(self, kind: str) -> list[int]:
        folder = self._folder(kind)
        if not folder.is_dir():
            return []
        numbers = []
        for path in folder.glob(f"{kind}-*.json"):
            match = _VERSION.fullmatch(path.stem)
            if match is not None and match["kind"] == kind:
                numbers.append(int(match["number"]))
        return sorted(numbers)

    def save(self, model_json: Mapping[str, Any]) -> str:
        """Store a model document under the next version of its kind; returns that version.

        The document is checked as its kind's loader checks it (ModelFormatError names what is wrong);
        the stored copy carries its ``version`` and ``saved_at``.
        """
        kind = model_json.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            raise ModelFormatError(f"model: field 'kind' must be one of {list(KINDS)}, got {kind!r}")
        _VALIDATORS[kind](model_json)
        try:
            json.dumps(model_json, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"{kind} model: not storable as strict JSON ({exc})") from None
        folder = self._folder(kind)
        folder.mkdir(parents=True, exist_ok=True)
        number = (self._numbers(kind) or [0])[-1] + 1
        for _ in range(_MAX_SAVE_ATTEMPTS):
            version = f"{kind}-{number:04d}"
            doc = {**model_json, "version": version, "saved_at": datetime.now(UTC).isoformat()}
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".saving-", suffix=".json")
            try:
                with os.fdopen(handle, "w") as fh:
                    json.dump(doc, fh, indent=1, sort_keys=True, allow_nan=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(temporary, folder / f"{version}.json")
                except FileExistsError:
                    number += 1
                    continue
                return version
            finally:
                os.unlink(temporary)
        raise ProfilerError(f"could not find a free {kind} version after {_MAX_SAVE_ATTEMPTS} attempts")

    def load(self, kind: str, version: str) -> dict[str, Any]:
        """The stored document of that version, checked; ModelNotFoundError when there is none."""
        version_number(kind, version)
        path = self._folder(kind) / f"{version}.json"
        try:
            text = path.read_text()
        except FileNotFoundError:
            known = ", ".join(self.versions(kind)) or "none"
            raise ModelNotFoundError(f"no {kind} model {version}; stored: {known}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ModelFormatError(f"{path}: not valid JSON ({exc})") from None
        _VALIDATORS[kind](doc)
        if not isinstance(doc, dict):
            raise ModelFormatError(f"{path}: expected a JSON object")
        return doc

    def versions(self, kind: str) -> list[str]:
        """The stored versions of a kind, oldest first."""
        return [f"{kind}-{number:04d}" for number in self._numbers(kind)]

    def list(self, kind: str) -> list[dict[str, Any]]:
        """Metadata of each stored version of a kind, oldest first: version, dates, training range, metrics."""
        rows = []
        for version in self.versions(kind):
            doc = self.load(kind, version)
            rows.append({name: doc[name] for name in METADATA_FIELDS if name in doc})
        return rows

    def latest(self, kind: str) -> dict[str, Any] | None:
        """The newest stored document of a kind, or None when none is stored."""
        versions = self.versions(kind)
        return self.load(kind, versions[-1]) if versions else None


def better_than(
    candidate_metrics: Mapping[str, Any],
    active_metrics: Mapping[str, Any] | None,
    *,
    key: str = "macro_f1",
    min_gain: float = 0.0,
) -> bool:
    """Whether a candidate should replace the active model: a higher ``key`` on the same hold-out.

    No active model: the candidate wins. Metrics from different hold-outs (their ``holdout.digest``
    differs) are not comparable and raise ProfilerError: score the active model on the candidate's
    hold-out first (``train_admission(..., active=...)`` does).
    """
    if active_metrics is None:
        return True
    for name, scored in (("candidate", candidate_metrics), ("active", active_metrics)):
        value = scored.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProfilerError(f"{name} metrics have no number {key!r}")
    candidate_holdout = candidate_metrics.get("holdout") or {}
    active_holdout = active_metrics.get("holdout") or {}
    if candidate_holdout.get("digest") != active_holdout.get("digest"):
        raise ProfilerError(
            "the candidate and the active model were scored on different hold-outs "
            f"({candidate_holdout.get('digest')} vs {active_holdout.get('digest')}); score both on the same rows"
        )
    return float(candidate_metrics[key]) > float(active_metrics[key]) + min_gain
