"""`manage.py import_trace`: real traces in, no duplicates on re-import, nothing half-written on a bad row."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from controlplane.traffic.models import RequestRecord
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[3] / "data" / "traces"


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_trace", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_azure_code_trace_imports_whole_and_once():
    ServiceFactory(name="code")
    path = str(DATA / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv")
    assert "8819 stored" in run("--format", "azure", path, "--service", "code")
    assert "0 stored, 8819 already there" in run("--format", "azure", path, "--service", "code")
    assert RequestRecord.objects.count() == 8819


def test_the_same_trace_into_two_services_is_two_sets_of_records():
    ServiceFactory(name="a")
    ServiceFactory(name="b")
    path = str(DATA / "burstgpt" / "BurstGPT_1_head.csv")
    run("--format", "burstgpt", path, "--service", "a")
    run("--format", "burstgpt", path, "--service", "b")
    assert RequestRecord.objects.filter(service__name="a").count() == 400
    assert RequestRecord.objects.filter(service__name="b").count() == 400
    assert RequestRecord.objects.filter(service__name="a", status="error").count() == 17


def test_arrivals_keep_the_traces_spacing_from_start():
    ServiceFactory(name="moon")
    path = str(DATA / "mooncake" / "conversation_trace_head1000.jsonl")
    run("--format", "mooncake", path, "--service", "moon", "--start", "2026-01-01T00:00:00+00:00")
    arrivals = RequestRecord.objects.order_by("arrival_at").values_list("arrival_at", flat=True)
    assert arrivals.first().isoformat() == "2026-01-01T00:00:00+00:00"
    assert (arrivals.last() - arrivals.first()).total_seconds() == 330
    assert RequestRecord.objects.filter(cached_prompt_tokens__gt=0).exists()


@pytest.fixture
def bad_trace(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:47.6805900,400,10\n"
        "2023-11-16 18:15:48.6805900,abc,10\n"
        "2023-11-16 18:15:49.6805900,300,12\n"
    )
    return path


def test_a_malformed_row_stops_the_import_naming_file_line_and_field(bad_trace):
    ServiceFactory(name="s")
    with pytest.raises(CommandError, match=r"bad\.csv line 4, field ContextTokens"):
        run("--format", "azure", str(bad_trace), "--service", "s", "--batch-size", "2")
    # The first batch (lines 2-3) was written; nothing of the batch with the bad row was.
    assert sorted(RequestRecord.objects.values_list("prompt_tokens", flat=True)) == [374, 400]


def test_skip_mode_skips_and_reports_malformed_rows(bad_trace):
    ServiceFactory(name="s")
    out = run("--format", "azure", str(bad_trace), "--service", "s", "--on-error", "skip")
    assert "3 stored" in out
    assert "1 malformed rows skipped" in out


def test_an_unknown_service_is_named():
    with pytest.raises(CommandError, match="--service: no service named 'ghost'"):
        run("--format", "azure", str(DATA / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"), "--service", "ghost")


def test_a_generic_csv_needs_its_columns(tmp_path):
    ServiceFactory(name="s")
    path = tmp_path / "lengths.csv"
    path.write_text("in,out\n100,10\n2000,5\n")
    out = run("--format", "csv", str(path), "--service", "s", "--columns", "prompt_tokens=in,output_tokens=out")
    assert "2 stored" in out


def test_records_export_and_import_round_trip(tmp_path):
    ServiceFactory(name="code")
    ServiceFactory(name="copy")
    run("--format", "azure", str(DATA / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"), "--service", "code",
        "--start", "2026-01-01T00:00:00+00:00")
    exported = tmp_path / "code.jsonl"
    call_command("export_records", str(exported), "--service", "code", stdout=StringIO())
    assert "8819 stored" in run("--format", "records", str(exported), "--service", "copy", "--start",
                                "2026-01-01T00:00:00+00:00")

    def shape(name):
        return list(RequestRecord.objects.filter(service__name=name).order_by("arrival_at", "prompt_tokens")
                    .values_list("arrival_at", "prompt_tokens", "output_tokens"))

    assert shape("copy") == shape("code")
