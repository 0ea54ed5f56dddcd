"""What the simulation knows of each request (its lengths, when its first and last tokens came), the event
queue, and the count of requests in the system over time."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from .spec import SimulationError
from .workload import Request

Event = tuple[float, int, Callable[[Any, float], None], Any]


class Ledger:
    """The requests' lengths and what happened to each, the event queue, and the count in the system."""

    def __init__(self, requests: Sequence[Request]) -> None:
        self.prompt = [r.prompt_tokens for r in requests]
        self.output = [r.output_tokens for r in requests]
        # A fully cached prompt still runs its last token to get the first output token's logits.
        self.uncached = [max(r.prompt_tokens - r.cached_prompt_tokens, 1) for r in requests]
        # The uncached suffix attends to the cached prefix too: 2*u*c + u^2 in the perf model's sum of squares.
        self.attention_sq = [
            float(u) * u + 2.0 * u * (p - u) for u, p in zip(self.uncached, self.prompt, strict=True)
        ]
        self.kv_need = [p + o for p, o in zip(self.prompt, self.output, strict=True)]
        self.local = bytearray(len(requests))  # prefilled by the serving worker that decodes it
        nan = float("nan")
        self.first_token_s = [nan] * len(requests)
        self.finish_s = [nan] * len(requests)
        self.heap: list[Event] = []
        self._order = itertools.count()
        self.in_system = 0
        self.in_system_area = 0.0  # integral of the number in the system over time
        self._last_change_s = 0.0

    def schedule(self, at_s: float, handler: Callable[[Any, float], None], arg: Any) -> None:
        """Call ``handler(arg, at_s)`` at ``at_s``; events at the same time run in the order scheduled."""
        heapq.heappush(self.heap, (at_s, next(self._order), handler, arg))

    def arrive(self, now: float) -> None:
        """A request entered the system."""
        self.in_system_area += self.in_system * (now - self._last_change_s)
        self._last_change_s = now
        self.in_system += 1

    def finish(self, request: int, now: float) -> None:
        """A request's last token left the system."""
        if self.finish_s[request] == self.finish_s[request]:
            raise SimulationError(f"internal error: request {request} finished twice")
        self.finish_s[request] = now
        self.in_system_area += self.in_system * (now - self._last_change_s)
        self._last_change_s = now
        self.in_system -= 1
