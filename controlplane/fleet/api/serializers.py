from __future__ import annotations

from rest_framework import serializers

from controlplane.common.serializers import StrictModelSerializer
from controlplane.fleet.models import Engine, GpuTier, Node, Worker, WorkerRole, WorkerStatus
from controlplane.planning.models import Plan
from controlplane.traffic.models import Service


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


class NodeRegisterSerializer(serializers.Serializer[None]):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", help_text="Letters, digits, . _ -")
    tier = serializers.SlugRelatedField(slug_field="name", queryset=GpuTier.objects.all())
    gpu_count = serializers.IntegerField(min_value=1, max_value=64)
    agent_url = serializers.URLField()
    agent_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False, default=dict)


class NodeRegisteredSerializer(serializers.Serializer[None]):
    node = NodeSerializer()
    token = serializers.CharField(help_text="The node token. Shown once; the agent stores it.")


class WorkerReportSerializer(serializers.Serializer[None]):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=WorkerRole.choices)
    engine = serializers.ChoiceField(choices=Engine.choices)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    tp = serializers.IntegerField(min_value=1, max_value=64, default=1)
    gpu_ids = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=63), default=list)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False, allow_null=True, default=None)
    status = serializers.ChoiceField(choices=WorkerStatus.choices)
    service = serializers.SlugRelatedField(
        slug_field="name", queryset=Service.objects.all(), required=False, allow_null=True, default=None
    )
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all(), required=False, allow_null=True, default=None)


class HeartbeatSerializer(serializers.Serializer[None]):
    generation_applied = serializers.IntegerField(min_value=0)
    agent_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    workers = WorkerReportSerializer(many=True)

    def validate_workers(self, value: list[dict[str, object]]) -> list[dict[str, object]]:
        names = [worker["name"] for worker in value]
        if len(names) != len(set(names)):
            raise serializers.ValidationError("Worker names must be unique.")
        return value


class HeartbeatAnswerSerializer(serializers.Serializer[None]):
    generation_desired = serializers.IntegerField()
    status = serializers.CharField()
