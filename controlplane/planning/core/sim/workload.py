"""The requests a simulation serves: from a trace, or Poisson arrivals over an empirical length sample."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from profiler.features import RequestLike

from .spec import SimulationError


@dataclass(frozen=True, slots=True)
class Request:
    """One request: when it arrives (s), its prompt, how many of the prompt's tokens the prefix cache holds,
    and how many tokens it generates (the first comes from the prefill pass)."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    cached_prompt_tokens: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.arrival_s):
            raise SimulationError(f"request arrival_s must be finite, got {self.arrival_s}")
        if self.prompt_tokens < 1:
            raise SimulationError(f"request prompt_tokens must be >= 1, got {self.prompt_tokens}")
        if self.output_tokens < 1:
            raise SimulationError(f"request output_tokens must be >= 1, got {self.output_tokens}")
        if not 0 <= self.cached_prompt_tokens <= self.prompt_tokens:
            raise SimulationError(
                f"request cached_prompt_tokens must be in [0, prompt_tokens={self.prompt_tokens}], "
                f"got {self.cached_prompt_tokens}"
            )


def fit_context(
    prompt_tokens: int, output_tokens: int, cached_prompt_tokens: int, max_context: int | None
) -> tuple[int, int, int]:
    """Lengths as a server with this context window runs them.

    A prompt longer than the window is cut to leave room for one token, and generation stops when the
    window is full, which is what an engine does at max_model_len. Lengths below 1 become 1: a request
    always has a prompt and always gets the token its prefill produces.
    """
    prompt = max(prompt_tokens, 1)
    output = max(output_tokens, 1)
    if max_context is not None:
        if max_context < 2:
            raise SimulationError(f"max_context must be >= 2 tokens, got {max_context}")
        prompt = min(prompt, max_context - 1)
        output = min(output, max_context - prompt)
    return prompt, output, min(max(cached_prompt_tokens, 0), prompt)


def requests_from_trace(
    records: Iterable[RequestLike], *, max_context: int | None = None
) -> list[Request]:
    """The trace's requests in arrival order, the first arriving at 0 s, lengths fitted to ``max_context``.

    Raises SimulationError for an empty trace or a record without an arrival time (sample its lengths
    with poisson_requests instead).
    """
    rows: list[tuple[float, int, int, int]] = []
    for number, record in enumerate(records, start=1):
        if record.arrival_s is None:
            raise SimulationError(
                f"trace record {number} has no arrival time; replay its lengths with poisson_requests instead"
            )
        rows.append(
            (
                float(record.arrival_s),
                *fit_context(
                    record.prompt_tokens, record.output_tokens, record.cached_prompt_tokens, max_context
                ),
            )
        )
    if not rows:
        raise SimulationError("the trace has no requests")
    rows.sort(key=lambda row: row[0])
    origin = rows[0][0]
    return [Request(arrival - origin, prompt, output, cached) for arrival, prompt, output, cached in rows]


@dataclass(frozen=True)
class LengthSampler:
    """An empirical sample of request lengths that Poisson workloads draw from, with replacement."""

    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    cached_prompt_tokens: tuple[int, ...]

    def __post_init__(self) -> None:
        sizes = {len(self.prompt_tokens), len(self.output_tokens), len(self.cached_prompt_tokens)}
        if len(sizes) != 1:
            raise SimulationError("a length sample needs as many prompt, output and cached lengths")
        if not self.prompt_tokens:
            raise SimulationError("the length sample is empty")
        for prompt, output, cached in zip(
            self.prompt_tokens, self.output_tokens, self.cached_prompt_tokens, strict=True
        ):
            if prompt < 1 or output < 1 or not 0 <= cached <= prompt:
                raise SimulationError(
                    f"bad lengths in the sample: prompt {prompt}, output {output}, cached {cached} "
                    "(prompt and output must be >= 1, cached in [0, prompt])"
                )

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]], *, max_context: int | None = None) -> LengthSampler:
        """A sample of (prompt, output) pairs, nothing cached."""
        fitted = [fit_context(prompt, output, 0, max_context) for prompt, output in pairs]
        return cls(*_columns(fitted))

    @classmethod
    def from_records(
        cls, records: Iterable[RequestLike], *, max_context: int | None = None
    ) -> LengthSampler:
        """A sample of a trace's lengths (with its cached prefixes), fitted to ``max_context``."""
        fitted = [
            fit_context(r.prompt_tokens, r.output_tokens, r.cached_prompt_tokens, max_context)
            for r in records
        ]
        return cls(*_columns(fitted))

    def __len__(self) -> int:
        return len(self.prompt_tokens)


def _columns(rows: list[tuple[int, int, int]]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    if not rows:
        raise SimulationError("the length sample is empty")
    prompts, outputs, cached = zip(*rows, strict=True)
    return tuple(prompts), tuple(outputs), tuple(cached)


def poisson_requests(
    rate_rps: float,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    lengths: Sequence[tuple[int, int]] | LengthSampler,
    seed: int,
) -> list[Request]:
    """Poisson arrivals at ``rate_rps`` for ``duration_s`` seconds or ``count`` requests (give one),
    each with lengths drawn with replacement from ``lengths``.

    The unit-rate gaps and the length draws come from separate streams of ``seed`` and do not depend on
    the rate, so the same seed at two rates gives the same requests, closer together: common random
    numbers, which keeps a goodput search's attainment monotone in the rate.
    """
    if not (math.isfinite(rate_rps) and rate_rps > 0):
        raise SimulationError(f"rate_rps must be a positive number, got {rate_rps}")
    if (duration_s is None) == (count is None):
        raise SimulationError("give exactly one of duration_s and count")
    sampler = lengths if isinstance(lengths, LengthSampler) else LengthSampler.from_pairs(lengths)
    gap_rng, length_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    if count is not None:
        if count < 1:
            raise SimulationError(f"count must be >= 1, got {count}")
        arrivals = np.cumsum(gap_rng.exponential(1.0, count)) / rate_rps
    else:
        assert duration_s is not None
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise SimulationError(f"duration_s must be a positive number, got {duration_s}")
        arrivals = _arrivals_within(gap_rng, rate_rps, duration_s)
        if arrivals.size == 0:
            raise SimulationError(f"no request arrives in {duration_s} s at {rate_rps} req/s")
    picks = length_rng.integers(0, len(sampler), arrivals.size)
    prompts, outputs, cached = sampler.prompt_tokens, sampler.output_tokens, sampler.cached_prompt_tokens
    return [
        Request(float(arrival), prompts[pick], outputs[pick], cached[pick])
        for arrival, pick in zip(arrivals.tolist(), picks.tolist(), strict=True)
    ]


def _arrivals_within(rng: np.random.Generator, rate_rps: float, duration_s: float) -> np.ndarray:
    """Arrival times in (0, duration_s], drawn in blocks from the unit-rate stream."""
    horizon = rate_rps * duration_s
    blocks: list[np.ndarray] = []
    total = 0.0
    block = max(int(horizon * 1.1) + 16, 64)
    while total <= horizon:
        gaps = rng.exponential(1.0, block)
        sums = total + np.cumsum(gaps)
        blocks.append(sums)
        total = float(sums[-1])
    unit = np.concatenate(blocks)
    return unit[unit <= horizon] / rate_rps
