from __future__ import annotations

from typing import Any

from rest_framework import serializers

from controlplane.common.serializers import StrictModelSerializer
from controlplane.traffic.models import (
    ClassifierModel,
    RecordStatus,
    RequestClass,
    RequestRecord,
    Service,
    ServiceApiKey,
    WorkloadProfile,
)

_ARCH_FIELDS = {
    "params_b": float, "layers": int, "hidden_size": int, "attention_heads": int, "kv_heads": int,
    "head_dim": int, "intermediate_size": int, "vocab_size": int, "max_context": int,
}


class ServiceSerializer(StrictModelSerializer[Service]):
    ttft_slo_s = serializers.FloatField(min_value=0.001, max_value=600)
    tpot_slo_s = serializers.FloatField(min_value=0.0001, max_value=60)
    slo_percentile = serializers.FloatField(min_value=0.5, max_value=0.999, required=False)
    attainment_target = serializers.FloatField(min_value=0.01, max_value=1.0, required=False)
    rebalance_interval_s = serializers.IntegerField(min_value=60, max_value=7 * 86400, required=False)
    rebalance_min_saving = serializers.FloatField(min_value=0.0, max_value=0.9, required=False)
    min_instances_per_phase = serializers.IntegerField(min_value=0, max_value=1000, required=False)

    class Meta:
        model = Service
        fields = [
            "id", "name", "model_name", "architecture", "dtype", "ttft_slo_s", "tpot_slo_s", "slo_percentile",
            "attainment_target", "rebalance_interval_s", "rebalance_min_saving", "auto_approve",
            "min_instances_per_phase", "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate_architecture(self, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, dict):
            raise serializers.ValidationError("The architecture is a JSON object.")
        errors = []
        for name, kind in _ARCH_FIELDS.items():
            number = value.get(name)
            if not isinstance(number, (int, float)) or isinstance(number, bool) or number <= 0:
                errors.append(f"{name}: a positive {kind.__name__} is required.")
            elif kind is int and not float(number).is_integer():
                errors.append(f"{name}: must be an integer.")
        extra = sorted(set(value) - set(_ARCH_FIELDS))
        if extra:
            errors.append(f"unknown keys: {', '.join(extra)}.")
        if errors:
            raise serializers.ValidationError(errors)
        return value


class RequestRecordSerializer(serializers.ModelSerializer[RequestRecord]):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = RequestRecord
        fields = [
            "id", "service", "arrival_at", "prompt_tokens", "output_tokens", "cached_prompt_tokens", "max_tokens",
            "endpoint", "client", "ttft_s", "tpot_s", "e2e_s", "prefill_worker", "decode_worker", "predicted_class",
            "status", "source", "received_at",
        ]
        read_only_fields = fields


class WorkloadProfileSerializer(serializers.ModelSerializer[WorkloadProfile]):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = WorkloadProfile
        fields = [
            "id", "service", "window_start", "window_end", "request_count", "arrival_rate_rps", "burstiness_cv",
            "prompt_tokens_p50", "prompt_tokens_p90", "prompt_tokens_p99", "output_tokens_p50", "output_tokens_p90",
            "output_tokens_p99", "prefix_cache_share", "prefill_share", "prefill_share_se", "prefill_gpu_s",
            "decode_gpu_s", "workload_class", "confidence", "class_mix", "forecast", "created_at",
        ]
        read_only_fields = fields


class IngestRecordSerializer(serializers.Serializer[None]):
    """One record in a router's batch (documentation only: batches are checked by traffic.ingest, faster)."""

    id = serializers.UUIDField()
    service = serializers.CharField()
    arrival_at = serializers.DateTimeField(help_text="ISO 8601 with a timezone, or Unix seconds.")
    prompt_tokens = serializers.IntegerField(min_value=0)
    output_tokens = serializers.IntegerField(min_value=0)
    cached_prompt_tokens = serializers.IntegerField(min_value=0, required=False)
    max_tokens = serializers.IntegerField(min_value=0, required=False)
    endpoint = serializers.CharField(required=False)
    client = serializers.CharField(required=False)
    ttft_s = serializers.FloatField(required=False)
    tpot_s = serializers.FloatField(required=False)
    e2e_s = serializers.FloatField(required=False)
    prefill_worker = serializers.CharField(required=False)
    decode_worker = serializers.CharField(required=False)
    predicted_class = serializers.ChoiceField(choices=RequestClass.choices, required=False)
    status = serializers.ChoiceField(choices=RecordStatus.choices, required=False)


class RecordBatchSerializer(serializers.Serializer[None]):
    records = IngestRecordSerializer(many=True)


class IngestResultSerializer(serializers.Serializer[None]):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class ServiceApiKeySerializer(serializers.ModelSerializer[ServiceApiKey]):
    class Meta:
        model = ServiceApiKey
        fields = ["id", "name", "prefix", "created_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "revoked_at"]


class NewServiceApiKeySerializer(ServiceApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The client key. Shown once.")

    class Meta(ServiceApiKeySerializer.Meta):
        fields = [*ServiceApiKeySerializer.Meta.fields, "key"]


class RoutingSerializer(serializers.Serializer[None]):
    service = serializers.CharField()
    plan = serializers.IntegerField(allow_null=True)
    routing = serializers.DictField(allow_null=True)
    admission_model = serializers.DictField(allow_null=True, help_text="The active admission model's JSON.")
    api_key_digests = serializers.ListField(child=serializers.CharField())
    etag = serializers.CharField()


class ClassifierModelSerializer(serializers.ModelSerializer[ClassifierModel]):
    activated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ClassifierModel
        fields = ["id", "kind", "version", "metrics", "trained_on", "features", "is_active", "created_at",
                  "activated_at", "activated_by"]
        read_only_fields = fields
