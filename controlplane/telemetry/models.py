"""Raw samples from node agents (NodeSample per GPU reading, WorkerSample per engine worker), and their roll-ups.

Roll-ups hold minute and hour buckets per node (NodeRollup), per pool of the fleet (TierRollup: tier x role x
service) and per service (ServiceRollup: requests, SLO attainment, tokens served). See telemetry.rollups for
how they are computed and why they stay small.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class NodeSample(models.Model):
    """One GPU's reading at one instant. (node, gpu_index, ts) is unique, so a resent batch is a no-op."""

    node = models.ForeignKey("fleet.Node", on_delete=models.CASCADE, related_name="samples")
    ts = models.DateTimeField()
    gpu_index = models.PositiveSmallIntegerField()
    utilization = models.FloatField(help_text="0..1")
    power_w = models.FloatField()
    memory_used_bytes = models.BigIntegerField(default=0)
    memory_total_bytes = models.BigIntegerField(default=0)
    temperature_c = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [models.Index(fields=["node", "ts"], name="nodesample_node_ts_idx")]
        constraints = [
            models.UniqueConstraint(fields=["node", "gpu_index", "ts"], name="nodesample_unique_reading"),
            models.CheckConstraint(condition=Q(utilization__gte=0) & Q(utilization__lte=1), name="nodesample_util_range"),
            models.CheckConstraint(condition=Q(power_w__gte=0), name="nodesample_power_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}/gpu{self.gpu_index}@{self.ts:%H:%M:%S}"


class WorkerSample(models.Model):
    """One engine worker's metrics at one instant, read from its /metrics."""

    node = models.ForeignKey("fleet.Node", on_delete=models.CASCADE, related_name="worker_samples")
    worker_name = models.CharField(max_length=100)
    service = models.ForeignKey("traffic.Service", null=True, blank=True, on_delete=models.CASCADE, related_name="worker_samples")
    role = models.CharField(max_length=16)
    ts = models.DateTimeField()
    requests_running = models.PositiveIntegerField(default=0)
    requests_waiting = models.PositiveIntegerField(default=0)
    kv_cache_usage = models.FloatField(default=0.0, help_text="0..1")
    prompt_tokens_per_s = models.FloatField(default=0.0)
    generation_tokens_per_s = models.FloatField(default=0.0)
    ttft_p50_s = models.FloatField(null=True, blank=True)
    ttft_p90_s = models.FloatField(null=True, blank=True)
    itl_p50_s = models.FloatField(null=True, blank=True)
    itl_p90_s = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-ts"]
        indexes = [
            models.Index(fields=["node", "ts"], name="workersample_node_ts_idx"),
            models.Index(fields=["service", "ts"], name="workersample_service_ts_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["node", "worker_name", "ts"], name="workersample_unique_reading"),
            models.CheckConstraint(
                condition=Q(kv_cache_usage__gte=0) & Q(kv_cache_usage__lte=1), name="workersample_kv_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}/{self.worker_name}@{self.ts:%H:%M:%S}"


class Resolution(models.IntegerChoices):
    MINUTE = 60, "Minute"
    HOUR = 3600, "Hour"


class NodeRollup(models.Model):
    """One node over one bucket: its GPUs' mean utilization and power, the energy they drew, what they cost.

    `gpus` is the mean number of GPUs held over the bucket (a node registered mid-bucket holds a share),
    so `cost_usd` is gpus x price x bucket length. Means are over readings; `samples` weighs them.
    """

    node = models.ForeignKey("fleet.Node", on_delete=models.CASCADE, related_name="rollups")
    resolution_s = models.PositiveIntegerField(choices=Resolution.choices)
    bucket_start = models.DateTimeField()
    gpus = models.FloatField(default=0.0)
    gpu_util_mean = models.FloatField(null=True, blank=True, help_text="0..1; empty when no GPU reported.")
    power_w_mean = models.FloatField(null=True, blank=True, help_text="Per GPU reading.")
    energy_j = models.FloatField(default=0.0)
    cost_usd = models.FloatField(default=0.0)
    samples = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-bucket_start"]
        indexes = [models.Index(fields=["resolution_s", "bucket_start"], name="noderollup_bucket_idx")]
        constraints = [
            models.UniqueConstraint(fields=["node", "resolution_s", "bucket_start"], name="noderollup_unique_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}@{self.bucket_start:%Y-%m-%d %H:%M}/{self.resolution_s}s"


class TierRollup(models.Model):
    """The fleet over one bucket, by pool: GPU tier x worker role x service.

    GPUs that no worker holds are role `idle` with no service. Tokens are the engines' own counts
    (their prompt and generation rates integrated over time), by the role and service the worker reported.
    """

    tier = models.ForeignKey("fleet.GpuTier", on_delete=models.CASCADE, related_name="rollups")
    role = models.CharField(max_length=16)
    service = models.ForeignKey(
        "traffic.Service", null=True, blank=True, on_delete=models.CASCADE, related_name="tier_rollups"
    )
    resolution_s = models.PositiveIntegerField(choices=Resolution.choices)
    bucket_start = models.DateTimeField()
    gpus = models.FloatField(default=0.0)
    gpu_util_mean = models.FloatField(null=True, blank=True)
    power_w_mean = models.FloatField(null=True, blank=True)
    energy_j = models.FloatField(default=0.0)
    cost_usd = models.FloatField(default=0.0)
    prompt_tokens = models.FloatField(default=0.0)
    generation_tokens = models.FloatField(default=0.0)
    samples = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-bucket_start"]
        indexes = [models.Index(fields=["resolution_s", "bucket_start"], name="tierrollup_bucket_idx")]
        constraints = [
            # Two partial keys instead of one: a NULL service would never clash in a plain unique key.
            models.UniqueConstraint(
                fields=["resolution_s", "bucket_start", "tier", "role", "service"],
                condition=Q(service__isnull=False),
                name="tierrollup_unique_service_pool",
            ),
            models.UniqueConstraint(
                fields=["resolution_s", "bucket_start", "tier", "role"],
                condition=Q(service__isnull=True),
                name="tierrollup_unique_unserved_pool",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier_id}/{self.role}/{self.service_id}@{self.bucket_start:%Y-%m-%d %H:%M}"


class ServiceRollup(models.Model):
    """One service's requests over one bucket, from the routers' request records (by arrival time).

    `requests_timed` have both latencies; `requests_slo_met` of them met both SLOs. Tokens are those of
    requests that finished `ok`: the prompt and output tokens served, each request counted once.
    """

    service = models.ForeignKey("traffic.Service", on_delete=models.CASCADE, related_name="rollups")
    resolution_s = models.PositiveIntegerField(choices=Resolution.choices)
    bucket_start = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    requests_timed = models.PositiveIntegerField(default=0)
    requests_slo_met = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-bucket_start"]
        indexes = [models.Index(fields=["resolution_s", "bucket_start"], name="servicerollup_bucket_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "resolution_s", "bucket_start"], name="servicerollup_unique_bucket"
            ),
            models.CheckConstraint(
                condition=Q(requests_slo_met__lte=models.F("requests_timed")), name="servicerollup_met_within_timed"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service_id}@{self.bucket_start:%Y-%m-%d %H:%M}/{self.resolution_s}s"


class CorrectedPhase(models.TextChoices):
    PREFILL = "prefill", "Prefill"
    DECODE = "decode", "Decode"


class PerfCorrection(models.Model):
    """How far live workers of one (model, tier, TP) run from the perf model in one phase.

    `factor` is measured over predicted time (2.0: twice as slow as modelled), an exponentially weighted
    mean of the log ratio over the windows seen, bounded; the planner times workers with it. `samples`
    counts the worker samples it was fitted from, `last_observed` is the newest of them (the next update
    reads only later ones), `updated_at` when it last moved.
    """

    model_name = models.CharField(max_length=100)
    tier = models.CharField(max_length=64)
    tp = models.PositiveSmallIntegerField()
    phase = models.CharField(max_length=16, choices=CorrectedPhase.choices)
    factor = models.FloatField(default=1.0)
    samples = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()
    last_observed = models.DateTimeField()

    class Meta:
        ordering = ["model_name", "tier", "tp", "phase"]
        constraints = [
            models.UniqueConstraint(fields=["model_name", "tier", "tp", "phase"], name="perfcorrection_unique_key"),
            models.CheckConstraint(condition=Q(factor__gt=0), name="perfcorrection_factor_positive"),
            models.CheckConstraint(condition=Q(tp__gt=0), name="perfcorrection_tp_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.tier} TP{self.tp} {self.phase}: x{self.factor:.3f}"
