"""The instances a simulation runs: prefill-only workers, and serving workers that decode (and may prefill).

Every instance times its steps with its perf model. A serving worker advances a whole run of steps in
closed form (see series.py) and wakes only where its batch changes: a sequence finishes, a prompt's
prefill completes, or a newly queued request can join at the next step boundary (continuous batching).

KV memory: a request reserves its whole prompt plus output on admission and holds it until it finishes,
so nothing is ever preempted; a request whose reservation does not fit waits, first come first served.
This is more conservative than vLLM's paged allocation, which grows a sequence's blocks as it decodes (and
preempts when they run out): a decoding sequence holds less than it reserved here by the part of its
output still to come, on Azure conv about 8% of its reservation on average over its decode.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

from profiler.perfmodel import PerfModel, busy_power_w

from .ledger import Ledger
from .series import StepSeries

IDLE, DECODE, MIXED_RUN, STEP, PASS = range(5)
# Prompt length at which a prefill instance's speed is taken, for dispatch: near Azure conv's median.
_REFERENCE_PROMPT = 1024
# A decode batch at which serving instances' speeds are compared, for dispatch.
_REFERENCE_BATCH, _REFERENCE_CONTEXT = 32, 1024


class PowerMeter:
    """Watts an instance's GPUs draw in a step, cached by the step's shape (the busy fraction costs a step time)."""

    def __init__(self, perf: PerfModel) -> None:
        self.perf = perf
        self._watts: dict[tuple[int, int, int], float] = {}

    def watts(self, phase: str, batch: int, tokens_per_seq: int) -> float:
        """All of the instance's GPUs during a step of ``phase``; shapes within 32 tokens share a value."""
        key = (phase == "prefill", batch, tokens_per_seq >> 5)
        watts = self._watts.get(key)
        if watts is None:
            shape_tokens = max((tokens_per_seq >> 5) << 5, 1)
            busy = self.perf.busy_fraction(phase, batch, shape_tokens)
            watts = busy_power_w(self.perf.tier, phase, busy) * self.perf.tp
            self._watts[key] = watts
        return watts


def _nothing() -> None:
    pass


class Instance:
    """What both kinds of worker account: the pool it belongs to, its busy time and the energy it drew busy."""

    def __init__(self, ledger: Ledger, perf: PerfModel, pool: int) -> None:
        self.ledger = ledger
        self.perf = perf
        self.pool = pool
        self.power = PowerMeter(perf)
        self.busy_s = 0.0
        self.busy_energy_j = 0.0
        self.steps_run = 0  # forward passes simulated: prefill passes, mixed and decode steps
        self.load_changed: Callable[[], None] = _nothing  # set by the pool's dispatcher


class PrefillWorker(Instance):
    """A prefill-only instance: FCFS passes of waiting prompts up to the token budget, one at a time."""

    def __init__(
        self,
        ledger: Ledger,
        perf: PerfModel,
        pool: int,
        *,
        token_budget: int,
        on_prefilled: Callable[[PrefillWorker, list[int], float], None],
    ) -> None:
        super().__init__(ledger, perf, pool)
        self.token_budget = token_budget
        self.on_prefilled = on_prefilled
        self.queue: deque[int] = deque()
        self.outstanding_tokens = 0  # uncached tokens dispatched here and not yet prefilled
        self.busy = False
        self.s_per_token = (
            perf.prefill_time_from_sums_s(_REFERENCE_PROMPT, float(_REFERENCE_PROMPT) ** 2, 1)
            / _REFERENCE_PROMPT
        )

    def add(self, request: int, now: float) -> None:
        """Queue a prompt; start a pass if the instance is idle."""
        self.queue.append(request)
        self.outstanding_tokens += self.ledger.uncached[request]
        self.load_changed()
        if not self.busy:
            self._start_pass(now)

    def _start_pass(self, now: float) -> None:
        uncached, attention_sq = self.ledger.uncached, self.ledger.attention_sq
        queue, budget = self.queue, self.token_budget
        batch: list[int] = []
        tokens, sum_sq = 0, 0.0
        while queue and (not batch or tokens + uncached[queue[0]] <= budget):
            request = queue.popleft()
            batch.append(request)
            tokens += uncached[request]
            sum_sq += attention_sq[request]
        duration = self.perf.prefill_time_from_sums_s(tokens, sum_sq, len(batch))
        self.busy = True
        self.steps_run += 1
        self.busy_s += duration
        self.busy_energy_j += duration * self.power.watts("prefill", len(batch), tokens // len(batch))
        self.ledger.schedule(now + duration, self._pass_done, (batch, tokens))

    def _pass_done(self, done: tuple[list[int], int], now: float) -> None:
        batch, tokens = done
        self.outstanding_tokens -= tokens
        self.load_changed()
        self.busy = False
        self.on_prefilled(self, batch, now)
        if self.queue:
            self._start_pass(now)


class ServingWorker(Instance):
    """An instance that decodes with continuous batching: a decode instance of a disaggregated cluster
    (which also prefills the prompts routed to it locally) or a colocated one.

    Steps count decode iterations; a running request finishes at a known step, so its context and the
    batch's total context follow from the step count alone. With ``chunked`` every step carries the
    running decodes and prompt chunks up to ``chunk_tokens`` tokens in all; without, admitted prompts run
    in a prefill pass of their own (up to ``prefill_token_budget`` tokens) while the decodes wait.
    """

    def __init__(
        self,
        ledger: Ledger,
        perf: PerfModel,
        pool: int,
        *,
        max_seqs: int,
        chunked: bool,
        chunk_tokens: int,
        prefill_token_budget: int,
    ) -> None:
        super().__init__(ledger, perf, pool)
        self.max_seqs = max_seqs
        self.chunked = chunked
        self.chunk_tokens = chunk_tokens
        self.prefill_token_budget = prefill_token_budget
        self.kv_capacity = perf.kv_capacity_tokens
        self.reference_step_s = perf.decode_step_s(_REFERENCE_BATCH, _REFERENCE_BATCH * _REFERENCE_CONTEXT)
        self.step = 0  # decode iterations so far
        self.batch = 0  # running decodes
        self.context = 0  # their total context: the KV the next decode step reads
        self.kv_used = 0  # reserved by admitted requests
        self.finishing: list[tuple[int, int]] = []  # (step at which it finishes, request), a heap
        self.queue: deque[int] = deque()  # waiting for a slot and KV, FCFS
        self.prefilling: deque[list[int]] = deque()  # admitted prompts: [request, tokens left, tokens done]
        self.assigned = 0  # requests dispatched here and not finished, for dispatch
        self.kv_assigned = 0
        # the current phase: a run of steps from `start`
        self.kind = IDLE
        self.start = 0.0
        self.steps = 0
        self.series: StepSeries | None = None
        self.chunk = 0
        self.pieces: list[tuple[list[int], int]] = []
        self.step_decodes = False
        self.phase_w = 0.0
        self.version = 0
        self._decode_lines: dict[int, tuple[float, float, float, float]] = {}

    # --- requests in ---

    @property
    def load(self) -> float:
        """The larger of the shares of its sequence slots and of its KV that dispatched requests hold."""
        slots = self.assigned / self.max_seqs
        memory = self.kv_assigned / self.kv_capacity
        return slots if slots > memory else memory

    def assign(self, request: int) -> None:
        """Count a request dispatched here (its KV may still be on the way)."""
        self.assigned += 1
        self.kv_assigned += self.ledger.kv_need[request]
        self.load_changed()

    def add(self, request: int, now: float) -> None:
        """Queue a request whose KV is here (or that is prefilled here); it joins at the next step boundary."""
        queue = self.queue
        queue.append(request)
        if self.kind == IDLE:
            self._boundary(now)
        elif (
            len(queue) == 1
            and self.kind in (DECODE, MIXED_RUN)
            and self.batch + len(self.prefilling) < self.max_seqs
            and self.kv_used + self.ledger.kv_need[request] <= self.kv_capacity
        ):
            self._end_run_early(now)

    def _end_run_early(self, now: float) -> None:
        """End the current run at the first step boundary at or after ``now``, so a request can join there."""
        series = self.series
        assert series is not None
        steps = series.steps_by(now - self.start)
        if steps < self.steps:
            self.steps = steps
            self.version += 1
            self.ledger.schedule(self.start + series.total(steps), self._on_boundary, self.version)

    def _on_boundary(self, version: int, now: float) -> None:
        if version == self.version:
            self._boundary(now)

    def _boundary(self, now: float) -> None:
        if self.kind != IDLE:
            self._close_phase(now)
        self._admit()
        self._open_phase(now)

    # --- a phase ends ---

    def _close_phase(self, now: float) -> None:
        ledger = self.ledger
        duration = now - self.start
        self.busy_s += duration
        self.busy_energy_j += duration * self.phase_w
        kind, prefilled = self.kind, 0
        if kind in (DECODE, MIXED_RUN):
            self.steps_run += self.steps
            self.step += self.steps
            self.context += self.steps * self.batch
            if kind == MIXED_RUN:
                head = self.prefilling[0]
                head[1] -= self.steps * self.chunk
                head[2] += self.steps * self.chunk
                prefilled = head[1] == 0
        else:
            self.steps_run += 1
            if self.step_decodes:
                self.step += 1
                self.context += self.batch
            for entry, tokens in self.pieces:
                entry[1] -= tokens
                entry[2] += tokens
                prefilled += entry[1] == 0
        finishing, kv_need = self.finishing, ledger.kv_need
        while finishing and finishing[0][0] <= self.step:
            request = heapq.heappop(finishing)[1]
            self.batch -= 1
            self.context -= kv_need[request]  # its context at the end is its prompt plus its output
            self._release(request, now)
        for _ in range(prefilled):
            request = self.prefilling.popleft()[0]
            ledger.first_token_s[request] = now
            if ledger.output[request] == 1:
                self._release(request, now)
            else:
                self._join_decode(request)

    def _release(self, request: int, now: float) -> None:
        need = self.ledger.kv_need[request]
        self.kv_used -= need
        self.kv_assigned -= need
        self.assigned -= 1
        self.load_changed()
        self.ledger.finish(request, now)

    def _join_decode(self, request: int) -> None:
        """Add a request whose first token exists to the running batch, from the next step on."""
        ledger = self.ledger
        self.batch += 1
        self.context += ledger.prompt[request] + 1
        heapq.heappush(self.finishing, (self.step + ledger.output[request] - 1, request))

    def _admit(self) -> None:
        ledger, queue, prefilling = self.ledger, self.queue, self.prefilling
        pass_tokens = 0
        while queue:
            request = queue[0]
            need = ledger.kv_need[request]
            if self.batch + len(prefilling) >= self.max_seqs or self.kv_used + need > self.kv_capacity:
                break
            if ledger.local[request]:
                uncached = ledger.uncached[request]
                if not self.chunked:
                    if prefilling and pass_tokens + uncached > self.prefill_token_budget:
                        break
                    pass_tokens += uncached
                prefilling.append([request, uncached, ledger.prompt[request] - uncached])
            else:
                self._join_decode(request)
            queue.popleft()
            self.kv_used += need

    # --- a phase begins ---

    def _open_phase(self, now: float) -> None:
        self.start = now
        if self.prefilling:
            if not self.chunked:
                self._open_prefill_pass(now)
                return
            budget = self.chunk_tokens - self.batch
            if budget > 0:
                self._open_chunked(now, budget)
                return
        if self.batch > 0:
            self._open_decode_run(now)
        else:
            self.kind = IDLE

    def _open_prefill_pass(self, now: float) -> None:
        pieces = [(entry, entry[1]) for entry in self.prefilling]
        tokens, sum_sq = 0, 0.0
        for entry, left in pieces:
            tokens += left
            sum_sq += float(left) * left + 2.0 * left * entry[2]
        duration = self.perf.prefill_time_from_sums_s(tokens, sum_sq, len(pieces))
        self.kind, self.pieces, self.step_decodes = PASS, pieces, False
        self.phase_w = self.power.watts("prefill", len(pieces), tokens // len(pieces))
        self.ledger.schedule(now + duration, self._on_boundary, self.version)

    def _open_chunked(self, now: float, budget: int) -> None:
        head = self.prefilling[0]
        runs = head[1] // budget
        if self.batch > 0:
            runs = min(runs, self.finishing[0][0] - self.step)
        perf, batch, context, done = self.perf, self.batch, self.context, head[2]
        if runs >= 2:
            series = StepSeries.probe(
                runs,
                lambda k: perf.mixed_step_s(
                    budget, budget * (budget + 2.0 * (done + k * budget)), batch, context + k * batch
                ),
            )
            self.kind, self.series, self.steps, self.chunk = MIXED_RUN, series, runs, budget
            self.phase_w = self.power.watts("prefill", 1, budget + batch)
            self.ledger.schedule(now + series.total(runs), self._on_boundary, self.version)
            return
        pieces: list[tuple[list[int], int]] = []
        tokens, sum_sq, room = 0, 0.0, budget
        for entry in self.prefilling:
            take = entry[1] if entry[1] < room else room
            pieces.append((entry, take))
            tokens += take
            sum_sq += float(take) * take + 2.0 * take * entry[2]
            room -= take
            if room == 0:
                break
        duration = perf.mixed_step_s(tokens, sum_sq, batch, context)
        self.kind, self.pieces, self.step_decodes = STEP, pieces, batch > 0
        self.phase_w = self.power.watts("prefill", 1, tokens + batch)
        self.ledger.schedule(now + duration, self._on_boundary, self.version)

    def _open_decode_run(self, now: float) -> None:
        batch, context = self.batch, self.context
        steps = self.finishing[0][0] - self.step
        lines = self._decode_lines.get(batch)
        if lines is None:
            lines = self._lines_for(batch)
        left0, left_slope, right0, right_slope = lines
        series = StepSeries(
            steps,
            left0 + left_slope * context,
            left_slope * batch,
            right0 + right_slope * context,
            right_slope * batch,
        )
        self.kind, self.series, self.steps = DECODE, series, steps
        self.phase_w = self.power.watts("decode", batch, context // batch)
        self.ledger.schedule(now + series.total(steps), self._on_boundary, self.version)

    def _lines_for(self, batch: int) -> tuple[float, float, float, float]:
        """The decode step time of ``batch`` sequences as two lines in their total context (convex: the
        larger one holds), from the step times at the ends of the range the KV capacity allows."""
        step_s = self.perf.decode_step_s
        top = max(self.kv_capacity, 3)
        first, last = step_s(batch, 0), step_s(batch, top)
        left_slope = step_s(batch, 1) - first
        right_slope = last - step_s(batch, top - 1)
        lines = (first, left_slope, last - right_slope * top, right_slope)
        self._decode_lines[batch] = lines
        return lines
