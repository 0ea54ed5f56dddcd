"""The simulated engine's scheduler: continuous batching timed by the perf model, on one asyncio task.

Each step, as vLLM V1 schedules one: every running sequence past its prefill decodes one token, and
prompt chunks fill what is left of the token budget (``max_num_batched_tokens``), oldest request
first. The step lasts the perf model's time for that batch (a prefill pass, a decode step, or a mixed
chunked-prefill step) times ``time_scale``, then its tokens are handed to the requests. Roles need no
special case: a prefill worker's requests ask for one token, made by the prefill pass itself; a
decode worker's requests carry their KV from elsewhere and start decoding once it has arrived.

KV is reserved whole at admission (prompt plus every token the request will generate), so nothing is
ever preempted: a request waits, first come first served, until its reservation fits and a sequence
slot (``max_num_seqs``) is free. The reported usage is the KV actually written (prompt chunks
computed or transferred, tokens generated), as vLLM reports its allocated blocks. A prefill worker
keeps a finished request's KV for the transfer time, while the decode worker pulls it. KV transfers
into a decode worker queue on its link, one after another, each for ``PerfModel.kv_transfer_s``.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from dataclasses import dataclass, field

from agents.engines.metrics import SimActivity
from profiler.perfmodel import PerfModel

# vLLM's time-to-first-token buckets; below 10 ms the sim adds finer bounds to vLLM's inter-token
# ones, so that a fast decode (or a small time scale) still reads as a percentile and not one bucket.
TTFT_BOUNDS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BOUNDS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip

# A step that starts within this many seconds after the previous one's planned end starts at that end:
# the event loop's timer jitter is absorbed instead of piling up. A longer lag (an overloaded CPU) is
# lost rather than caught up, so tokens never come faster than the model says.
MAX_LAG_S = 0.005


class CapacityError(ValueError):
    """A request that could never fit this worker's KV cache."""


@dataclass(eq=False)
class SimRequest:
    """One request on this worker, and its progress. ``output_tokens`` are those this worker makes."""

    prompt_tokens: int
    output_tokens: int
    arrival_s: float
    remote_prefill: bool = False
    hold_kv_s: float = 0.0
    notify_each_token: bool = True
    computed: int = 0
    generated: int = 0
    first_token_s: float | None = None
    last_token_s: float | None = None
    finished: bool = False
    cancelled: bool = False
    kv_reserved: int = 0
    kv_written: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def kv_need(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def decoding(self) -> bool:
        return self.computed >= self.prompt_tokens and not self.finished


@dataclass
class LatencyHistogram:
    """Observations in fixed buckets (non-cumulative counts; the last bucket is +Inf)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total_s: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value_s: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value_s)] += 1
        self.total_s += value_s
        self.count += 1


@dataclass
class SimStats:
    """The counters and histograms ``/metrics`` shows."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    requests_finished: int = 0
    ttft: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(TTFT_BOUNDS_S))
    itl: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(ITL_BOUNDS_S))
    prefill_busy_s: float = 0.0
    decode_busy_s: float = 0.0
    prefill_steps: int = 0
    decode_steps: int = 0
    prefill_tokens: int = 0
    decode_seqs: int = 0
    decode_context_tokens: int = 0

    def activity(self) -> SimActivity:
        """The step counters as the ``cleave_sim_*`` metrics report them."""
        return SimActivity(
            self.prefill_busy_s,
            self.decode_busy_s,
            self.prefill_steps,
            self.decode_steps,
            self.prefill_tokens,
            self.decode_seqs,
            self.decode_context_tokens,
        )


@dataclass(frozen=True)
class SchedulerConfig:
    """The engine limits a simulated worker runs under."""

    kv_capacity_tokens: int
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    time_scale: float = 1.0
    kv_link: str = "nvlink"


@dataclass(frozen=True)
class Step:
    """One forward pass: the sequences that decode a token, and the prompt chunks computed."""

    decodes: tuple[SimRequest, ...]
    chunks: tuple[tuple[SimRequest, int], ...]
    prefill_tokens: int
    prefill_sum_sq: float
    decode_context_tokens: int


class SimScheduler:
    """Admits requests, forms each step, sleeps its modelled time and hands out the tokens."""

    def __init__(self, perf: PerfModel, config: SchedulerConfig) -> None:
        if config.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {config.time_scale}")
        self.perf = perf
        self.config = config
        self.stats = SimStats()
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.transferring = 0
        self.kv_reserved = 0
        self.kv_written = 0
        self._link_free_s = 0.0
        self._work = asyncio.Event()

    # --- requests in and out ---

    def submit(self, request: SimRequest) -> None:
        """Queue a request; CapacityError when it could never fit the KV cache."""
        if request.kv_need > self.config.kv_capacity_tokens:
            raise CapacityError(
                f"the request needs {request.kv_need} tokens of KV cache ({request.prompt_tokens} prompt, "
                f"{request.output_tokens} output) and this worker holds {self.config.kv_capacity_tokens}"
            )
        self.waiting.append(request)
        self._work.set()

    def cancel(self, request: SimRequest) -> None:
        """Drop a request whose client went away, and free what it held."""
        if request.finished:
            return
        request.cancelled = request.finished = True
        if request.kv_reserved == 0:
            self.waiting.remove(request)
            return
        if request in self.running:
            self.running.remove(request)
        self._release(request)

    @property
    def requests_running(self) -> int:
        return len(self.running)

    @property
    def requests_waiting(self) -> int:
        # As vLLM counts them: requests whose KV is still arriving wait too.
        return len(self.waiting) + self.transferring

    @property
    def kv_cache_usage(self) -> float:
        return (
            min(self.kv_written / self.config.kv_capacity_tokens, 1.0)
            if self.config.kv_capacity_tokens
            else 0.0
        )

    # --- the loop ---

    async def run(self) -> None:
        """Drive steps until cancelled: the engine's one loop task."""
        loop = asyncio.get_running_loop()
        previous_end: float | None = None
        while True:
            step = self.plan_step(loop.time())
            if step is None:
                self._work.clear()
                await self._work.wait()
                previous_end = None
                continue
            model_s, prefill_share = self.step_time_s(step)
            wall_s = model_s * self.config.time_scale
            now = loop.time()
            start = previous_end if previous_end is not None and now - previous_end <= MAX_LAG_S else now
            end = start + wall_s
            # Sleep even when late: the HTTP handlers need the loop between steps.
            await asyncio.sleep(max(end - loop.time(), 0.0))
            self.finish_step(step, loop.time(), wall_s, prefill_share)
            previous_end = end

    def plan_step(self, now_s: float) -> Step | None:
        """Admit what fits, then the next step's batch; None when there is nothing to compute."""
        self._admit(now_s)
        budget = self.config.max_num_batched_tokens
        decodes = [request for request in self.running if request.decoding][:budget]
        budget -= len(decodes)
        chunks: list[tuple[SimRequest, int]] = []
        prefill_tokens, prefill_sum_sq = 0, 0.0
        for request in self.running:
            if budget <= 0:
                break
            if request.finished or request.computed >= request.prompt_tokens:
                continue
            chunk = min(request.prompt_tokens - request.computed, budget)
            chunks.append((request, chunk))
            budget -= chunk
            prefill_tokens += chunk
            # Causal attention over the chunk reaches back over everything computed before it.
            done = float(request.computed)
            prefill_sum_sq += (done + chunk) ** 2 - done**2
        if not decodes and not chunks:
            return None
        context = sum(request.prompt_tokens + request.generated for request in decodes)
        return Step(tuple(decodes), tuple(chunks), prefill_tokens, prefill_sum_sq, context)

    def step_time_s(self, step: Step) -> tuple[float, float]:
        """The step's model seconds, and the share of them spent on prefill."""
        perf = self.perf
        decode_batch = len(step.decodes)
        prefill_alone = perf.prefill_time_from_sums_s(
            step.prefill_tokens, step.prefill_sum_sq, len(step.chunks)
        )
        decode_alone = perf.decode_step_s(decode_batch, step.decode_context_tokens)
        if not step.chunks:
            return decode_alone, 0.0
        if not decode_batch:
            return prefill_alone, 1.0
        mixed = perf.mixed_step_s(
            step.prefill_tokens, step.prefill_sum_sq, decode_batch, step.decode_context_tokens
        )
        return mixed, prefill_alone / (prefill_alone + decode_alone)

    def finish_step(self, step: Step, now_s: float, wall_s: float, prefill_share: float) -> None:
        """Account the step and hand its tokens to the requests."""
        stats = self.stats
        stats.prefill_busy_s += wall_s * prefill_share
        stats.decode_busy_s += wall_s * (1.0 - prefill_share)
        if step.chunks:
            stats.prefill_steps += 1
            stats.prefill_tokens += step.prefill_tokens
        if step.decodes:
            stats.decode_steps += 1
            stats.decode_seqs += len(step.decodes)
            stats.decode_context_tokens += step.decode_context_tokens
        for request, chunk in step.chunks:
            if request.cancelled:
                continue
            request.computed += chunk
            self._write(request, chunk)
            if request.computed >= request.prompt_tokens:
                self._token(request, now_s)
        for request in step.decodes:
            if not request.cancelled:
                self._write(request, 1)
                self._token(request, now_s)
        if any(request.finished for request in self.running):
            self.running = [request for request in self.running if not request.finished]

    # --- inside ---

    def _admit(self, now_s: float) -> None:
        config = self.config
        while self.waiting:
            request = self.waiting[0]
            if len(self.running) + self.transferring >= config.max_num_seqs:
                return
            if self.kv_reserved + request.kv_need > config.kv_capacity_tokens:
                return
            self.waiting.popleft()
            request.kv_reserved = request.kv_need
            self.kv_reserved += request.kv_need
            if request.remote_prefill:
                self._start_transfer(request, now_s)
            else:
                self.running.append(request)

    def _start_transfer(self, request: SimRequest, now_s: float) -> None:
        loop = asyncio.get_running_loop()
        seconds = self.perf.kv_transfer_s(request.prompt_tokens, self.config.kv_link) * self.config.time_scale
        start = max(now_s, self._link_free_s)
        self._link_free_s = start + seconds
        self.transferring += 1
        loop.call_at(start + seconds, self._transfer_done, request)

    def _transfer_done(self, request: SimRequest) -> None:
        self.transferring -= 1
        if request.cancelled:
            return
        request.computed = request.prompt_tokens
        self._write(request, request.prompt_tokens)
        self.running.append(request)
        self._work.set()

    def _write(self, request: SimRequest, tokens: int) -> None:
        request.kv_written += tokens
        self.kv_written += tokens

    def _token(self, request: SimRequest, now_s: float) -> None:
        stats = self.stats
        if request.first_token_s is None:
            request.first_token_s = now_s
            stats.ttft.observe(now_s - request.arrival_s)
            stats.prompt_tokens += request.prompt_tokens
        else:
            stats.itl.observe(now_s - (request.last_token_s or now_s))
        request.last_token_s = now_s
        request.generated += 1
        stats.generation_tokens += 1
        if request.generated >= request.output_tokens:
            request.finished = True
            stats.requests_finished += 1
            if request.hold_kv_s > 0:
                asyncio.get_running_loop().call_later(request.hold_kv_s, self._release, request)
            else:
                self._release(request)
            request.wakeup.set()
        elif request.notify_each_token:
            request.wakeup.set()

    def _release(self, request: SimRequest) -> None:
        self.kv_reserved -= request.kv_reserved
        self.kv_written -= request.kv_written
        request.kv_reserved = request.kv_written = 0
        self._work.set()
