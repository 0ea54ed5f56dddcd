"""Worker choice: weighted least outstanding work, prefix affinity within a load bound, no open breakers."""

from __future__ import annotations

import random

import pytest

from agents.router.plan import Endpoint
from agents.router.policy import (
    AFFINITY_LOAD_FACTOR,
    Balancer,
    PromptError,
    prefix_key,
    read_messages,
    read_prompt,
)


def worker(name: str, weight: float = 1.0) -> Endpoint:
    return Endpoint(worker=f"n/{name}", pool="decode", url=f"http://{name}", weight=weight)


A, B, C = worker("a"), worker("b"), worker("c")


@pytest.fixture
def balancer() -> Balancer:
    return Balancer(failure_threshold=1, cool_off_s=60, rng=random.Random(7))


def test_it_picks_the_worker_owing_the_fewest_tokens(balancer: Balancer) -> None:
    balancer.choose("decode", [A], 500)
    balancer.choose("decode", [B], 100)
    chosen, _ = balancer.choose("decode", [A, B, C], 10)
    assert chosen is C
    chosen, _ = balancer.choose("decode", [A, B], 10)
    assert chosen is B


def test_weights_scale_what_a_worker_may_owe(balancer: Balancer) -> None:
    heavy, light = worker("heavy", 3.0), worker("light", 1.0)
    counts = {heavy.worker: 0, light.worker: 0}
    for _ in range(400):
        chosen, _ = balancer.choose("decode", [heavy, light], 100)  # never released: loads only grow
        counts[chosen.worker] += 1
    assert counts[heavy.worker] == pytest.approx(300, abs=2)


def test_a_worker_of_weight_zero_takes_nothing_while_others_can(balancer: Balancer) -> None:
    drained = worker("drained", 0.0)
    assert all(balancer.choose("decode", [drained, A], 100)[0] is A for _ in range(5))
    assert balancer.choose("decode", [drained], 100)[0] is drained


def test_streamed_tokens_pay_off_the_load_and_release_frees_the_rest(balancer: Balancer) -> None:
    _, lease = balancer.choose("decode", [A], 100)
    lease.progress(30)
    assert balancer.loads[A.url].outstanding_tokens == 70
    lease.release()
    lease.release()
    assert (balancer.loads[A.url].outstanding_tokens, balancer.loads[A.url].in_flight) == (0, 0)


def test_requests_sharing_a_prefix_go_where_it_was_served(balancer: Balancer) -> None:
    key = prefix_key([f"w{i}" for i in range(600)])
    first, _ = balancer.choose("prefill", [A, B], 600, prefix=key)
    other = B if first is A else A
    balancer.choose("prefill", [other], 500)  # the pool is even-ish: affinity holds
    again, _ = balancer.choose("prefill", [A, B], 600, prefix=key)
    assert again is first
    assert balancer.affinity_hits == 1


def test_affinity_gives_way_when_its_worker_is_far_above_the_mean(balancer: Balancer) -> None:
    key = prefix_key([f"w{i}" for i in range(600)])
    first, _ = balancer.choose("prefill", [A, B], 600, prefix=key)
    other = B if first is A else A
    for _ in range(3):
        balancer.choose("prefill", [first], 600)
    loads = [balancer.loads[first.url].outstanding_tokens, balancer.load_of(other).outstanding_tokens]
    assert loads[0] > AFFINITY_LOAD_FACTOR * sum(loads) / 2
    again, _ = balancer.choose("prefill", [A, B], 600, prefix=key)
    assert again is not first


def test_a_worker_whose_breaker_is_open_is_skipped(balancer: Balancer) -> None:
    balancer.failure(A)
    assert all(balancer.choose("decode", [A, B], 1)[0] is B for _ in range(5))
    assert balancer.choose("decode", [A], 1) is None
    assert balancer.choose("decode", [A, B], 1, exclude=frozenset({B.url})) is None


def test_it_counts_prompts_as_the_engines_do() -> None:
    assert read_prompt("one two  three\nfour").tokens == 4
    assert read_prompt([1, 2, 3]).tokens == 3
    assert read_prompt(["a b"]).tokens == 2
    chat = read_messages([{"role": "system", "content": "be brief"},
                          {"role": "user", "content": [{"type": "text", "text": "hi there"}]}])  # fmt: skip
    assert chat.tokens == 4 + 2 * 4
    assert read_prompt("short prompt").prefix is None
    long_words = " ".join(f"w{i}" for i in range(1000))
    assert read_prompt(long_words).prefix == read_prompt(long_words[:5000] + " and then something else").prefix


@pytest.mark.parametrize(
    ("reader", "value", "param"),
    [
        (read_prompt, None, "prompt"),
        (read_prompt, "   ", "prompt"),
        (read_prompt, [1, "x"], "prompt"),
        (read_messages, [], "messages"),
        (read_messages, [{"content": "no role"}], "messages[0]"),
        (read_messages, [{"role": "user", "content": 5}], "messages[0].content"),
    ],
)
def test_a_malformed_prompt_names_its_field(reader, value, param: str) -> None:
    with pytest.raises(PromptError) as raised:
        reader(value)
    assert raised.value.param == param
