from __future__ import annotations

from rest_framework import serializers

from controlplane.common.serializers import StrictModelSerializer
from controlplane.fleet.models import GpuTier, Node, Worker


class GpuTierSerializer(StrictModelSerializer[GpuTier]):
    price_usd_per_gpu_h = serializers.DecimalField(max_digits=10, decimal_places=4, min_value=0)

    class Meta:
        model = GpuTier
        fields = [
            "id", "name", "vendor", "bf16_tflops", "fp8_tflops", "hbm_bandwidth_gbps", "memory_gb", "tdp_w",
            "idle_w", "link_bandwidth_gbps", "link_kind", "price_usd_per_gpu_h", "source", "updated_at",
        ]
        read_only_fields = [name for name in fields if name != "price_usd_per_gpu_h"]


class NodeSerializer(StrictModelSerializer[Node]):
    tier = serializers.SlugRelatedField(slug_field="name", queryset=GpuTier.objects.all())
    gpu_count = serializers.IntegerField(min_value=1, max_value=64)

    class Meta:
        model = Node
        fields = [
            "id", "name", "tier", "gpu_count", "agent_url", "status", "labels", "generation_desired",
            "generation_applied", "last_heartbeat_at", "agent_version", "created_at",
        ]
        read_only_fields = [
            "id", "generation_desired", "generation_applied", "last_heartbeat_at", "agent_version", "created_at",
        ]

    def validate_labels(self, value: object) -> object:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise serializers.ValidationError("Labels are a JSON object of strings.")
        return value

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if self.instance is not None:
            # A node's name and tier are its identity: change them by registering a new node.
            fields["name"].read_only = True
            fields["tier"].read_only = True
        return fields


class WorkerSerializer(serializers.ModelSerializer[Worker]):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Worker
        fields = [
            "id", "node", "name", "service", "plan", "role", "engine", "model_name", "tp", "gpu_ids", "port",
            "status", "updated_at",
        ]
        read_only_fields = fields
