"""Windows of records become workload profiles: each closed window once, empty ones kept, classes right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from controlplane.traffic.models import WorkloadProfile
from controlplane.traffic.profiling import profiles_update
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[3] / "data" / "traces" / "azure_llm_2023"
START = datetime(2026, 1, 1, tzinfo=UTC)


def import_trace(name: str, service: str) -> None:
    call_command("import_trace", "--format", "azure", str(DATA / name), "--service", service,
                 "--start", START.isoformat(), stdout=StringIO(), stderr=StringIO())


def test_azure_code_windows_are_prefill_heavy_and_conv_windows_decode_heavy(settings):
    settings.PROFILE_LOOKBACK_S = 7200
    code, conv = ServiceFactory(name="code", tpot_slo_s=0.1), ServiceFactory(name="conv", tpot_slo_s=0.1)
    import_trace("AzureLLMInferenceTrace_code.csv", "code")
    import_trace("AzureLLMInferenceTrace_conv.csv", "conv")
    now = START + timedelta(hours=1, minutes=1)
    code_windows = profiles_update(service=code, now=now)
    conv_windows = profiles_update(service=conv, now=now)
    assert len(code_windows) == 12
    assert {w.workload_class for w in code_windows if w.request_count} == {"prefill-heavy"}
    assert sum(w.workload_class == "decode-heavy" for w in conv_windows) >= 10
    first = code_windows[0]
    assert first.window_end - first.window_start == timedelta(minutes=5)
    assert first.prompt_tokens_p50 > first.output_tokens_p50
    assert 0 < first.confidence <= 1
    assert first.forecast["next_class"] == "prefill-heavy"


def test_each_closed_window_is_written_once():
    service = ServiceFactory(name="code")
    import_trace("AzureLLMInferenceTrace_code.csv", "code")
    now = START + timedelta(minutes=12)
    assert len(profiles_update(service=service, now=now)) == 2  # 0-5 and 5-10; 10-15 is still open
    assert profiles_update(service=service, now=now) == []
    assert len(profiles_update(service=service, now=now + timedelta(minutes=5))) == 1
    assert WorkloadProfile.objects.filter(service=service).count() == 3


def test_a_window_without_requests_is_kept_with_rate_zero():
    service = ServiceFactory(name="code")
    import_trace("AzureLLMInferenceTrace_code.csv", "code")
    profiles_update(service=service, now=START + timedelta(hours=1, minutes=1))
    later = profiles_update(service=service, now=START + timedelta(hours=1, minutes=11))
    assert [(w.request_count, w.arrival_rate_rps, w.workload_class) for w in later] == [(0, 0.0, "")] * 2


def test_a_service_without_records_has_no_profiles():
    assert profiles_update(service=ServiceFactory(name="idle")) == []
