"""The discrete-event loop: requests arrive, are dispatched to instances, prefilled, moved and decoded.

Disaggregated: a request goes to the prefill instance with the least outstanding work in seconds (its
queued uncached tokens, plus this prompt's, at the instance's own speed), is batched FCFS up to the token
budget, and when its pass ends its KV cache crosses ``kv_link`` to the least loaded decode instance where
it fits. Its first token reaches the client when the transfer ends (as Cleave's router counts it: vLLM's
prefill worker makes the token, but the router streams it once the decode side holds the KV). The
transfer is a delay, PerfModel.kv_transfer_s of the prefill instance's shards: transfers do not contend
for a link, and a prefill instance does not hold a prompt's KV while it is sent. A prompt
with at most ``local_prefill_threshold`` uncached tokens skips the prefill pool and the transfer: its
decode instance prefills it in chunks inside its decode steps. A one-token output needs no decode and no
transfer: it ends with its prefill pass.

Colocated: a request goes to the least loaded instance, which prefills and decodes it (see
ServingWorker for chunked and unchunked prefill).

"Least loaded" for a decode-capable instance is the larger of its share of sequence slots and of KV
capacity taken by what is dispatched to it. Each pool offers its least loaded instance (dispatch.py);
among those the request goes to the one whose load with the request, times its decode step time at a
reference batch, is lowest, so a slower pool takes proportionally less. Where some instances are too
small for a request, every instance that can hold it is compared instead.

Cost: each request makes O(1) events (its arrival, its prefill pass's end, its KV's arrival, the step
boundary where it joins a batch, its finish), each O(log events) in the heap, plus O(pools x log
instances) to pick where it goes. Arrivals stream from the sorted requests and never enter the heap.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

from .dispatch import LeastLoaded
from .ledger import Ledger
from .metrics import SimResult, build_result
from .spec import ClusterSpec, SimulationError, Slo
from .workers import Instance, PrefillWorker, ServingWorker
from .workload import Request

W = TypeVar("W", bound=Instance)


def simulate(
    cluster: ClusterSpec,
    requests: Sequence[Request],
    slo: Slo,
    *,
    prices_usd_per_gpu_h: Mapping[str, float] | None = None,
    seed: int = 0,
) -> SimResult:
    """Serve ``requests`` on ``cluster`` and report latencies, SLO attainment, throughput, energy and cost.

    Deterministic: the same input gives the same result. ``seed`` is accepted for the callers that thread
    one through; the loop itself draws nothing at random (ties in dispatch go to the first instance).
    Prices are per GPU-hour by tier name; a tier not in ``prices_usd_per_gpu_h`` costs its own price.
    Raises SimulationError (a ProfilerError) for input it cannot serve, and the perf model's
    ConfigurationError, with the pool named, for a model that cannot run on a pool.
    """
    del seed
    if not isinstance(slo, Slo):
        raise SimulationError(f"slo must be a Slo, got {type(slo).__name__}")
    if len(requests) == 0:
        raise SimulationError("no requests to simulate: the request list is empty")
    loop = _Loop(cluster, requests)
    loop.run()
    return build_result(
        cluster, requests, slo, loop.ledger, loop.instances, prices_usd_per_gpu_h, events=loop.events
    )


class _Loop:
    def __init__(self, cluster: ClusterSpec, requests: Sequence[Request]) -> None:
        self.cluster = cluster
        self.requests = requests
        self.ledger = Ledger(requests)
        self.prefill: list[PrefillWorker] = []
        self.serving: list[ServingWorker] = []
        disaggregated = cluster.disaggregated
        for index, pool in enumerate(cluster.pools):
            if pool.count == 0:
                continue
            perf = pool.perf_model(cluster.model, cluster.dtype)
            if perf.kv_capacity_tokens < 1:
                raise SimulationError(f"pool {pool.label}: no GPU memory is left for the KV cache")
            for _ in range(pool.count):
                if pool.role == "prefill":
                    self.prefill.append(
                        PrefillWorker(
                            self.ledger,
                            perf,
                            index,
                            token_budget=cluster.prefill_token_budget,
                            on_prefilled=self._prefilled,
                        )
                    )
                else:
                    self.serving.append(
                        ServingWorker(
                            self.ledger,
                            perf,
                            index,
                            max_seqs=cluster.max_decode_batch,
                            # vLLM's V1 engine chunks every prefill, a decode instance's local ones included
                            chunked=cluster.chunked_prefill or disaggregated,
                            chunk_tokens=cluster.chunk_tokens,
                            prefill_token_budget=cluster.prefill_token_budget,
                        )
                    )
        self.instances: list[Instance] = [*self.prefill, *self.serving]
        self.prefill_pools = [
            LeastLoaded(members, _outstanding_tokens) for members in _by_pool(self.prefill) if members
        ]
        self.serving_pools = [LeastLoaded(members, _load) for members in _by_pool(self.serving) if members]
        self._check_fits()
        self.local_threshold = cluster.local_prefill_threshold if disaggregated else math.inf
        self.link = cluster.kv_link
        self.events = 0

    def _check_fits(self) -> None:
        """Refuse a request that no instance could ever hold, instead of letting it wait forever."""
        ledger = self.ledger
        largest = max(worker.kv_capacity for worker in self.serving)
        worst = max(range(len(ledger.kv_need)), key=ledger.kv_need.__getitem__)
        if ledger.kv_need[worst] > largest:
            raise SimulationError(
                f"request {worst} needs {ledger.kv_need[worst]} KV tokens (prompt plus output) but the "
                f"largest decode-capable instance holds {largest}; fit the lengths to the model's context "
                "or give the pools more memory (TP)"
            )
        self.uniform_fit = all(worker.kv_capacity >= ledger.kv_need[worst] for worker in self.serving)
        if self.prefill:
            longest = max(ledger.prompt)
            smallest = min(worker.perf.kv_capacity_tokens for worker in self.prefill)
            if longest > smallest:
                raise SimulationError(
                    f"a {longest}-token prompt does not fit the KV cache of a prefill instance, which holds "
                    f"{smallest} tokens; fit the lengths to the model's context or give the pool more TP"
                )

    def run(self) -> None:
        ledger, requests = self.ledger, self.requests
        heap, pop = ledger.heap, heapq.heappop
        order = sorted(range(len(requests)), key=lambda index: requests[index].arrival_s)
        events = len(order)
        for request in order:
            now = requests[request].arrival_s
            while heap and heap[0][0] <= now:
                at, _, handler, arg = pop(heap)
                handler(arg, at)
                events += 1
            ledger.arrive(now)
            self._dispatch(request, now)
        while heap:
            at, _, handler, arg = pop(heap)
            handler(arg, at)
            events += 1
        self.events = events
        unfinished = sum(1 for finish in ledger.finish_s if finish != finish)
        if unfinished:
            raise SimulationError(f"internal error: {unfinished} requests never finished")

    def _dispatch(self, request: int, now: float) -> None:
        ledger = self.ledger
        if not self.prefill or ledger.uncached[request] <= self.local_threshold:
            worker = self._serving_for(request)
            ledger.local[request] = 1
            worker.assign(request)
            worker.add(request, now)
            return
        tokens = ledger.uncached[request]
        best, best_s = self.prefill[0], math.inf
        for pool in self.prefill_pools:
            candidate = pool.least()
            seconds = (candidate.outstanding_tokens + tokens) * candidate.s_per_token
            if seconds < best_s:
                best, best_s = candidate, seconds
        best.add(request, now)

    def _serving_for(self, request: int) -> ServingWorker:
        need = self.ledger.kv_need[request]
        candidates = (
            (pool.least() for pool in self.serving_pools)
            if self.uniform_fit
            else (worker for worker in self.serving if worker.kv_capacity >= need)
        )
        best, best_load = self.serving[0], math.inf
        for worker in candidates:
            slots = (worker.assigned + 1) / worker.max_seqs
            memory = (worker.kv_assigned + need) / worker.kv_capacity
            load = (slots if slots > memory else memory) * worker.reference_step_s
            if load < best_load:
                best, best_load = worker, load
        return best

    def _prefilled(self, worker: PrefillWorker, batch: list[int], now: float) -> None:
        ledger = self.ledger
        output, prompt, first_token = ledger.output, ledger.prompt, ledger.first_token_s
        transfer_s = worker.perf.kv_transfer_s
        for request in batch:
            if output[request] == 1:
                first_token[request] = now
                ledger.finish(request, now)
                continue
            target = self._serving_for(request)
            target.assign(request)
            arrival = now + transfer_s(prompt[request], self.link)
            first_token[request] = arrival
            ledger.schedule(arrival, target.add, request)


def _by_pool(workers: Sequence[W]) -> list[list[W]]:
    pools: dict[int, list[W]] = {}
    for worker in workers:
        pools.setdefault(worker.pool, []).append(worker)
    return list(pools.values())


def _outstanding_tokens(worker: PrefillWorker) -> float:
    return float(worker.outstanding_tokens)


def _load(worker: ServingWorker) -> float:
    return worker.load
