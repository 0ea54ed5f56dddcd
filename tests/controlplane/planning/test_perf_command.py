"""`manage.py perf`: an operator's quick look at a model on a GPU."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from profiler.perfmodel import PerfModel

pytestmark = pytest.mark.django_db


def perf(*args: str) -> str:
    out = StringIO()
    call_command("perf", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_perf_models_prefill_and_decode_times():
    result = json.loads(perf("--model", "llama-3.1-8b", "--tier", "H100-SXM-80GB", "--tp", "1", "--dtype", "bf16",
                             "--prefill", "2048", "--decode-batch", "32", "--context", "1024", "--json"))
    model = PerfModel.for_names("llama-3.1-8b", "H100-SXM-80GB")
    assert result["prefill_time_s"] == model.prefill_time_s([2048])
    assert result["decode_step_s"] == model.decode_step_s(32, 32 * 1024)


def test_it_uses_the_tier_as_the_database_holds_it(api_as, alice):
    text = perf("--model", "llama-3.1-8b", "--tier", "L4-24GB", "--prefill", "512")
    assert "prefill 512 tokens:" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-9", "--tier", "H100-SXM-80GB", "--prefill", "1"], "unknown model 'gpt-9'"),
        (["--model", "llama-3.1-8b", "--tier", "TPU-v5", "--prefill", "1"], "unknown GPU tier 'TPU-v5'"),
        (["--model", "llama-3.1-8b", "--tier", "H100-SXM-80GB", "--tp", "3", "--prefill", "1"], "does not divide"),
        (["--model", "llama-3.1-70b", "--tier", "L4-24GB", "--prefill", "1"], "does not fit"),
        (["--model", "llama-3.1-8b", "--tier", "H100-SXM-80GB"], "give --prefill"),
        (["--model", "llama-3.1-8b", "--tier", "H100-SXM-80GB", "--prefill", "0"], "--prefill: must be at least 1"),
    ],
)
def test_bad_input_names_the_problem(args, message):
    with pytest.raises(CommandError, match=message):
        perf(*args)
