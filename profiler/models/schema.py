"""Reading model JSON safely: every problem is a ModelFormatError that names the field at fault.

Models travel as plain JSON (never pickle): the control plane stores them, routers load them. A model
file is checked field by field before anything evaluates it, so a truncated or hand-edited file fails
at load with a message like ``admission model: tree.left[7] = 99 is not a node (41 nodes)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

from profiler.errors import ProfilerError

# The layout of the JSON documents; a reader refuses a format it does not know.
FORMAT = 1
KINDS = ("admission", "workload")

T = TypeVar("T")


class ModelFormatError(ProfilerError):
    """A model document that is not what its kind requires; the message names the field."""


class ModelNotFoundError(ProfilerError):
    """No stored model of that kind and version."""


def field(doc: Mapping[str, object], key: str, kind: type[T], where: str) -> T:
    """``doc[key]`` checked to be a ``kind``; a ModelFormatError naming ``where.key`` otherwise."""
    if key not in doc:
        raise ModelFormatError(f"{where}: missing field {key!r}")
    value = doc[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelFormatError(
            f"{where}: field {key!r} must be {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


def number(value: object, where: str) -> float:
    """A finite JSON number as a float, else a ModelFormatError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelFormatError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def integer(value: object, where: str) -> int:
    """A JSON integer, else a ModelFormatError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelFormatError(f"{where} must be an integer, got {value!r}")
    return value


def string_list(value: object, where: str) -> list[str]:
    """A JSON list of strings, else a ModelFormatError naming ``where``."""
    if not isinstance(value, list):
        raise ModelFormatError(f"{where} must be a list of strings, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise ModelFormatError(f"{where}[{index}] must be a string, got {item!r}")
    return list(value)


def header(doc: object, kind: str) -> Mapping[str, object]:
    """The document as a mapping, once its ``kind`` and ``format`` are checked."""
    if not isinstance(doc, Mapping):
        raise ModelFormatError(f"{kind} model: expected a JSON object, got {type(doc).__name__}")
    found = doc.get("kind")
    if found != kind:
        raise ModelFormatError(f"{kind} model: field 'kind' must be {kind!r}, got {found!r}")
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise ModelFormatError(f"{kind} model: field 'format' must be {FORMAT}, got {fmt!r}")
    version = doc.get("version")
    if version is not None and not isinstance(version, str):
        raise ModelFormatError(f"{kind} model: field 'version' must be a string or null, got {version!r}")
    return doc


def same_length(where: str, columns: Mapping[str, Sequence[object]]) -> int:
    """The common length of parallel lists, else a ModelFormatError naming the one that differs."""
    lengths = {name: len(values) for name, values in columns.items()}
    expected = next(iter(lengths.values()), 0)
    for name, length in lengths.items():
        if length != expected:
            raise ModelFormatError(
                f"{where}: {name} has {length} entries where {next(iter(lengths))} has {expected}"
            )
    return expected


def _kind_name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        kind, kind.__name__
    )
