"""Engines are found by name, and a worker spec that cannot run is refused with the field named."""

from __future__ import annotations

import pytest

from agents.engines import EngineError, WorkerSpec, engine_names, launcher
from agents.engines.sglang import SglangLauncher
from agents.engines.sim import SimLauncher
from agents.engines.vllm import VllmLauncher


def spec(**overrides: object) -> WorkerSpec:
    fields: dict[str, object] = {
        "name": "w0",
        "role": "decode",
        "engine": "sim",
        "model": "llama-3.1-8b",
        "tp": 2,
        "gpu_ids": (4, 5),
        "port": 8100,
        "tier": "H100-SXM-80GB",
    }
    return WorkerSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def test_each_engine_module_registers_its_launcher() -> None:
    assert engine_names() == ["router", "sglang", "sim", "vllm"]
    assert isinstance(launcher("sim"), SimLauncher)
    assert isinstance(launcher("vllm"), VllmLauncher)
    assert isinstance(launcher("sglang"), SglangLauncher)


def test_an_unknown_engine_is_refused_with_the_known_ones() -> None:
    with pytest.raises(EngineError, match="unknown engine 'trt'; known engines: router, sglang, sim, vllm"):
        launcher("trt")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"role": "embedder"}, "unknown role 'embedder'"),
        ({"tp": 0, "gpu_ids": ()}, "tp must be >= 1"),
        ({"gpu_ids": (4,)}, "one GPU per TP rank"),
        ({"gpu_ids": (4, 4)}, "distinct"),
        ({"port": 70000}, "port must be in 1..65535"),
        ({"name": ""}, "name must not be empty"),
        ({"engine_args": {"time_scale": [1]}}, r"engine_args\['time_scale'\]"),
    ],
)
def test_a_spec_that_cannot_run_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        spec(**overrides)


def test_a_launcher_refuses_another_engines_spec() -> None:
    with pytest.raises(EngineError, match="engine 'sim' given to the 'vllm' launcher"):
        launcher("vllm").command(spec())


def test_a_router_spec_needs_no_gpu_but_no_engine_launcher_runs_it() -> None:
    router = spec(role="router", tp=0, gpu_ids=())
    for engine in ("sim", "vllm", "sglang"):
        with pytest.raises(EngineError, match="cannot play role 'router'"):
            launcher(engine).command(WorkerSpec(**{**router.__dict__, "engine": engine}))


def test_specs_compare_by_value_and_hash_without_their_args() -> None:
    assert spec(engine_args={"time_scale": 0.5}) == spec(engine_args={"time_scale": 0.5})
    assert hash(spec(engine_args={"a": 1})) == hash(spec(engine_args={"a": 2}))


def test_urls_point_at_the_workers_port_and_never_at_a_wildcard() -> None:
    sim = launcher("sim")
    assert sim.health_url(spec()) == "http://127.0.0.1:8100/health"
    assert sim.metrics_url(spec(), "10.0.0.7") == "http://10.0.0.7:8100/metrics"
    assert sim.base_url(spec(), "0.0.0.0") == "http://127.0.0.1:8100/v1"
    assert sim.health_url(spec(), "fd00::7") == "http://[fd00::7]:8100/health"
