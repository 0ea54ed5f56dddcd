"""`python -m profiler`: classify a trace without a database, train and store models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.__main__ import main

AZURE = Path(__file__).resolve().parents[2] / "data" / "traces" / "azure_llm_2023"
CODE = str(AZURE / "AzureLLMInferenceTrace_code.csv")
CONV = str(AZURE / "AzureLLMInferenceTrace_conv.csv")


def test_classify_prints_each_window_and_the_overall_class(capsys):
    assert main(["classify", CODE, "--format", "azure", "--model", "llama-3.1-8b"]) == 0
    out = capsys.readouterr().out
    assert "llama-3.1-8b on H100-SXM-80GB TP1 bf16, TPOT 100 ms" in out
    assert out.count("prefill-heavy  1.00") == 12
    assert "overall: prefill-heavy (prefill share 0.841" in out
    assert "request mix: prefill-heavy 78.6%, balanced 9.6%, decode-heavy 11.7%" in out


def test_classify_as_json(capsys):
    args = ["classify", CONV, "--format", "azure", "--model", "llama-3.1-8b", "--window", "600", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["workload_class"] == "decode-heavy"
    assert result["overall"]["class_mix"]["decode-heavy"] == pytest.approx(14698 / 19366)
    assert len(result["windows"]) == 6
    assert all(0.0 <= w["confidence"] <= 1.0 for w in result["windows"])


def test_the_tier_and_tpot_change_the_answer(capsys):
    args = [
        "classify",
        CONV,
        "--format",
        "azure",
        "--model",
        "llama-3.1-70b",
        "--tier",
        "H200-SXM-141GB",
        "--json",
    ]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["workload_class"] != "decode-heavy"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-9"], "error: unknown model 'gpt-9'"),
        (["--model", "llama-3.1-8b", "--tier", "TPU"], "error: unknown GPU tier 'TPU'"),
        (["--model", "llama-3.1-8b", "--tpot", "0"], "error: tpot_slo_s must be a positive"),
        (["--model", "llama-3.1-8b", "--window", "-1"], "error: window_s must be a positive"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, args, message):
    assert main(["classify", CODE, "--format", "azure", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_trace_is_a_clear_error(capsys, tmp_path):
    assert main(["classify", str(tmp_path / "nope.csv"), "--format", "azure", "--model", "llama-3.1-8b"]) == 2
    assert "no such trace file" in capsys.readouterr().err


def test_an_empty_trace_has_nothing_to_profile(capsys, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    assert main(["classify", str(empty), "--format", "azure", "--model", "llama-3.1-8b"]) == 2
    assert "no records to profile" in capsys.readouterr().err


def test_train_stores_a_versioned_model(capsys, tmp_path):
    args = ["train", "workload", CODE, CONV, "--format", "azure", "--model", "llama-3.1-8b"]
    assert main([*args, "--store", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["version"] == "workload-0001"
    assert set(result["metrics"]) == {"model", "persistence"}
    assert (tmp_path / "workload" / "workload-0001.json").exists()


def test_train_admission_reports_the_baselines(capsys, tmp_path):
    args = ["train", "admission", CODE, CONV, "--format", "azure", "--model", "llama-3.1-8b"]
    assert main([*args, "--store", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["version"] == "admission-0001"
    assert result["metrics"]["macro_f1"] > result["metrics"]["baseline_macro_f1"]
    assert result["metrics"]["holdout"]["services"] == {
        "AzureLLMInferenceTrace_code": 2063,
        "AzureLLMInferenceTrace_conv": 6392,
    }
