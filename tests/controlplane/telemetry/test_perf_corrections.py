"""Live worker samples move the perf model's factors toward measured over predicted: smoothed, bounded, and
only on enough samples."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings

from controlplane.celery import app
from controlplane.fleet.models import Worker
from controlplane.telemetry import tasks
from controlplane.telemetry.corrections import perf_corrections_update
from controlplane.telemetry.models import PerfCorrection, WorkerSample
from controlplane.traffic.models import RequestRecord, WorkloadProfile
from profiler.perfmodel import PerfModel
from tests.factories import NodeFactory, ServiceFactory, tier

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
H100 = "H100-SXM-80GB"
PERF = PerfModel.for_names("llama-3.1-8b", H100)
BATCH, KV_USAGE = 16, 0.1


@pytest.fixture
def chat(db):
    return ServiceFactory(name="chat", model_name="llama-3.1-8b")


@pytest.fixture
def node(db):
    return NodeFactory(name="n0", tier=tier(H100))


def worker(node, service, name, role):
    return Worker.objects.create(node=node, name=name, service=service, role=role, tp=1, model_name="llama-3.1-8b",
                                 status="ready")


def decode_step_s() -> float:
    return PERF.decode_step_s(BATCH, int(KV_USAGE * PERF.kv_capacity_tokens))


def samples(node, service, name, role, count, *, start=NOW, **fields):
    """``count`` samples of one worker, 10 s apart, the newest at ``start``."""
    WorkerSample.objects.bulk_create([
        WorkerSample(node=node, service=service, worker_name=name, role=role, ts=start - timedelta(seconds=10 * i),
                     **fields)
        for i in range(count)
    ])


def decoding(node, service, count, ratio, *, start=NOW, name="d0"):
    samples(node, service, name, "decode", count, start=start, requests_running=BATCH, kv_cache_usage=KV_USAGE,
            itl_p50_s=ratio * decode_step_s())


def factor(phase="decode"):
    return PerfCorrection.objects.get(model_name="llama-3.1-8b", tier=H100, tp=1, phase=phase).factor


def test_a_factor_moves_a_fifth_of_the_way_toward_measured_over_predicted(node, chat):
    worker(node, chat, "d0", "decode")
    decoding(node, chat, 6, ratio=2.0)
    done = perf_corrections_update(now=NOW)
    assert (done.updated, done.samples) == (1, 6)
    assert factor() == pytest.approx(2.0**0.2)  # the EWMA of the log: exp(0.2 log 2)
    row = PerfCorrection.objects.get()
    assert (row.samples, row.last_observed, row.updated_at) == (6, NOW, NOW)


def test_window_after_window_it_approaches_the_measured_ratio_but_never_leaves_the_bounds(node, chat):
    worker(node, chat, "d0", "decode")
    for run in range(40):
        decoding(node, chat, 5, ratio=10.0, start=NOW + timedelta(minutes=5 * run))
        perf_corrections_update(now=NOW + timedelta(minutes=5 * run))
    assert factor() == pytest.approx(2.0)
    for run in range(40, 80):
        decoding(node, chat, 5, ratio=0.1, start=NOW + timedelta(minutes=5 * run))
        perf_corrections_update(now=NOW + timedelta(minutes=5 * run))
    assert factor() == pytest.approx(0.5)


def test_the_bounds_and_the_smoothing_come_from_the_settings(node, chat, settings):
    settings.PERF_CORRECTION_ALPHA = 1.0
    settings.PERF_CORRECTION_MAX_FACTOR = 1.5
    worker(node, chat, "d0", "decode")
    decoding(node, chat, 5, ratio=1.2)
    perf_corrections_update(now=NOW)
    assert factor() == pytest.approx(1.2)
    decoding(node, chat, 5, ratio=3.0, start=NOW + timedelta(minutes=5))
    perf_corrections_update(now=NOW + timedelta(minutes=5))
    assert factor() == pytest.approx(1.5)


def test_too_few_samples_change_nothing_until_enough_have_come(node, chat):
    worker(node, chat, "d0", "decode")
    decoding(node, chat, 4, ratio=2.0)
    assert perf_corrections_update(now=NOW).too_few == 1
    assert not PerfCorrection.objects.exists()
    decoding(node, chat, 1, ratio=2.0, start=NOW + timedelta(minutes=1))
    perf_corrections_update(now=NOW + timedelta(minutes=1))
    assert PerfCorrection.objects.get().samples == 5


def test_a_run_repeated_uses_no_sample_twice(node, chat):
    worker(node, chat, "d0", "decode")
    decoding(node, chat, 8, ratio=2.0)
    perf_corrections_update(now=NOW)
    first = factor()
    assert perf_corrections_update(now=NOW).updated == 0
    assert factor() == first
    assert PerfCorrection.objects.get().samples == 8


def test_samples_that_measure_no_step_are_left_out(node, chat):
    worker(node, chat, "d0", "decode")
    worker(node, chat, "p0", "prefill")
    samples(node, chat, "d0", "decode", 6, requests_running=0, itl_p50_s=0.5)  # idle: no step to time
    samples(node, chat, "d0", "decode", 6, start=NOW - timedelta(seconds=5), requests_running=4)  # no ITL
    samples(node, chat, "p0", "prefill", 6, requests_waiting=3, ttft_p50_s=9.0)  # queued: TTFT is mostly waiting
    samples(node, chat, "gone", "decode", 6, start=NOW - timedelta(seconds=3), requests_running=4, itl_p50_s=0.5)
    old = NOW - timedelta(seconds=django_settings.PERF_CORRECTION_LOOKBACK_S + 60)
    decoding(node, chat, 6, ratio=2.0, start=old)  # before the lookback
    done = perf_corrections_update(now=NOW)
    assert (done.updated, done.samples) == (0, 0)
    assert not PerfCorrection.objects.exists()


def record(service, prompt, *, prefill_worker, cached=0):
    return RequestRecord(id=uuid.uuid4(), service=service, arrival_at=NOW - timedelta(minutes=1), prompt_tokens=prompt,
                         output_tokens=100, cached_prompt_tokens=cached, prefill_worker=prefill_worker)


def test_prefill_compares_ttft_with_the_median_pass_of_the_requests_the_prefill_pool_served(node, chat):
    worker(node, chat, "p0", "prefill")
    RequestRecord.objects.bulk_create(
        [record(chat, prompt, prefill_worker="n0/p0") for prompt in (1000, 2000, 4000)]
        # prefilled on the decode workers: in the median they would pull it down to 2000's neighbour
        + [record(chat, 50, prefill_worker="") for _ in range(4)]
    )
    median_pass_s = PERF.prefill_time_s([2000])
    samples(node, chat, "p0", "prefill", 5, requests_running=1, ttft_p50_s=1.5 * median_pass_s)
    perf_corrections_update(now=NOW)
    assert factor("prefill") == pytest.approx(math.exp(0.2 * math.log(1.5)))


def test_without_records_the_profile_median_prompt_less_its_cached_share_stands_in(node, chat):
    worker(node, chat, "p0", "prefill")
    WorkloadProfile.objects.create(
        service=chat, window_start=NOW - timedelta(minutes=5), window_end=NOW, request_count=10, arrival_rate_rps=1.0,
        prompt_tokens_p50=3000, prefix_cache_share=0.5,
    )
    predicted = PERF.prefill_time_from_sums_s(1500, 1500.0**2 + 2 * 1500 * 1500, 1)
    samples(node, chat, "p0", "prefill", 5, ttft_p50_s=predicted)
    perf_corrections_update(now=NOW)
    assert factor("prefill") == pytest.approx(1.0)


def test_the_beat_runs_the_update_every_five_minutes_on_the_telemetry_queue(node, chat, time_machine):
    entry = django_settings.CELERY_BEAT_SCHEDULE["telemetry.perf_corrections"]
    assert entry["schedule"] == 300
    assert entry["task"] in app.tasks
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "telemetry"
    time_machine.move_to(NOW, tick=False)
    worker(node, chat, "d0", "decode")
    decoding(node, chat, 5, ratio=2.0)
    assert tasks.perf_corrections() == {"updated": 1, "too_few": 0, "samples": 5}
