from __future__ import annotations

from rest_framework import serializers

from controlplane.fleet.models import WorkerRole
from controlplane.telemetry.models import NodeSample, WorkerSample


class NodeSampleSerializer(serializers.ModelSerializer[NodeSample]):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = NodeSample
        fields = ["id", "node", "ts", "gpu_index", "utilization", "power_w", "memory_used_bytes", "memory_total_bytes",
                  "temperature_c"]
        read_only_fields = fields


class WorkerSampleSerializer(serializers.ModelSerializer[WorkerSample]):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = WorkerSample
        fields = [
            "id", "node", "worker_name", "service", "role", "ts", "requests_running", "requests_waiting",
            "kv_cache_usage", "prompt_tokens_per_s", "generation_tokens_per_s", "ttft_p50_s", "ttft_p90_s",
            "itl_p50_s", "itl_p90_s",
        ]
        read_only_fields = fields


class IncomingNodeSampleSerializer(serializers.Serializer[None]):
    """One GPU reading in an agent's batch (documentation: batches are checked by telemetry.ingest, faster)."""

    ts = serializers.DateTimeField(help_text="ISO 8601 with a timezone, or Unix seconds.")
    gpu_index = serializers.IntegerField(min_value=0, max_value=63)
    utilization = serializers.FloatField(min_value=0, max_value=1)
    power_w = serializers.FloatField(min_value=0)
    memory_used_bytes = serializers.IntegerField(min_value=0, required=False)
    memory_total_bytes = serializers.IntegerField(min_value=0, required=False)
    temperature_c = serializers.FloatField(required=False)


class IncomingWorkerSampleSerializer(serializers.Serializer[None]):
    ts = serializers.DateTimeField()
    worker = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=WorkerRole.choices)
    service = serializers.CharField(required=False)
    requests_running = serializers.IntegerField(min_value=0)
    requests_waiting = serializers.IntegerField(min_value=0)
    kv_cache_usage = serializers.FloatField(min_value=0, max_value=1)
    prompt_tokens_per_s = serializers.FloatField(min_value=0)
    generation_tokens_per_s = serializers.FloatField(min_value=0)
    ttft_p50_s = serializers.FloatField(required=False)
    ttft_p90_s = serializers.FloatField(required=False)
    itl_p50_s = serializers.FloatField(required=False)
    itl_p90_s = serializers.FloatField(required=False)


class SampleBatchSerializer(serializers.Serializer[None]):
    node_samples = IncomingNodeSampleSerializer(many=True, required=False)
    worker_samples = IncomingWorkerSampleSerializer(many=True, required=False)


class SamplesStoredSerializer(serializers.Serializer[None]):
    node_samples_received = serializers.IntegerField()
    node_samples_stored = serializers.IntegerField()
    worker_samples_received = serializers.IntegerField()
    worker_samples_stored = serializers.IntegerField()
