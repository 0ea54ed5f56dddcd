"""The engines a node agent runs, by name: ``launcher("vllm")``, ``launcher("sim")``...

Each module of this package (but ``base``, ``metrics`` and the sim's helpers, which define none)
defines one EngineLauncher subclass with a ``name``; defining it registers it. Adding an engine is
adding a module: the first lookup imports every module of the package.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from agents.engines.base import REGISTRY, EngineError, EngineLauncher, WorkerSpec
from agents.engines.metrics import WorkerMetrics

__all__ = ["EngineError", "EngineLauncher", "WorkerMetrics", "WorkerSpec", "engine_names", "launcher"]


@functools.cache
def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def engine_names() -> list[str]:
    """The names of every registered engine, sorted."""
    _discover()
    return sorted(REGISTRY)


def launcher(engine: str) -> EngineLauncher:
    """The launcher of the engine of that name; EngineError listing the known ones otherwise."""
    _discover()
    try:
        return REGISTRY[engine]()
    except KeyError:
        raise EngineError(
            f"unknown engine {engine!r}; known engines: {', '.join(sorted(REGISTRY))}"
        ) from None
