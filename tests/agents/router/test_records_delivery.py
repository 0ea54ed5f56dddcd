"""Every request leaves one record at the control plane, even when the control plane was away meanwhile."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from agents.engines import WorkerSpec, launcher
from controlplane.accounts.services import token_create
from controlplane.traffic.models import RequestRecord
from controlplane.traffic.services import api_key_create
from tests.agents.engines.conftest import ROOT, free_port
from tests.agents.router.conftest import (
    MODEL,
    routing,
    running_router,
    running_sim,
    wait_until,
    write_routing,
)
from tests.factories import PlanFactory, ServiceFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


def test_records_spooled_while_the_control_plane_is_down_arrive_once_it_is_back(tmp_path: Path, alice, proxy) -> None:
    service = ServiceFactory(name="chat", model_name=MODEL)
    _, key = api_key_create(actor=alice, service=service, name="web")
    _, token = token_create(actor=None, user=UserFactory(username="router-1", role="router"), name="router-1")
    spool = tmp_path / "spool"
    with running_sim("colocated", name="c0", time_scale=0.05) as worker:
        PlanFactory(service=service, status="active", routing=routing(colocated=[worker], keys=None))
        args = ("--control-plane", proxy.url, "--service-id", str(service.pk), "--spool-dir", str(spool),
                "--poll-s", "0.3", "--flush-s", "0.2", "--batch-records", "10")  # fmt: skip
        with running_router(tmp_path, None, *args, env={"CLEAVE_ROUTER_TOKEN": token}) as router:
            client = openai.OpenAI(base_url=f"{router.url}/v1", api_key=key, max_retries=0)

            def ask(count: int) -> None:
                for index in range(count):
                    answer = client.completions.create(model=MODEL, prompt=f"request {index}", max_tokens=2)
                    assert answer.usage.completion_tokens == 2

            ask(15)
            wait_until(lambda: RequestRecord.objects.count() == 15, 20, "the first records")
            proxy.down()
            ask(25)  # no request fails while the control plane is away
            stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                    max_tokens=3, stream=True)  # fmt: skip
            assert len([chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content]) == 3
            wait_until(lambda: router.metric("cleave_router_records_total", outcome="spooled") > 0, 10, "spooling")
            assert RequestRecord.objects.count() == 15
            proxy.up()
            wait_until(lambda: RequestRecord.objects.count() >= 41, 30, "the spooled records")
            time.sleep(1.0)  # nothing more arrives: none was sent twice
            assert RequestRecord.objects.count() == 41
            wait_until(lambda: router.metric("cleave_router_spool_segments") == 0, 10, "an empty spool")
        assert router.process.returncode in (0, -15)  # uvicorn re-raises SIGTERM once it has shut down
        assert not list(spool.glob("seg-*"))

    record = RequestRecord.objects.filter(endpoint="chat").get()
    assert record.service == service
    assert (record.prompt_tokens, record.output_tokens, record.max_tokens) == (1 + 4, 3, 3)
    assert record.decode_worker == "node-a/c0"
    assert record.prefill_worker == ""
    assert record.predicted_class == "balanced"
    assert record.client == key.split("-")[2]
    assert record.status == "ok"
    assert record.ttft_s is not None
    assert record.tpot_s is not None
    assert record.e2e_s >= record.ttft_s
    assert record.source == "router-1"
    completions = RequestRecord.objects.filter(endpoint="completions")
    assert completions.count() == 40
    assert all(isinstance(row.id, uuid.UUID) for row in completions)
    assert {row.output_tokens for row in completions} == {2}


def test_the_router_polls_its_keys_and_routing_from_the_control_plane(tmp_path: Path, alice, live_server) -> None:
    service = ServiceFactory(name="chat", model_name=MODEL)
    _, key = api_key_create(actor=alice, service=service, name="web")
    _, token = token_create(actor=None, user=UserFactory(username="router-1", role="router"), name="router-1")
    with running_sim("colocated", name="c0", time_scale=0.05) as worker:
        PlanFactory(service=service, status="active", routing=routing(colocated=[worker], keys=None))
        args = ("--control-plane", live_server.url, "--service-id", str(service.pk), "--poll-s", "0.3")
        with running_router(tmp_path, None, *args, env={"CLEAVE_ROUTER_TOKEN": token}) as router:
            headers = {"Authorization": f"Bearer {key}"}
            body = {"model": MODEL, "prompt": "hi", "max_tokens": 1}
            assert httpx.post(f"{router.url}/v1/completions", json=body, headers=headers).status_code == 200
            from controlplane.traffic.services import api_key_revoke

            api_key_revoke(actor=alice, key=service.api_keys.get())
            wait_until(lambda: httpx.post(f"{router.url}/v1/completions", json=body, headers=headers).status_code
                       == 401, 10, "the revoked key refused")  # fmt: skip


def test_a_router_run_by_an_agent_reports_with_the_agents_credentials(tmp_path: Path, alice, live_server) -> None:
    from controlplane.accounts.services import token_revoke

    service = ServiceFactory(name="chat", model_name=MODEL)
    _, key = api_key_create(actor=alice, service=service, name="web")
    robot = UserFactory(username="router-1", role="router")
    old_token, old_raw = token_create(actor=None, user=robot, name="first")
    state = tmp_path / "state"
    (state / "routing").mkdir(parents=True)
    credentials = state / "credentials.json"
    credentials.write_text(json.dumps({"control_plane": live_server.url, "name": "node-a", "node_id": 1, "token": old_raw}))
    with running_sim("colocated", name="c0", time_scale=0.05) as worker:
        routing_file = state / "routing" / "chat-router-0.json"
        write_routing(routing_file, routing(colocated=[worker], keys=None, service_id=service.pk))
        spec = WorkerSpec(name="chat-router-0", role="router", engine="sim", model=MODEL, tp=1, gpu_ids=(),
                          port=free_port(), tier="H100-SXM-80GB",
                          engine_args={"routing_file": str(routing_file), "poll_s": 0.3, "flush_s": 0.2})  # fmt: skip
        router = launcher("router")
        env = router.environment(spec, {k: v for k, v in os.environ.items() if k != "CLEAVE_ROUTER_TOKEN"})
        process = subprocess.Popen(router.command(spec), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        try:
            url = router.health_url(spec).removesuffix("/health")
            headers = {"Authorization": f"Bearer {key}"}
            body = {"model": MODEL, "prompt": "hi", "max_tokens": 1}

            def served() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return httpx.post(f"{url}/v1/completions", json=body, headers=headers).status_code == 200
                return False

            wait_until(served, 20, "a request served with keys from the control plane")
            wait_until(lambda: RequestRecord.objects.count() == 1, 10, "its record")
            # The agent renews its token: the router follows the file.
            token_revoke(actor=None, token=old_token)
            _, new_raw = token_create(actor=None, user=robot, name="second")
            credentials.write_text(json.dumps({"control_plane": live_server.url, "token": new_raw}))
            assert served()
            wait_until(lambda: RequestRecord.objects.count() == 2, 10, "a record sent with the new token")
        finally:
            process.terminate()
            process.wait(timeout=30)
