from __future__ import annotations

from rest_framework import serializers

from controlplane.planning.models import Plan, Rollout, RolloutStep


class PlanSerializer(serializers.ModelSerializer[Plan]):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Plan
        fields = [
            "id", "service", "status", "objective", "instances", "placement", "routing", "predictions", "baselines",
            "predicted_cost_usd_per_h", "predicted_power_kw", "reason", "inputs", "created_by", "created_at",
            "decided_by", "decided_at", "activated_at",
        ]
        read_only_fields = fields


class PlanRejectSerializer(serializers.Serializer[None]):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class RolloutStepSerializer(serializers.ModelSerializer[RolloutStep]):
    class Meta:
        model = RolloutStep
        fields = ["index", "kind", "params", "status", "attempts", "claimed_at", "finished_at", "detail"]
        read_only_fields = fields


class RolloutSerializer(serializers.ModelSerializer[Rollout]):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)
    steps = RolloutStepSerializer(many=True, read_only=True)

    class Meta:
        model = Rollout
        fields = [
            "id", "service", "plan", "previous_plan", "strategy", "status", "options", "reason", "created_at",
            "started_at", "finished_at", "steps",
        ]
        read_only_fields = fields
