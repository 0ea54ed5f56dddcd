"""Raw samples from node agents: one row per GPU (NodeSample) and per engine worker (WorkerSample)."""

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
