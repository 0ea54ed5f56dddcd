"""The sim's command line as the agent builds it, and the flags it refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agents
from agents.engines import EngineError, WorkerSpec, launcher
from agents.engines.sim import build_parser


def spec(**engine_args: object) -> WorkerSpec:
    return WorkerSpec(
        name="d-3",
        role="decode",
        engine="sim",
        model="llama-3.1-70b",
        tp=2,
        gpu_ids=(6, 7),
        port=9003,
        tier="A100-SXM-80GB",
        dtype="fp8",
        engine_args=engine_args,  # type: ignore[arg-type]
    )


def test_the_command_runs_this_python_on_the_sim_module_with_the_specs_settings() -> None:
    argv = launcher("sim").command(spec(time_scale=0.1, kv_link="infiniband", kv_capacity_tokens=5000))
    assert argv[:3] == [sys.executable, "-m", "agents.engines.sim"]
    args = build_parser().parse_args(argv[3:])
    assert (args.name, args.role, args.model, args.tier, args.tp, args.dtype) == (
        "d-3", "decode", "llama-3.1-70b", "A100-SXM-80GB", 2, "fp8",
    )  # fmt: skip
    assert (args.host, args.port) == ("127.0.0.1", 9003)
    assert (args.time_scale, args.kv_link, args.kv_capacity_tokens) == (0.1, "infiniband", 5000)


def test_unknown_engine_args_are_refused_before_a_process_starts() -> None:
    with pytest.raises(EngineError, match="does not know engine_args enforce_eager"):
        launcher("sim").command(spec(enforce_eager=True))


def test_its_environment_finds_the_repository_from_anywhere() -> None:
    env = launcher("sim").environment(spec(), {"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(Path(agents.__file__).parents[1]), "/elsewhere"]
    assert env["CUDA_VISIBLE_DEVICES"] == "6,7"


def test_a_worker_that_cannot_fit_exits_with_the_perf_models_reason() -> None:
    launched = launcher("sim")
    too_big = WorkerSpec("w", "decode", "sim", "llama-3.1-70b", 1, (0,), 9004, "L4-24GB")
    result = subprocess.run(
        launched.command(too_big),
        env=launched.environment(too_big, {}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "does not fit" in result.stderr
