"""What a request and a window of traffic cost in each phase, and the class that follows from it.

A request's class is decided by the share of its GPU time spent in prefill under the perf model, never by
its token counts alone: the same 1,000-token prompt with a 100-token answer is prefill-heavy for one
model, tier and TPOT target and decode-heavy for another. Costs are GPU-seconds as a fleet really spends
them: a prefill pass is shared by the prompts batched into it up to a token budget, a decode step by the
sequences of the batch a decode worker sustains within the TPOT target, and prompt tokens served from
the prefix cache are not prefilled at all.

A window is a span of arrivals (300 s by default) summarized as a WindowProfile: rates, burstiness,
length percentiles, prefix-cache share, the window's prefill share of GPU time and its class.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from profiler import catalog
from profiler.catalog import ModelArch
from profiler.errors import ConfigurationError, ProfilerError
from profiler.perfmodel import PerfModel

# The class thresholds, here and nowhere else: a request or window is prefill-heavy when prefill takes
# at least 60% of its GPU time, decode-heavy when prefill takes at most 40%, balanced in between. The
# band is symmetric around an even split and wide enough that a class names a real imbalance: a
# disaggregated plan for a 60/40 load already wants about 1.5 prefill GPUs per decode GPU.
PREFILL_HEAVY_AT = 0.6
DECODE_HEAVY_AT = 0.4

PREFILL_HEAVY, BALANCED, DECODE_HEAVY = "prefill-heavy", "balanced", "decode-heavy"
CLASSES: tuple[str, str, str] = (PREFILL_HEAVY, BALANCED, DECODE_HEAVY)

DEFAULT_TIER = "H100-SXM-80GB"
DEFAULT_WINDOW_S = 300.0
# vLLM V1's default --max-num-batched-tokens for online serving: the most prompt tokens one prefill pass takes.
DEFAULT_PREFILL_TOKEN_BUDGET = 8192
# TP degrees tried, smallest first, when the service does not name one.
_TP_CANDIDATES = (1, 2, 4, 8)
# Decode batch sizes are looked up per context bucket of this many tokens (rounded up, so the batch is
# never larger than the one the exact context allows); a step's time is still taken at the exact context.
_CONTEXT_BUCKET_TOKENS = 64

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def classify_share(share: float) -> str:
    """The class of a prefill share of GPU time: prefill-heavy, balanced or decode-heavy."""
    if math.isnan(share) or not 0.0 <= share <= 1.0:
        raise ProfilerError(f"a prefill share must be in [0, 1], got {share}")
    if share >= PREFILL_HEAVY_AT:
        return PREFILL_HEAVY
    if share <= DECODE_HEAVY_AT:
        return DECODE_HEAVY
    return BALANCED


def class_indices(shares: FloatArray) -> IntArray:
    """Each share's index into CLASSES (0 prefill-heavy, 1 balanced, 2 decode-heavy), vectorized."""
    indices = np.ones(len(shares), dtype=np.int64)
    indices[shares >= PREFILL_HEAVY_AT] = 0
    indices[shares <= DECODE_HEAVY_AT] = 2
    return indices


class RequestLike(Protocol):
    """What features read of a request: TraceRecord has it, and so does a control plane row."""

    @property
    def arrival_s(self) -> float | None: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_prompt_tokens(self) -> int: ...


@dataclass(frozen=True)
class PhaseCost:
    """One request's GPU-seconds in prefill and in decode, the prefill share of their sum, and its class."""

    prefill_gpu_s: float
    decode_gpu_s: float
    prefill_share: float
    request_class: str


@dataclass(frozen=True, eq=False)
class PhaseCosts:
    """The phase costs of many requests as arrays, in the requests' order."""

    prefill_gpu_s: FloatArray
    decode_gpu_s: FloatArray

    @property
    def prefill_share(self) -> FloatArray:
        """Each request's prefill share of its GPU time (1.0 for a request that costs nothing)."""
        total = self.prefill_gpu_s + self.decode_gpu_s
        positive = total > 0.0
        return np.where(positive, self.prefill_gpu_s / np.where(positive, total, 1.0), 1.0)

    @property
    def class_index(self) -> IntArray:
        """Each request's index into CLASSES."""
        return class_indices(self.prefill_share)

    @property
    def request_classes(self) -> list[str]:
        """Each request's class name."""
        return [CLASSES[index] for index in self.class_index]

    def __len__(self) -> int:
        return len(self.prefill_gpu_s)


@dataclass(frozen=True)
class PhaseCostModel:
    """Prices requests in prefill and decode GPU-seconds for one service: a model on a reference worker.

    Build it with ``for_service``. ``prefill_token_budget`` is the most prompt tokens one prefill pass
    batches; ``tpot_slo_s`` bounds the decode step, and so the decode batch.
    """

    perf: PerfModel
    tpot_slo_s: float
    prefill_token_budget: int = DEFAULT_PREFILL_TOKEN_BUDGET
    _decode_batches: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.tpot_slo_s > 0.0 and math.isfinite(self.tpot_slo_s)):
            raise ProfilerError(f"tpot_slo_s must be a positive number of seconds, got {self.tpot_slo_s}")
        if self.prefill_token_budget < 1:
            raise ProfilerError(f"prefill_token_budget must be >= 1, got {self.prefill_token_budget}")

    @classmethod
    def for_service(
        cls,
        model: str | ModelArch,
        tpot_slo_s: float,
        *,
        tier: str = DEFAULT_TIER,
        tp: int | None = None,
        dtype: str = "bf16",
        prefill_token_budget: int = DEFAULT_PREFILL_TOKEN_BUDGET,
    ) -> PhaseCostModel:
        """The cost model of a service: its model on ``tier`` at ``tp`` (None: the smallest TP that fits).

        Unknown model or tier names raise UnknownModelError / UnknownTierError; a model that fits at no
        TP up to 8 raises ConfigurationError naming why each failed.
        """
        arch = catalog.model(model) if isinstance(model, str) else model
        gpu = catalog.tier(tier)
        candidates = _TP_CANDIDATES if tp is None else (tp,)
        failures: list[str] = []
        for degree in candidates:
            try:
                perf = PerfModel(model=arch, tier=gpu, tp=degree, dtype=dtype)
            except ConfigurationError as exc:
                if tp is not None:
                    raise
                failures.append(f"TP{degree}: {exc}")
                continue
            return cls(perf=perf, tpot_slo_s=tpot_slo_s, prefill_token_budget=prefill_token_budget)
        raise ConfigurationError(
            f"{arch.name} runs on {gpu.name} at no TP in {list(_TP_CANDIDATES)}: " + "; ".join(failures)
        )

    @property
    def tp(self) -> int:
        return self.perf.tp

    def describe(self) -> str:
        """A one-line description: model, tier, TP, dtype and TPOT target."""
        perf = self.perf
        return (
            f"{perf.model.name} on {perf.tier.name} TP{perf.tp} {perf.dtype}, "
            f"TPOT {self.tpot_slo_s * 1000:g} ms, prefill budget {self.prefill_token_budget} tokens"
        )

    def cost(self, prompt_tokens: int, output_tokens: int, cached_prompt_tokens: int = 0) -> PhaseCost:
        """One request's phase costs; the first output token comes from the prefill pass."""
        costs = self.costs_of(
            np.array([prompt_tokens]), np.array([output_tokens]), np.array([cached_prompt_tokens])
        )
        prefill, decode = float(costs.prefill_gpu_s[0]), float(costs.decode_gpu_s[0])
        share = float(costs.prefill_share[0])
        return PhaseCost(prefill, decode, share, classify_share(share))

    def costs(self, records: Iterable[RequestLike]) -> PhaseCosts:
        """The phase costs of each record, as arrays in the records' order."""
        prompt, output, cached = token_arrays(records)
        return self.costs_of(prompt, output, cached)

    def costs_of(
        self,
        prompt_tokens: npt.ArrayLike,
        output_tokens: npt.ArrayLike,
        cached_prompt_tokens: npt.ArrayLike | None = None,
    ) -> PhaseCosts:
        """Phase costs from arrays of prompt, output and cached prompt token counts."""
        prompt = np.asarray(prompt_tokens, dtype=np.int64)
        output = np.asarray(output_tokens, dtype=np.int64)
        cached = (
            np.zeros_like(prompt)
            if cached_prompt_tokens is None
            else np.asarray(cached_prompt_tokens, dtype=np.int64)
        )
        if not prompt.shape == output.shape == cached.shape or prompt.ndim != 1:
            raise ProfilerError(
                f"token arrays must be one-dimensional and of one length, got shapes "
                f"{prompt.shape}, {output.shape}, {cached.shape}"
            )
        for name, values in (
            ("prompt_tokens", prompt),
            ("output_tokens", output),
            ("cached_prompt_tokens", cached),
        ):
            if len(values) and values.min() < 0:
                raise ProfilerError(f"{name} must be >= 0, got {int(values.min())}")
        if len(prompt) and (cached > prompt).any():
            at = int(np.argmax(cached > prompt))
            raise ProfilerError(
                f"request {at}: {int(cached[at])} cached prompt tokens exceed its {int(prompt[at])} prompt tokens"
            )
        return PhaseCosts(
            prefill_gpu_s=self._prefill_gpu_s(prompt - cached, cached),
            decode_gpu_s=self._decode_gpu_s(prompt, output),
        )

    def _prefill_gpu_s(self, new_tokens: IntArray, cached: IntArray) -> FloatArray:
        # Prompts like this one fill a pass up to the token budget and share its time; one longer than
        # the budget runs alone. New tokens still attend to the cached prefix: u^2 + 2uc in the
        # perf model's sum of squared lengths.
        perf, budget = self.perf, self.prefill_token_budget
        pairs, inverse = np.unique(np.stack([new_tokens, cached]), axis=1, return_inverse=True)
        per_pair = np.zeros(pairs.shape[1])
        for index in range(pairs.shape[1]):
            new, prefix = int(pairs[0, index]), int(pairs[1, index])
            if new == 0:
                continue
            copies = max(budget // new, 1)
            sum_sq = copies * (float(new) * new + 2.0 * new * prefix)
            per_pair[index] = perf.prefill_time_from_sums_s(copies * new, sum_sq, copies) / copies
        return per_pair[inverse.reshape(-1)] * perf.tp

    def _decode_gpu_s(self, prompt: IntArray, output: IntArray) -> FloatArray:
        # Each decode step is shared by the batch a decode worker sustains within the TPOT target at this
        # request's mean context; a request that cannot meet the target at any batch runs alone.
        perf = self.perf
        steps = np.maximum(output - 1, 0)
        context = np.maximum(prompt + output // 2, 1)
        pairs, inverse = np.unique(np.stack([steps, context]), axis=1, return_inverse=True)
        per_pair = np.zeros(pairs.shape[1])
        for index in range(pairs.shape[1]):
            step_count, ctx = int(pairs[0, index]), int(pairs[1, index])
            if step_count == 0:
                continue
            batch = self.decode_batch(ctx)
            per_pair[index] = step_count * perf.decode_step_s(batch, batch * ctx) / batch
        return per_pair[inverse.reshape(-1)] * perf.tp

    def decode_batch(self, context_tokens: int) -> int:
        """The decode batch a worker sustains within the TPOT target at this context (at least 1)."""
        bucket = -(-max(context_tokens, 1) // _CONTEXT_BUCKET_TOKENS) * _CONTEXT_BUCKET_TOKENS
        batch = self._decode_batches.get(bucket)
        if batch is None:
            batch = max(self.perf.max_decode_batch(self.tpot_slo_s, bucket), 1)
            self._decode_batches[bucket] = batch
        return batch


def token_arrays(records: Iterable[RequestLike]) -> tuple[IntArray, IntArray, IntArray]:
    """Prompt, output and cached prompt token counts of the records, as arrays."""
    prompt: list[int] = []
    output: list[int] = []
    cached: list[int] = []
    for record in records:
        prompt.append(record.prompt_tokens)
        output.append(record.output_tokens)
        cached.append(record.cached_prompt_tokens)
    return (
        np.asarray(prompt, dtype=np.int64),
        np.asarray(output, dtype=np.int64),
        np.asarray(cached, dtype=np.int64),
    )


@dataclass(frozen=True)
class WindowProfile:
    """A span of traffic summarized for planning and drift detection.

    A window with no requests has None for what needs requests (percentiles, shares, class) and an empty
    class_mix. A batch trace (no arrival times) is one window from 0 to 0 with a None rate.
    ``prefill_share`` is of the window's GPU time (sum of prefill over sum of both), not a mean of
    the requests' shares; ``prefill_share_se`` is its standard error as a ratio estimator over the
    requests (None below 2 requests); ``prefill_gpu_s`` and ``decode_gpu_s`` are the window's totals.
    """

    start_s: float
    end_s: float
    request_count: int
    arrival_rate_rps: float | None
    burstiness_cv: float | None
    prompt_tokens_p50: float | None
    prompt_tokens_p90: float | None
    prompt_tokens_p99: float | None
    output_tokens_p50: float | None
    output_tokens_p90: float | None
    output_tokens_p99: float | None
    prefix_cache_share: float | None
    prefill_share: float | None
    workload_class: str | None
    class_mix: dict[str, float]
    prefill_gpu_s: float = 0.0
    decode_gpu_s: float = 0.0
    prefill_share_se: float | None = None

    def to_dict(self) -> dict[str, object]:
        """The profile as plain JSON-ready values."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def window_profiles(
    records: Iterable[RequestLike], cost_model: PhaseCostModel, window_s: float = DEFAULT_WINDOW_S
) -> list[WindowProfile]:
    """The records cut into windows of ``window_s`` seconds, each profiled; in time order.

    Windows are aligned to multiples of ``window_s`` on the records' clock and every window from the
    first arrival's to the last's is returned, empty ones included (a rate of 0 is information). The
    last window may be only partly observed: its rate counts its requests over the whole window.
    A batch trace (no record has an arrival time) is one window. Records where some have arrival times
    and some do not raise ProfilerError.
    """
    if not (window_s > 0.0 and math.isfinite(window_s)):
        raise ProfilerError(f"window_s must be a positive number of seconds, got {window_s}")
    rows = list(records)
    if not rows:
        return []
    arrivals = _arrivals(rows)
    costs = cost_model.costs(rows)
    prompt, output, cached = token_arrays(rows)
    if arrivals is None:
        return [_profile(0.0, 0.0, None, None, prompt, output, cached, costs)]
    index = np.floor(arrivals / window_s).astype(np.int64)
    order = np.argsort(index, kind="stable")
    first, last = int(index[order[0]]), int(index[order[-1]])
    bounds = np.searchsorted(index[order], np.arange(first, last + 2))
    profiles = []
    for offset, window in enumerate(range(first, last + 1)):
        members = order[bounds[offset] : bounds[offset + 1]]
        profiles.append(
            _profile(
                window * window_s,
                (window + 1) * window_s,
                window_s,
                arrivals[members],
                prompt[members],
                output[members],
                cached[members],
                PhaseCosts(costs.prefill_gpu_s[members], costs.decode_gpu_s[members]),
            )
        )
    return profiles


def overall_profile(records: Iterable[RequestLike], cost_model: PhaseCostModel) -> WindowProfile:
    """All the records as one profile, from the first arrival to the last.

    Its rate is the request count over that span (None for a batch trace, or when the span is 0).
    An empty list raises ProfilerError: there is nothing to profile.
    """
    rows = list(records)
    if not rows:
        raise ProfilerError("no records to profile")
    arrivals = _arrivals(rows)
    prompt, output, cached = token_arrays(rows)
    costs = cost_model.costs_of(prompt, output, cached)
    if arrivals is None:
        return _profile(0.0, 0.0, None, None, prompt, output, cached, costs)
    start, end = float(arrivals.min()), float(arrivals.max())
    return _profile(start, end, end - start if end > start else None, arrivals, prompt, output, cached, costs)


def _arrivals(rows: Sequence[RequestLike]) -> FloatArray | None:
    values = [record.arrival_s for record in rows]
    missing = sum(1 for value in values if value is None)
    if missing == len(values):
        return None
    if missing:
        raise ProfilerError(
            f"{missing} of {len(values)} records have no arrival_s: profile a batch trace (no arrivals) "
            "or a timed one, not a mix"
        )
    return np.asarray(values, dtype=np.float64)


def _profile(
    start_s: float,
    end_s: float,
    duration_s: float | None,
    arrivals: FloatArray | None,
    prompt: IntArray,
    output: IntArray,
    cached: IntArray,
    costs: PhaseCosts,
) -> WindowProfile:
    count = len(prompt)
    rate = None if duration_s is None else count / duration_s
    if count == 0:
        return WindowProfile(
            start_s, end_s, 0, rate, None, None, None, None, None, None, None, None, None, None, {}
        )
    prompt_pct = np.percentile(prompt, (50, 90, 99))
    output_pct = np.percentile(output, (50, 90, 99))
    prompt_sum = int(prompt.sum())
    prefill, decode = costs.prefill_gpu_s, costs.decode_gpu_s
    prefill_total, decode_total = float(prefill.sum()), float(decode.sum())
    gpu_total = prefill_total + decode_total
    share = prefill_total / gpu_total if gpu_total > 0.0 else 1.0
    class_counts = np.bincount(costs.class_index, minlength=len(CLASSES))
    return WindowProfile(
        start_s=start_s,
        end_s=end_s,
        request_count=count,
        arrival_rate_rps=rate,
        burstiness_cv=_burstiness_cv(arrivals),
        prompt_tokens_p50=float(prompt_pct[0]),
        prompt_tokens_p90=float(prompt_pct[1]),
        prompt_tokens_p99=float(prompt_pct[2]),
        output_tokens_p50=float(output_pct[0]),
        output_tokens_p90=float(output_pct[1]),
        output_tokens_p99=float(output_pct[2]),
        prefix_cache_share=int(cached.sum()) / prompt_sum if prompt_sum else 0.0,
        prefill_share=share,
        workload_class=classify_share(share),
        class_mix={name: float(class_counts[i]) / count for i, name in enumerate(CLASSES)},
        prefill_gpu_s=prefill_total,
        decode_gpu_s=decode_total,
        prefill_share_se=_share_standard_error(prefill, decode, share),
    )


def _burstiness_cv(arrivals: FloatArray | None) -> float | None:
    if arrivals is None or len(arrivals) < 3:
        return None
    gaps = np.diff(np.sort(arrivals))
    mean = float(gaps.mean())
    return float(gaps.std()) / mean if mean > 0.0 else None


def _share_standard_error(prefill: FloatArray, decode: FloatArray, share: float) -> float | None:
    # The ratio estimator's linearized variance: which class a window's share falls in is only as sure
    # as the share is, and a window of few requests can land on either side of a threshold by chance.
    count = len(prefill)
    total = prefill + decode
    gpu_total = float(total.sum())
    if count < 2 or gpu_total <= 0.0:
        return None
    residual = prefill - share * total
    variance = count / (count - 1) * float(np.dot(residual, residual)) / (gpu_total * gpu_total)
    return math.sqrt(variance)
