"""bench/gpu_calibrate.py where no GPU is at hand, and the shared benchmark output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bench import gpu_calibrate
from bench.common import emit


def _gpu_present() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_gpu_present(), reason="a CUDA GPU is present; this test holds the no-GPU path")
def test_without_a_gpu_it_says_so_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "local_points.csv"
    assert gpu_calibrate.main(["--out", str(out), "--results-dir", str(tmp_path)]) == 0
    assert "nothing written" in capsys.readouterr().out
    assert gpu_calibrate.main(["--out", str(out), "--results-dir", str(tmp_path), "--json"]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line)["points"] == 0
    assert list(tmp_path.iterdir()) == []


def test_device_names_map_to_catalog_tiers_or_to_none() -> None:
    assert gpu_calibrate.tier_for_device("NVIDIA H100 80GB HBM3") == "H100-SXM-80GB"
    assert gpu_calibrate.tier_for_device("NVIDIA A100-SXM4-80GB") == "A100-SXM-80GB"
    assert gpu_calibrate.tier_for_device("NVIDIA L4") == "L4-24GB"
    assert gpu_calibrate.tier_for_device("NVIDIA L40S") == "L40S-48GB"
    for other in ("NVIDIA H100 PCIe", "NVIDIA A100-SXM4-40GB", "NVIDIA L40", "NVIDIA GeForce RTX 4090"):
        assert gpu_calibrate.tier_for_device(other) is None


def test_emit_prints_a_table_or_the_json_result_as_the_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emit(
        "demo",
        {"median_abs_error": 0.05},
        [{"point": "a", "error": 0.1}],
        as_json=False,
        results_dir=tmp_path,
    )
    assert "median_abs_error" in capsys.readouterr().out
    assert not (tmp_path / "demo.json").exists()

    emit("demo", {"median_abs_error": float("nan")}, None, as_json=True, results_dir=tmp_path)
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last_line) == {"bench": "demo", "median_abs_error": None}
    assert json.loads((tmp_path / "demo.json").read_text()) == {"bench": "demo", "median_abs_error": None}
