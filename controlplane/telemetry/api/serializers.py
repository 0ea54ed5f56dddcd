from __future__ import annotations

from rest_framework import serializers

from controlplane.fleet.models import GpuTier, WorkerRole
from controlplane.telemetry.accounting import IDLE
from controlplane.telemetry.models import NodeSample, PerfCorrection, WorkerSample
from controlplane.telemetry.selectors import SERIES_METRICS, WINDOWS
from controlplane.traffic.models import Service


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


class PerfCorrectionSerializer(serializers.ModelSerializer[PerfCorrection]):
    class Meta:
        model = PerfCorrection
        fields = ["id", "model_name", "tier", "tp", "phase", "factor", "samples", "updated_at", "last_observed"]
        read_only_fields = fields
        extra_kwargs = {
            "factor": {"help_text": "Measured over predicted step time (2.0: twice as slow as the perf model says); "
                                    "the planner times this tier, TP and phase with it."},
            "samples": {"help_text": "Worker samples the factor was fitted from."},
            "last_observed": {"help_text": "The newest sample used; later updates read only newer ones."},
        }


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


# --- Accounting: summary and series --------------------------------------------------------------------


class SummaryQuerySerializer(serializers.Serializer[None]):
    window = serializers.ChoiceField(choices=list(WINDOWS), default="1h")
    service = serializers.SlugRelatedField(
        slug_field="name", queryset=Service.objects.all(), required=False, help_text="Narrow to one service."
    )


class SeriesQuerySerializer(SummaryQuerySerializer):
    metric = serializers.ChoiceField(choices=list(SERIES_METRICS))
    tier = serializers.SlugRelatedField(slug_field="name", queryset=GpuTier.objects.all(), required=False)
    role = serializers.ChoiceField(choices=[*WorkerRole.values, IDLE], required=False)


class PoolUtilizationSerializer(serializers.Serializer[None]):
    tier = serializers.CharField()
    role = serializers.CharField()
    gpus = serializers.FloatField(help_text="Mean GPUs held over the window.")
    utilization = serializers.FloatField(allow_null=True)


class UtilizationSerializer(serializers.Serializer[None]):
    mean = serializers.FloatField(source="utilization", allow_null=True)
    by_tier = serializers.DictField(source="utilization_by_tier", child=serializers.FloatField(allow_null=True))
    by_role = serializers.DictField(source="utilization_by_role", child=serializers.FloatField(allow_null=True))
    by_pool = PoolUtilizationSerializer(source="utilization_by_pool", many=True)


class TokenRatesSerializer(serializers.Serializer[None]):
    prompt = serializers.FloatField(source="prompt_tokens_per_s")
    generation = serializers.FloatField(source="generation_tokens_per_s")


class ServedTokensSerializer(serializers.Serializer[None]):
    prompt = serializers.IntegerField(source="served_prompt_tokens")
    output = serializers.IntegerField(source="served_output_tokens")


class AttainmentSerializer(serializers.Serializer[None]):
    service = serializers.CharField()
    attainment = serializers.FloatField(allow_null=True, help_text="Share of timed requests that met both SLOs.")
    requests_timed = serializers.IntegerField()
    target = serializers.FloatField()


class ServiceSavingSerializer(serializers.Serializer[None]):
    service = serializers.CharField()
    baseline_usd_per_h = serializers.FloatField()
    cost_usd_per_h = serializers.FloatField()
    saving_usd_per_h = serializers.FloatField()
    saving_share = serializers.FloatField(allow_null=True)


class SavingSerializer(serializers.Serializer[None]):
    baseline_usd_per_h = serializers.FloatField(
        help_text="What the active plans' colocated baselines were predicted to cost."
    )
    cost_usd_per_h = serializers.FloatField(help_text="What those services' GPUs cost now.")
    saving_usd_per_h = serializers.FloatField()
    saving_share = serializers.FloatField(allow_null=True)
    services = ServiceSavingSerializer(many=True)


class SummarySerializer(serializers.Serializer[None]):
    window = serializers.CharField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    resolution_s = serializers.IntegerField()
    service = serializers.CharField(allow_null=True)
    cost_usd_per_h = serializers.FloatField(help_text="Now: every GPU held (idle ones too) at its tier's price.")
    power_kw = serializers.FloatField(allow_null=True, help_text="Now: the latest reading of each GPU.")
    gpus = serializers.IntegerField()
    gpus_reporting = serializers.IntegerField()
    cost_usd = serializers.FloatField(help_text="Over the window.")
    energy_kwh = serializers.FloatField(help_text="Over the window.")
    utilization = UtilizationSerializer(source="*")
    tokens_per_s = TokenRatesSerializer(source="*", help_text="Over the window: the engines' own rates.")
    served_tokens = ServedTokensSerializer(source="*", help_text="Over the window: requests served ok.")
    usd_per_million_tokens = serializers.FloatField(allow_null=True, help_text="Cost over served prompt + output tokens.")
    tokens_per_joule = serializers.FloatField(allow_null=True, help_text="Served prompt + output tokens per joule.")
    attainment = AttainmentSerializer(many=True)
    saving_vs_colocated = SavingSerializer(allow_null=True)


class SeriesSerializer(serializers.Serializer[None]):
    metric = serializers.CharField()
    unit = serializers.CharField()
    window = serializers.CharField()
    resolution_s = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    x = serializers.ListField(child=serializers.DateTimeField(), help_text="Bucket starts.")
    y = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text="Null where nothing was rolled up.")
