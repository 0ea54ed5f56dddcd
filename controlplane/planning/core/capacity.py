"""What one instance (a model on ``tp`` GPUs of a tier, in one role) carries within the SLO, in requests/s.

Capacities are in requests/s *of the whole workload* (a prefill instance that serves only the prompts above
the local-prefill threshold still counts per request of the whole stream), so a pool's capacity is the sum
of its instances' and the solver's constraints stay linear. The router splits a pool's load in proportion
to capacity, so every instance of a pool runs at the same share of its capacity.

Prefill: an M/G/1 queue per instance (Poisson arrivals stay Poisson when split). The waiting time has an
atom at zero of 1 - rho and an exponential tail fitted to the Pollaczek-Khinchine mean; a request's TTFT is
that wait plus its own pass and its KV transfer, and the capacity is the highest rate at which the share of
requests past the TTFT target stays within the phase's miss budget. Passes are timed unbatched, which
understates what batching gains under load: the simulator, not this model, has the last word.

Serving (decode, and colocated with chunked prefill): continuous batching up to B sequences. Every step
advances the batch by a token; a step that also carries a prompt chunk of ``chunk - B`` tokens is a mixed
step. Per request the instance spends (prompt tokens / chunk) mixed steps and (output - 1) / B decode steps
(at a full batch), so its time per request and the mean step time (the TPOT) follow in closed form; B is
the largest batch whose steps meet the TPOT target within KV capacity (reserved per request as prompt plus
output, as the simulator does), searched for the best rate where local prompts' TTFT binds too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from profiler.perfmodel import PerfModel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ROLES: tuple[str, ...] = ("prefill", "decode", "colocated")
_BISECTION_STEPS = 40
_RATE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LengthArrays:
    """A workload's length sample as arrays, with what every capacity reads of it."""

    prompt: FloatArray
    output: FloatArray
    uncached: FloatArray
    attention_sq: FloatArray
    decode_tokens_mean: float
    context_mean: float
    kv_mean: float
    kv_max: float

    @classmethod
    def of(cls, prompt: tuple[int, ...], output: tuple[int, ...], cached: tuple[int, ...]) -> LengthArrays:
        """The arrays of a sample; the uncached part of a fully cached prompt is one token, as engines run it."""
        p = np.asarray(prompt, dtype=np.float64)
        o = np.asarray(output, dtype=np.float64)
        u = np.maximum(p - np.asarray(cached, dtype=np.float64), 1.0)
        steps = np.maximum(o - 1.0, 0.0)
        weight = steps.sum()
        # Sequences hold a decode slot for (output - 1) steps: averages over running sequences weigh by it.
        if weight > 0:
            context = float((steps * (p + o / 2.0)).sum() / weight)
            kv = float((steps * (p + o)).sum() / weight)
        else:
            context = kv = float((p + o).mean())
        return cls(
            prompt=p,
            output=o,
            uncached=u,
            attention_sq=u * u + 2.0 * u * (p - u),
            decode_tokens_mean=float(steps.mean()),
            context_mean=max(context, 1.0),
            kv_mean=max(kv, 1.0),
            kv_max=float((p + o).max()),
        )

    def __len__(self) -> int:
        return len(self.prompt)


@dataclass(frozen=True)
class InstanceCapacity:
    """One instance kind's capacity within the SLO, and what it costs and draws.

    capacity_rps: requests/s of the whole workload one instance carries at the SLO, before headroom.
    busy_share: the share of time it computes at that rate (prefill); serving instances step whenever they
      hold a sequence, so theirs is 1.
    low_w, high_w: watts of the whole instance at a load near zero and at capacity; in between it is linear
      in the load (for prefill: idle plus busy share times the busy increment).
    limit: what bounds the capacity: "ttft", "tpot", "kv", "batch" or "throughput".
    """

    tier: str
    tp: int
    role: str
    capacity_rps: float
    gpus: int
    price_usd_per_h: float
    low_w: float
    high_w: float
    busy_share: float
    decode_batch: int
    limit: str

    def power_w(self, load_share: float) -> float:
        """Watts of the instance carrying ``load_share`` of its capacity."""
        share = min(max(load_share, 0.0), 1.0)
        return self.low_w + (self.high_w - self.low_w) * share


def _tail_miss(rate: float, s_mean: float, s2_mean: float, own_s: FloatArray, target_s: float) -> float:
    """Share of requests whose wait in an M/G/1 queue plus their own latency passes ``target_s``."""
    rho = rate * s_mean
    if rho >= 1.0:
        return 1.0
    slack = target_s - own_s
    late = slack < 0.0
    if rho <= 0.0:
        return float(late.mean())
    decay = 2.0 * (1.0 - rho) * s_mean / s2_mean
    return float(np.where(late, 1.0, rho * np.exp(-decay * np.maximum(slack, 0.0))).mean())


@dataclass(frozen=True)
class PrefillTimes:
    """Each request's prefill pass alone (``solo_s``), and the part of it that is the request's own work in
    a shared pass (``work_s``); the rest (overheads, the weight read's floor) a batched pass pays once."""

    solo_s: FloatArray
    work_s: FloatArray

    @property
    def shared_s(self) -> FloatArray:
        return self.solo_s - self.work_s


def prefill_pass_times(perf: PerfModel, arrays: LengthArrays) -> PrefillTimes:
    """Each request's prefill pass on this instance, alone and as its marginal share of a batched pass."""
    cache: dict[tuple[float, float], tuple[float, float]] = {}
    solo = np.empty(len(arrays))
    work = np.empty(len(arrays))
    pairs = zip(arrays.uncached.tolist(), arrays.attention_sq.tolist(), strict=True)
    for index, (tokens, sum_sq) in enumerate(pairs):
        key = (tokens, sum_sq)
        value = cache.get(key)
        if value is None:
            alone = perf.prefill_time_from_sums_s(int(tokens), sum_sq, 1)
            twice = perf.prefill_time_from_sums_s(2 * int(tokens), 2.0 * sum_sq, 2)
            value = (alone, min(max(twice - alone, 0.0), alone))
            cache[key] = value
        solo[index], work[index] = value
    return PrefillTimes(solo, work)


def kv_transfer_times(perf: PerfModel, arrays: LengthArrays, link: str) -> FloatArray:
    """Each request's KV transfer from this (prefill) instance; none for a one-token answer."""
    per_token = perf.kv_transfer_s(2, link) - perf.kv_transfer_s(1, link)
    latency = perf.kv_transfer_s(1, link) - per_token
    return np.where(arrays.output > 1, latency + per_token * arrays.prompt, 0.0)


@dataclass(frozen=True)
class _PrefillQueue:
    """The moments of a prefill queue's work and fixed parts, and the per-request pieces of its TTFT."""

    work: FloatArray
    shared: FloatArray
    extra: FloatArray
    work_mean: float
    shared_mean: float
    work_sq: float
    cross: float
    shared_sq: float
    max_batch: float

    @classmethod
    def of(cls, work: FloatArray, shared: FloatArray, extra: FloatArray, max_batch: float) -> _PrefillQueue:
        return cls(
            work, shared, extra, float(work.mean()), float(shared.mean()), float((work * work).mean()),
            float((work * shared).mean()), float((shared * shared).mean()), max_batch,
        )

    def miss(self, rate: float, target_s: float) -> tuple[float, float]:
        """The TTFT miss share at ``rate`` of a queue whose passes take all that waits, and its utilization.

        The mean batch is one plus the mean queue length (Little: rate times the M/G/1 mean wait); a larger
        batch shortens the wait, so the batch is the fixed point of a decreasing map, found by bisection.
        Each request pays its own work plus its share of the pass's fixed part, and waits for its whole pass
        (its batch-mates' work included) and its KV transfer (``extra``).
        """

        def moments(batch: float) -> tuple[float, float]:
            return (
                self.work_mean + self.shared_mean / batch,
                self.work_sq + 2.0 * self.cross / batch + self.shared_sq / (batch * batch),
            )

        def implied(batch: float) -> float:
            s_mean, s2_mean = moments(batch)
            rho = rate * s_mean
            return math.inf if rho >= 1.0 else 1.0 + rate * rate * s2_mean / (2.0 * (1.0 - rho))

        if implied(self.max_batch) >= self.max_batch:
            batch = self.max_batch
        else:
            low, high = 1.0, self.max_batch
            for _ in range(30):
                middle = (low + high) / 2.0
                if implied(middle) > middle:
                    low = middle
                else:
                    high = middle
            batch = high
        s_mean, s2_mean = moments(batch)
        if rate * s_mean >= 1.0:
            return 1.0, 1.0
        own = self.work + self.shared + ((batch - 1.0) * self.work_mean) + self.extra
        return _tail_miss(rate, s_mean, s2_mean, own, target_s), rate * s_mean


def prefill_capacity(
    perf: PerfModel,
    arrays: LengthArrays,
    times: PrefillTimes,
    remote: BoolArray,
    *,
    ttft_s: float,
    quantile: float,
    link: str,
    token_budget: int,
) -> InstanceCapacity | None:
    """A prefill instance's capacity for the ``remote`` requests (those above the local threshold).

    None where the instance cannot serve them at all: a prompt that overflows its KV cache, or a TTFT
    target its own passes miss too often even with no queue.
    """
    share = float(remote.mean())
    if share == 0.0 or arrays.prompt[remote].max() > perf.kv_capacity_tokens:
        return None
    queue = _PrefillQueue.of(
        times.work_s[remote], times.shared_s[remote], kv_transfer_times(perf, arrays, link)[remote],
        max(token_budget / float(arrays.uncached[remote].mean()), 1.0),
    )
    miss_budget = 1.0 - quantile
    if queue.miss(0.0, ttft_s)[0] > miss_budget:
        return None
    low, high = 0.0, 1.0 / max(queue.work_mean, 1e-9)
    for _ in range(_BISECTION_STEPS):
        if high - low <= _RATE_TOLERANCE * high:
            break
        middle = (low + high) / 2.0
        if queue.miss(middle, ttft_s)[0] <= miss_budget:
            low = middle
        else:
            high = middle
    if low <= 0.0:
        return None
    busy_share = min(queue.miss(low, ttft_s)[1], 1.0)
    tier, tp = perf.tier, perf.tp
    mean_tokens = max(int(arrays.uncached[remote].mean()), 1)
    busy_w = perf.power_w("prefill", 1.0, 1, tokens_per_seq=mean_tokens) * tp
    idle_w = tier.idle_w * tp
    return InstanceCapacity(
        tier=tier.name,
        tp=tp,
        role="prefill",
        capacity_rps=low / share,
        gpus=tp,
        price_usd_per_h=tier.price_usd_per_gpu_h * tp,
        low_w=idle_w,
        high_w=idle_w + (busy_w - idle_w) * busy_share,
        busy_share=busy_share,
        decode_batch=0,
        limit="ttft",
    )


@dataclass(frozen=True)
class _ServingState:
    """A serving instance at one arrival rate: its mean batch, step times, and what it keeps within."""

    batch: float
    chunk_busy: float  # share of time in mixed steps
    mixed_s: float
    decode_s: float
    feasible: bool
    limit: str


def serving_capacity(
    perf: PerfModel,
    arrays: LengthArrays,
    local: BoolArray,
    *,
    role: str,
    ttft_s: float,
    tpot_s: float,
    quantile: float,
    chunk_tokens: int,
    max_seqs: int,
) -> InstanceCapacity | None:
    """A decode instance's capacity (prefilling the ``local`` prompts in its steps), or a colocated one's
    (``local`` all true). None where no load meets the TPOT target or the sample does not fit its KV."""
    if arrays.kv_max > perf.kv_capacity_tokens:
        return None
    kv_batch = int(perf.kv_capacity_tokens // arrays.kv_mean)
    has_local = bool(local.any())
    top = min(max_seqs, kv_batch, chunk_tokens - 1 if has_local else max_seqs)
    if top < 1:
        return None
    count = len(arrays)
    local_uncached = arrays.uncached[local]
    prefill_per_request = float(local_uncached.sum()) / count
    per_token_sq = float(arrays.attention_sq[local].sum()) / float(local_uncached.sum()) if has_local else 0.0
    local_share = float(local.mean())
    decode_per_request = arrays.decode_tokens_mean
    miss_budget = 1.0 - quantile

    def steps_at(batch: float) -> tuple[float, float, int]:
        whole = max(math.ceil(batch), 1)
        context = int(whole * arrays.context_mean)
        decode_s = perf.decode_step_s(whole, context)
        if not has_local:
            return decode_s, 0.0, 0
        chunk = max(chunk_tokens - whole, 1)
        return decode_s, perf.mixed_step_s(chunk, chunk * per_token_sq, whole, context), chunk

    def state(rate: float) -> _ServingState:
        # Continuous batching: each step moves the batch a token, so batch = decode tokens/s over steps/s;
        # the steps/s depend on the batch: a few fixed-point rounds settle it.
        batch, decode_s, mixed_s, chunk, chunk_busy = 1.0, 0.0, 0.0, 0, 0.0
        for _ in range(12):
            decode_s, mixed_s, chunk = steps_at(batch)
            chunk_steps = rate * prefill_per_request / chunk if chunk else 0.0
            chunk_busy = chunk_steps * mixed_s
            if chunk_busy >= 1.0:
                return _ServingState(batch, chunk_busy, mixed_s, decode_s, False, "throughput")
            steps = chunk_steps + (1.0 - chunk_busy) / decode_s
            settled, batch = batch, max(rate * decode_per_request / steps, 1.0)
            if abs(batch - settled) <= 0.01 * settled:
                break
        if batch > top:
            limit = "kv" if top == kv_batch else "batch" if top == max_seqs else "throughput"
            return _ServingState(batch, chunk_busy, mixed_s, decode_s, False, limit)
        if decode_s > tpot_s or mixed_s > tpot_s:
            return _ServingState(batch, chunk_busy, mixed_s, decode_s, False, "tpot")
        if has_local and rate > 0.0:
            # local prompts queue for the chunk stream: their TTFT is that wait plus their own chunks
            service = local_uncached / chunk * mixed_s
            own = np.ceil(local_uncached / chunk) * mixed_s
            local_rate = rate * local_share
            if _tail_miss(local_rate, float(service.mean()), float((service * service).mean()), own, ttft_s) > (
                miss_budget
            ):
                return _ServingState(batch, chunk_busy, mixed_s, decode_s, False, "ttft")
        return _ServingState(batch, chunk_busy, mixed_s, decode_s, True, "")

    idle = state(0.0)
    if not idle.feasible:
        return None
    low, high = 0.0, 1.0
    while state(high).feasible and high < 1e7:
        low, high = high, high * 2.0
    for _ in range(_BISECTION_STEPS):
        if high - low <= _RATE_TOLERANCE * high:
            break
        middle = (low + high) / 2.0
        if state(middle).feasible:
            low = middle
        else:
            high = middle
    if low <= 0.0:
        return None
    at_capacity = state(low)
    limit = state(high).limit or "throughput"
    tier, tp = perf.tier, perf.tp
    whole = max(math.ceil(at_capacity.batch), 1)
    context_per_seq = max(int(arrays.context_mean), 1)
    decode_w = perf.power_w("decode", 1.0, whole, tokens_per_seq=context_per_seq)
    busy_w = decode_w
    if has_local:
        mixed_w = perf.power_w("prefill", 1.0, 1, tokens_per_seq=chunk_tokens)
        busy_w = mixed_w * at_capacity.chunk_busy + decode_w * (1.0 - at_capacity.chunk_busy)
    return InstanceCapacity(
        tier=tier.name,
        tp=tp,
        role=role,
        capacity_rps=low,
        gpus=tp,
        price_usd_per_h=tier.price_usd_per_gpu_h * tp,
        low_w=tier.idle_w * tp,
        high_w=busy_w * tp,
        busy_share=1.0,
        decode_batch=whole,
        limit=limit,
    )


def fastest_decode_step_s(perf: PerfModel, arrays: LengthArrays) -> float:
    """The decode step of a single sequence of the sample's mean context: the least TPOT this instance allows."""
    return perf.decode_step_s(1, int(arrays.context_mean))


def prefill_quantile_s(times: PrefillTimes, quantile: float) -> float:
    """The ``quantile`` of the requests' own prefill passes on an idle instance: the least TTFT it allows."""
    return float(np.quantile(times.solo_s, quantile))
