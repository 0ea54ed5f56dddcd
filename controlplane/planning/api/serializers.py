from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from controlplane.fleet.models import GpuTier
from controlplane.planning.diff import plan_diff
from controlplane.planning.models import Objective, Plan, Rollout, RolloutStep, RolloutStrategy
from controlplane.planning.selectors import active_plan
from profiler.traces import FORMATS


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


class PlanDetailSerializer(PlanSerializer):
    """A plan with its diff against its service's active plan."""

    diff = serializers.SerializerMethodField()

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "diff"]
        read_only_fields = fields

    def get_diff(self, plan: Plan) -> dict[str, Any]:
        return plan_diff(plan, active_plan(plan.service_id))


_TP_CHOICES = [1, 2, 4, 8]
_SOURCE_FIELDS = {
    "profile": {"rate_rps"},
    "trace": {"trace", "format", "rate_rps"},
    "explicit": {"rate_rps", "lengths", "prompt_tokens_p50", "prompt_tokens_p90", "output_tokens_p50",
                 "output_tokens_p90"},
}
_MAX_LENGTHS = 100_000


class PlanCreateSerializer(serializers.Serializer[None]):
    """A request for a draft plan: where the workload comes from, the objective and the constraints."""

    source = serializers.ChoiceField(choices=list(_SOURCE_FIELDS))
    objective = serializers.ChoiceField(choices=Objective.choices, default=Objective.COST)
    budget_usd_per_h = serializers.FloatField(min_value=0.0001, max_value=1e9, required=False, allow_null=True)
    power_cap_kw = serializers.FloatField(min_value=0.0001, max_value=1e9, required=False, allow_null=True)
    allowed_tiers = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                          allow_empty=False, max_length=64)
    allowed_tp = serializers.ListField(child=serializers.ChoiceField(choices=_TP_CHOICES), required=False,
                                       allow_empty=False, max_length=4)
    headroom = serializers.FloatField(min_value=1.0, max_value=10.0, required=False)
    rate_rps = serializers.FloatField(min_value=1e-6, max_value=1e7, required=False)
    lengths = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField(min_value=0),
                                                                min_length=2, max_length=3),
                                    required=False, allow_empty=False, max_length=_MAX_LENGTHS)
    prompt_tokens_p50 = serializers.FloatField(min_value=1, max_value=10_000_000, required=False)
    prompt_tokens_p90 = serializers.FloatField(min_value=1, max_value=10_000_000, required=False)
    output_tokens_p50 = serializers.FloatField(min_value=1, max_value=10_000_000, required=False)
    output_tokens_p90 = serializers.FloatField(min_value=1, max_value=10_000_000, required=False)
    trace = serializers.FileField(required=False)
    format = serializers.ChoiceField(choices=list(FORMATS), required=False)

    def validate_allowed_tiers(self, value: list[str]) -> list[str]:
        known = set(GpuTier.objects.values_list("name", flat=True))
        unknown = sorted(set(value) - known)
        if unknown:
            raise serializers.ValidationError(f"Unknown tiers: {', '.join(unknown)}.")
        return list(dict.fromkeys(value))

    def validate_lengths(self, value: list[list[int]]) -> list[list[int]]:
        for index, row in enumerate(value):
            if row[0] < 1 or row[1] < 1:
                raise serializers.ValidationError(f"Row {index}: prompt and output must be at least 1 token.")
            if len(row) == 3 and row[2] > row[0]:
                raise serializers.ValidationError(f"Row {index}: cached tokens exceed the prompt.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        initial = self.initial_data if isinstance(self.initial_data, Mapping) else {}
        for name in initial:
            if name not in self.fields:
                errors[name] = ["Unknown field."]
        source = attrs["source"]
        for name in set().union(*_SOURCE_FIELDS.values()) - _SOURCE_FIELDS[source]:
            if name in attrs:
                errors[name] = [f"Not used with source {source}."]
        if source == "explicit":
            if "rate_rps" not in attrs:
                errors["rate_rps"] = ["Required for an explicit workload."]
            percentiles = "prompt_tokens_p50" in attrs or "output_tokens_p50" in attrs
            if "lengths" in attrs and percentiles:
                errors["lengths"] = ["Give lengths or percentiles, not both."]
            elif "lengths" not in attrs and not ("prompt_tokens_p50" in attrs and "output_tokens_p50" in attrs):
                errors["lengths"] = ["Give lengths, or prompt_tokens_p50 and output_tokens_p50."]
        if source == "trace":
            for name in ("trace", "format"):
                if name not in attrs:
                    errors[name] = ["Required with source trace (upload the file as multipart form data)."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PlanApproveSerializer(serializers.Serializer[None]):
    strategy = serializers.ChoiceField(choices=RolloutStrategy.choices, default=RolloutStrategy.ROLLING)
    options = serializers.DictField(required=False, help_text="batch_nodes, canary_share, canary_duration_s, "
                                    "ready_timeout_s, drain_deadline_s, max_failed_workers")
