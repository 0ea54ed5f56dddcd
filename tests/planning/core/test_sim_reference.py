"""The closed-form engine against a naive one that times every step: same semantics, same numbers.

The naive reference below walks one serving instance step by step (admit FCFS while a slot and the KV
reservation fit, then run one step: a prefill pass, a chunked mixed step or a decode step). It is far too
slow for real use, which is the point: the simulator must agree with it to rounding.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from controlplane.planning.core.sim import ClusterSpec, PoolSpec, Request, Slo, poisson_requests, simulate
from profiler import catalog
from profiler.perfmodel import PerfModel, default_efficiency

SLO = Slo(ttft_s=1.0, tpot_s=0.1)
LENGTHS = [(1800, 40), (300, 200), (900, 3), (60, 120), (2500, 1), (1200, 64)]


def naive_serving(perf, arrivals, requests, *, chunked, chunk_tokens, budget, max_seqs, local):
    """First-token and finish times of ``requests`` arriving (or their KV arriving) at ``arrivals``."""
    order = sorted(range(len(requests)), key=lambda r: arrivals[r])
    cap = perf.kv_capacity_tokens
    first, finish = {}, {}
    queue, prefilling, running = deque(), deque(), []
    kv_used, now, nxt = 0, 0.0, 0

    def need(r):
        return requests[r].prompt_tokens + requests[r].output_tokens

    def start_decode(r):
        running.append([r, requests[r].prompt_tokens + 1, requests[r].output_tokens - 1])

    def end_prefill(r):
        nonlocal kv_used
        first[r] = now
        if requests[r].output_tokens == 1:
            finish[r] = now
            kv_used -= need(r)
        else:
            start_decode(r)

    while len(finish) < len(requests):
        while nxt < len(order) and arrivals[order[nxt]] <= now:
            queue.append(order[nxt])
            nxt += 1
        pass_tokens = 0
        while queue and len(running) + len(prefilling) < max_seqs and kv_used + need(queue[0]) <= cap:
            r = queue[0]
            if local:
                uncached = max(requests[r].prompt_tokens - requests[r].cached_prompt_tokens, 1)
                if not chunked:
                    if prefilling and pass_tokens + uncached > budget:
                        break
                    pass_tokens += uncached
                prefilling.append([r, uncached, requests[r].prompt_tokens - uncached])
            else:
                start_decode(r)
            queue.popleft()
            kv_used += need(r)
        batch, context = len(running), sum(seq[1] for seq in running)
        if prefilling and not chunked:
            tokens = sum(entry[1] for entry in prefilling)
            sum_sq = sum(entry[1] ** 2 + 2 * entry[1] * entry[2] for entry in prefilling)
            now += perf.prefill_time_from_sums_s(tokens, sum_sq, len(prefilling))
            while prefilling:
                end_prefill(prefilling.popleft()[0])
            continue
        if prefilling and chunk_tokens - batch > 0:
            room, pieces = chunk_tokens - batch, []
            for entry in prefilling:
                take = min(entry[1], room)
                pieces.append((entry, take))
                room -= take
                if room == 0:
                    break
            tokens = sum(take for _, take in pieces)
            sum_sq = sum(take * take + 2 * take * entry[2] for entry, take in pieces)
            now += perf.mixed_step_s(tokens, sum_sq, batch, context)
        elif running:
            pieces = []
            now += perf.decode_step_s(batch, context)
        else:
            now = arrivals[order[nxt]]
            continue
        for seq in list(running):
            seq[1] += 1
            seq[2] -= 1
            if seq[2] == 0:
                running.remove(seq)
                finish[seq[0]] = now
                kv_used -= need(seq[0])
        for entry, take in pieces:
            entry[1] -= take
            entry[2] += take
        while prefilling and prefilling[0][1] == 0:
            end_prefill(prefilling.popleft()[0])
    return first, finish


def small_tier(name: str, memory_gb: float | None):
    tier = catalog.tier(name)
    return tier if memory_gb is None else dataclasses.replace(tier, memory_gb=memory_gb)


@pytest.mark.parametrize(
    ("chunked", "memory_gb", "rate"),
    [(False, None, 6.0), (True, None, 6.0), (False, 21.0, 4.0), (True, 21.0, 4.0), (True, None, 25.0)],
)
def test_a_colocated_instance_matches_the_step_by_step_reference(chunked, memory_gb, rate):
    tier = small_tier("H100-SXM-80GB", memory_gb)
    model = catalog.model("llama-3.1-8b")
    requests = poisson_requests(rate, count=300, lengths=LENGTHS, seed=3)
    requests = [
        dataclasses.replace(r, cached_prompt_tokens=r.prompt_tokens // 3) if i % 4 == 0 else r
        for i, r in enumerate(requests)
    ]
    cluster = ClusterSpec(
        model=model,
        pools=(PoolSpec(tier=tier, role="colocated"),),
        chunked_prefill=chunked,
        chunk_tokens=512,
        prefill_token_budget=4096,
        max_decode_batch=48,
    )
    result = simulate(cluster, requests, SLO)
    perf = PerfModel(model=model, tier=tier, efficiency=default_efficiency(tier.name))
    first, finish = naive_serving(
        perf,
        [r.arrival_s for r in requests],
        requests,
        chunked=chunked,
        chunk_tokens=512,
        budget=4096,
        max_seqs=48,
        local=True,
    )
    for index, request in enumerate(requests):
        assert result.ttft_s[index] == pytest.approx(first[index] - request.arrival_s, rel=1e-9, abs=1e-9)
        assert result.e2e_s[index] == pytest.approx(finish[index] - request.arrival_s, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("memory_gb", [None, 19.5])
def test_a_decode_instance_matches_the_reference_from_the_kv_arrivals(memory_gb):
    model = catalog.model("llama-3.1-8b")
    decode_tier = small_tier("A100-SXM-80GB", memory_gb)
    requests = [r for r in poisson_requests(12.0, count=400, lengths=LENGTHS, seed=5) if r.output_tokens > 1]
    cluster = ClusterSpec(
        model=model,
        pools=(
            PoolSpec.of("H100-SXM-80GB", role="prefill", count=2),
            PoolSpec(tier=decode_tier, role="decode"),
        ),
        max_decode_batch=64,
    )
    result = simulate(cluster, requests, SLO)
    kv_arrivals = [r.arrival_s + ttft for r, ttft in zip(requests, result.ttft_s, strict=True)]
    perf = PerfModel(model=model, tier=decode_tier, efficiency=default_efficiency(decode_tier.name))
    _, finish = naive_serving(
        perf, kv_arrivals, requests, chunked=True, chunk_tokens=512, budget=8192, max_seqs=64, local=False
    )
    for index, request in enumerate(requests):
        assert result.e2e_s[index] == pytest.approx(finish[index] - request.arrival_s, rel=1e-9, abs=1e-9)


def test_it_matches_a_lone_request_worked_by_hand():
    model = catalog.model("llama-3.1-8b")
    prefill = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")
    decode = PerfModel.for_names("llama-3.1-8b", "A100-SXM-80GB")
    cluster = ClusterSpec(
        model=model,
        pools=(PoolSpec.of("H100-SXM-80GB", role="prefill"), PoolSpec.of("A100-SXM-80GB", role="decode")),
        kv_link="infiniband",
    )
    result = simulate(cluster, [Request(0.0, 1000, 50)], SLO)
    ttft = prefill.prefill_time_s([1000]) + prefill.kv_transfer_s(1000, "infiniband")
    assert result.ttft_s[0] == pytest.approx(ttft, rel=1e-12)
    decoding = sum(decode.decode_step_s(1, 1000 + j) for j in range(1, 50))
    assert result.e2e_s[0] == pytest.approx(ttft + decoding, rel=1e-12)
