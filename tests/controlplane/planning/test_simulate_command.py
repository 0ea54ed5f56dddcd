"""`manage.py simulate`: a real trace on pools named by flag, tiers and prices from the database."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from controlplane.fleet.models import GpuTier

pytestmark = pytest.mark.django_db

TRACE = str(
    Path(__file__).resolve().parents[3] / "data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"
)
SPLIT = ("--prefill", "H100-SXM-80GB:2", "--decode", "A100-SXM-80GB:4")


def simulate(*args: str) -> str:
    out = StringIO()
    call_command(
        "simulate",
        "--trace",
        TRACE,
        "--model",
        "llama-3.1-8b",
        "--ttft",
        "1.0",
        "--tpot",
        "0.1",
        *args,
        stdout=out,
    )
    return out.getvalue()


def test_it_replays_the_conv_trace_on_a_split_cluster_and_prints_a_table():
    out = simulate("--format", "azure", *SPLIT)
    assert "19366 requests" in out
    assert "SLO attainment 100.0%" in out
    assert "prefill  H100-SXM-80GB  1   2" in out
    assert "decode   A100-SXM-80GB  1   4" in out
    assert "$13.20/h" in out  # 2 x $3.00 + 4 x $1.80


def test_json_holds_the_full_result():
    result = json.loads(simulate(*SPLIT, "--json"))
    assert result["requests"] == result["completed"] == 19366
    assert len(result["ttft_s"]) == 19366
    assert [(pool["role"], pool["count"], pool["tp"]) for pool in result["pools"]] == [
        ("prefill", 2, 1),
        ("decode", 4, 1),
    ]
    assert result["slo"] == {"ttft_s": 1.0, "tpot_s": 0.1}


def test_an_operators_price_in_the_database_is_the_one_charged():
    GpuTier.objects.filter(name="A100-SXM-80GB").update(price_usd_per_gpu_h=Decimal("1.2500"))
    result = json.loads(simulate(*SPLIT, "--json"))
    assert result["cost_usd_per_h"] == pytest.approx(2 * 3.00 + 4 * 1.25)


def test_poisson_arrivals_over_the_traces_lengths_on_colocated_tp2_without_chunking():
    result = json.loads(
        simulate(
            "--colocated",
            "H100-SXM-80GB:2x2",
            "--no-chunked-prefill",
            "--rate",
            "10",
            "--duration",
            "60",
            "--seed",
            "3",
            "--kv-link",
            "infiniband",
            "--json",
        )
    )
    assert result["requests"] == pytest.approx(600, rel=0.15)
    assert result["pools"][0]["gpus"] == 4
    assert result["pools"][0]["role"] == "colocated"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--prefill", "H100-SXM-80GB", "--decode", "A100-SXM-80GB:1"),
            "--prefill 'H100-SXM-80GB': expected TIER:N",
        ),
        (("--prefill", "X100:1", "--decode", "A100-SXM-80GB:1"), "--prefill: unknown tier 'X100'"),
        (
            ("--prefill", "H100-SXM-80GB:1", "--decode", "A100-SXM-80GB:1x3"),
            "--decode A100-SXM-80GB:1x3: .*does not divide",
        ),
        (("--prefill", "H100-SXM-80GB:0", "--decode", "A100-SXM-80GB:1"), "--prefill 'H100-SXM-80GB:0'"),
        (("--prefill", "H100-SXM-80GB:1"), "--decode: a disaggregated cluster needs decode instances"),
        (
            ("--colocated", "H100-SXM-80GB:1", "--decode", "A100-SXM-80GB:1"),
            "--colocated: a cluster is colocated or",
        ),
        ((), "give --prefill and --decode pools, or --colocated pools"),
        ((*SPLIT, "--rate", "5"), "--duration: --rate and --duration go together"),
        ((*SPLIT, "--chunk-tokens", "0"), "--chunk-tokens: must be at least 1"),
        ((*SPLIT, "--format", "mooncake"), "--trace: "),
        ((*SPLIT, "--kv-link", "carrier-pigeon"), "--kv-link"),
    ],
)
def test_a_bad_flag_is_named_in_the_error(args, message):
    with pytest.raises(CommandError, match=message):
        simulate(*args)


def test_a_bad_model_or_slo_is_named_too():
    with pytest.raises(CommandError, match="--model: unknown model 'gpt-5'"):
        call_command("simulate", "--trace", TRACE, "--model", "gpt-5", "--ttft", "1", "--tpot", "0.1", *SPLIT)
    with pytest.raises(CommandError, match="--tpot: must be a positive number"):
        call_command(
            "simulate", "--trace", TRACE, "--model", "llama-3.1-8b", "--ttft", "1", "--tpot", "0", *SPLIT
        )
    with pytest.raises(CommandError, match=r"--trace: .*no such trace file"):
        call_command(
            "simulate", "--trace", "nope.csv", "--model", "llama-3.1-8b", "--ttft", "1", "--tpot", "1", *SPLIT
        )
