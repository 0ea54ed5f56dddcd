"""The router's launcher: the node agent runs a router like an engine, with its routing file and no secret in argv."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from agents.engines import EngineError, WorkerSpec, launcher
from agents.engines.router import RouterLauncher
from tests.agents.router.conftest import (
    KEY,
    MODEL,
    routing,
    running_router,
    running_sim,
    wait_until,
    write_routing,
)


def spec(**engine_args: object) -> WorkerSpec:
    args = {"routing_file": "/var/lib/cleave/routing/chat-router-0.json", **engine_args}
    return WorkerSpec(name="chat-router-0", role="router", engine="sim", model=MODEL, tp=1, gpu_ids=(),
                      port=8300, tier="H100-SXM-80GB", engine_args=args)  # type: ignore[arg-type]  # fmt: skip


def test_it_is_registered_as_the_router_engine() -> None:
    assert isinstance(launcher("router"), RouterLauncher)


def test_its_command_carries_the_routing_file_and_the_other_settings() -> None:
    argv = launcher("router").command(spec(control_plane="https://cp.example", service_id=4, poll_s=2,
                                           require_api_key=False), host="0.0.0.0")  # fmt: skip
    assert argv[:3] == [sys.executable, "-m", "agents.router"]
    assert argv[3:9] == ["--port", "8300", "--host", "0.0.0.0", "--routing-file",
                         "/var/lib/cleave/routing/chat-router-0.json"]  # fmt: skip
    assert argv[argv.index("--control-plane") + 1] == "https://cp.example"
    assert argv[argv.index("--service-id") + 1] == "4"
    assert argv[argv.index("--spool-dir") + 1] == "/var/lib/cleave/routing/chat-router-0.spool"
    # In the agent's state layout, the agent's credentials are the token file (a path, not the token).
    assert argv[argv.index("--token-file") + 1] == "/var/lib/cleave/credentials.json"
    assert argv[-1] == "--no-require-api-key"


def test_the_token_stays_in_the_environment() -> None:
    env = launcher("router").environment(spec(), {"CLEAVE_ROUTER_TOKEN": "clv_secret", "PATH": "/bin"})
    assert env["CLEAVE_ROUTER_TOKEN"] == "clv_secret"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert "clv_secret" not in " ".join(launcher("router").command(spec()))


@pytest.mark.parametrize(
    ("args", "message"),
    [({"routing_file": ""}, "routing_file"), ({"time_scale": 0.1}, "does not know engine_args time_scale"),
     ({"require_api_key": "yes"}, "require_api_key")],
)  # fmt: skip
def test_it_refuses_what_it_cannot_run(args: dict, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        launcher("router").command(spec(**args))


def test_its_metrics_read_as_a_workers(tmp_path: Path) -> None:
    with running_sim("colocated", name="c0", time_scale=0.05) as worker, \
            running_router(tmp_path, routing(colocated=[worker])) as router:  # fmt: skip
        headers = {"Authorization": f"Bearer {KEY}"}
        for stream in (False, True):
            body = {"model": MODEL, "prompt": "a b c", "max_tokens": 4, "stream": stream}
            assert httpx.post(f"{router.url}/v1/completions", json=body, headers=headers).status_code == 200
        metrics = launcher("router").parse_metrics(httpx.get(f"{router.url}/metrics").text)
    assert metrics.requests_finished_total == 2
    assert (metrics.prompt_tokens_total, metrics.generation_tokens_total) == (6, 8)
    assert metrics.ttft_seconds.count == 2  # the router streams from the worker even when the client does not
    assert metrics.itl_seconds.count == 2
    assert metrics.requests_running == 0


def test_the_health_url_answers_once_a_plan_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "late.json"
    with running_router(tmp_path, None, "--routing-file", str(path), healthy=False) as router:
        assert httpx.get(f"{router.url}/health").status_code == 503
        write_routing(path, routing(colocated=[], keys=None, version=5))
        wait_until(lambda: httpx.get(f"{router.url}/health").status_code == 200, 10, "a healthy router")
        assert httpx.get(f"{router.url}/health").json() == {"status": "ok", "service": "chat", "plan_version": 5}
