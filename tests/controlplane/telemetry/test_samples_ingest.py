"""Agents' sample batches: stored for their own node only, once, and refused whole when malformed."""

from __future__ import annotations

import pytest

from controlplane.telemetry.models import NodeSample, WorkerSample
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db

TS = 1_800_000_000.0


def batch(ts=TS, gpus=2, **gpu_overrides):
    return {
        "node_samples": [
            {"ts": ts, "gpu_index": i, "utilization": 0.5, "power_w": 420.0, "memory_used_bytes": 70 * 2**30,
             "memory_total_bytes": 80 * 2**30, "temperature_c": 61.0, **gpu_overrides} for i in range(gpus)
        ],
        "worker_samples": [
            {"ts": ts, "worker": "decode-0", "role": "decode", "service": "chat", "requests_running": 12,
             "requests_waiting": 0, "kv_cache_usage": 0.4, "prompt_tokens_per_s": 0.0,
             "generation_tokens_per_s": 610.0, "itl_p50_s": 0.021, "itl_p90_s": 0.03},
        ],
    }


@pytest.fixture
def chat(db):
    return ServiceFactory(name="chat")


def test_samples_are_stored_for_the_tokens_node(register_node, chat):
    node, client = register_node()
    response = client.post("/api/v1/telemetry/samples", batch(), format="json")
    assert response.status_code == 200, response.content
    assert response.json()["node_samples_stored"] == 2
    assert set(NodeSample.objects.values_list("node_id", flat=True)) == {node["id"]}
    sample = WorkerSample.objects.get()
    assert (sample.service, sample.generation_tokens_per_s) == (chat, 610.0)


def test_a_resent_batch_stores_nothing_twice(register_node, chat):
    _, client = register_node()
    client.post("/api/v1/telemetry/samples", batch(), format="json")
    response = client.post("/api/v1/telemetry/samples", batch(), format="json")
    assert response.json()["node_samples_stored"] == 0
    assert response.json()["worker_samples_stored"] == 0
    assert NodeSample.objects.count() == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"utilization": 1.5}, "utilization"),
        ({"power_w": -3}, "power_w"),
        ({"gpu_index": 99}, "gpu_index"),
        ({"ts": "now"}, "ts"),
        ({"memory_used_bytes": 1.5}, "memory_used_bytes"),
    ],
)
def test_a_bad_sample_refuses_the_batch_naming_it(register_node, chat, overrides, field):
    _, client = register_node()
    response = client.post("/api/v1/telemetry/samples", batch(**overrides), format="json")
    assert response.status_code == 400
    assert f"node_samples[0].{field}" in response.json()["error"]["fields"]
    assert not NodeSample.objects.exists()
    assert not WorkerSample.objects.exists()


def test_only_node_tokens_send_samples(api_as, alice, bob, chat):
    assert api_as(bob).post("/api/v1/telemetry/samples", batch(), format="json").status_code == 403
    assert api_as(alice).post("/api/v1/telemetry/samples", batch(), format="json").status_code == 403
