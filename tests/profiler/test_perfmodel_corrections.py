"""Corrections from live telemetry stretch a worker's step times per phase, and nothing else."""

from __future__ import annotations

import pytest

from profiler.errors import ConfigurationError
from profiler.perfmodel import Corrections, PerfModel

H100 = "H100-SXM-80GB"


@pytest.fixture(scope="module")
def modelled() -> PerfModel:
    return PerfModel.for_names("llama-3.1-8b", H100)


def test_a_decode_correction_stretches_decode_and_chunked_steps_but_not_prefill(modelled):
    slow = modelled.corrected(decode=2.0)
    assert slow.decode_step_s(32, 32 * 1500) == pytest.approx(2.0 * modelled.decode_step_s(32, 32 * 1500))
    assert slow.mixed_step_s(512, 512.0**2, 16, 16000) == pytest.approx(
        2.0 * modelled.mixed_step_s(512, 512.0**2, 16, 16000)
    )
    assert slow.prefill_time_s([2000]) == modelled.prefill_time_s([2000])


def test_a_prefill_correction_stretches_prefill_passes_only(modelled):
    fast = modelled.corrected(prefill=0.5)
    assert fast.prefill_time_from_sums_s(3000, 2e6, 2) == pytest.approx(0.5 * modelled.prefill_time_from_sums_s(3000, 2e6, 2))
    assert fast.decode_step_s(8, 8000) == modelled.decode_step_s(8, 8000)


def test_memory_and_power_are_left_as_they_were(modelled):
    slow = modelled.corrected(prefill=1.5, decode=2.0)
    assert slow.kv_capacity_tokens == modelled.kv_capacity_tokens
    for phase in ("prefill", "decode"):
        assert slow.power_w(phase, 0.7, 8) == pytest.approx(modelled.power_w(phase, 0.7, 8))


def test_corrections_pick_the_factors_of_the_worker_tier_and_tp(modelled):
    corrections = Corrections.of({(H100, 1, "decode"): 1.25, (H100, 2, "decode"): 3.0, ("A100-SXM-80GB", 1, "prefill"): 2.0})
    corrected = corrections.perf_model(modelled)
    assert (corrected.prefill_scale, corrected.decode_scale) == (1.0, 1.25)
    assert Corrections().perf_model(modelled) is modelled
    assert corrections.factor(H100, 4, "prefill") == 1.0
    assert corrections.as_list()[0] == {"tier": "A100-SXM-80GB", "tp": 1, "phase": "prefill", "factor": 2.0}


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        ({(H100, 1, "idle"): 1.0}, "phase must be one of prefill, decode"),
        ({(H100, 1, "decode"): 0.0}, "must be positive"),
        ({(H100, 1, "decode"): float("nan")}, "must be positive"),
    ],
)
def test_corrections_refuse_what_cannot_time_a_worker(factors, message):
    with pytest.raises(ConfigurationError, match=message):
        Corrections.of(factors)


def test_a_perf_model_refuses_a_scale_that_is_not_positive(modelled):
    with pytest.raises(ConfigurationError, match="decode_scale must be a positive number"):
        modelled.corrected(decode=-1.0)
