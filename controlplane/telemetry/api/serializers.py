from __future__ import annotations

from rest_framework import serializers

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
