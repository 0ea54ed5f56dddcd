"""The project-wide task decorator: explicit names, late acks, time limits, and duration logging."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import shared_task

logger = logging.getLogger("controlplane.tasks")

F = TypeVar("F", bound=Callable[..., Any])


def cleave_task(name: str, **options: Any) -> Callable[[F], Any]:
    """Register a Celery task under an explicit, stable `name` (queues route by its prefix).

    Tasks are thin: load rows by id and call a service. Late acks mean a task whose worker dies is
    redelivered, so every task must be idempotent.
    """
    options.setdefault("acks_late", True)

    def decorate(func: F) -> Any:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                logger.info("task %s finished in %.3f s", name, time.perf_counter() - started)

        return shared_task(name=name, **options)(timed)

    return decorate
