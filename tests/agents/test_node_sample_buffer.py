"""The sample buffer keeps the newest samples up to its bound, counts what it drops, and takes failed batches back."""

from __future__ import annotations

from agents.reporter import SampleBuffer


def filled(count, bound=10):
    buffer = SampleBuffer(bound)
    for index in range(count):
        buffer.add("node", {"ts": index})
    return buffer


def test_it_drops_the_oldest_beyond_its_bound_and_counts_them():
    buffer = filled(15)
    assert (len(buffer), buffer.dropped) == (10, 5)
    assert [sample["ts"] for _, sample in buffer.take(100)] == list(range(5, 15))


def test_a_failed_batch_goes_back_in_front_in_order():
    buffer = filled(6)
    batch = buffer.take(4)
    buffer.add("worker", {"ts": 99})
    buffer.give_back(batch)
    assert [sample["ts"] for _, sample in buffer.take(100)] == [0, 1, 2, 3, 4, 5, 99]


def test_a_batch_given_back_to_a_full_buffer_loses_its_oldest():
    buffer = filled(10)
    batch = buffer.take(5)
    for index in range(10, 15):
        buffer.add("node", {"ts": index})
    buffer.give_back(batch)
    assert buffer.dropped == 5
    assert [sample["ts"] for _, sample in buffer.take(100)] == list(range(5, 15))
