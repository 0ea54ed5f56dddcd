"""The fleet: GPU tiers (seeded from profiler.catalog), nodes, the workers they run, and their assignments."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class GpuTier(models.Model):
    """A kind of GPU. Hardware numbers come from the catalog; operators edit the price."""

    name = models.CharField(max_length=64, unique=True)
    vendor = models.CharField(max_length=32)
    bf16_tflops = models.FloatField()
    fp8_tflops = models.FloatField(null=True, blank=True, help_text="Empty where the GPU has no FP8.")
    hbm_bandwidth_gbps = models.FloatField()
    memory_gb = models.FloatField()
    tdp_w = models.FloatField()
    idle_w = models.FloatField()
    link_bandwidth_gbps = models.FloatField()
    link_kind = models.CharField(max_length=32)
    price_usd_per_gpu_h = models.DecimalField(max_digits=10, decimal_places=4)
    source = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(bf16_tflops__gt=0), name="tier_bf16_tflops_positive"),
            models.CheckConstraint(condition=Q(hbm_bandwidth_gbps__gt=0), name="tier_bandwidth_positive"),
            models.CheckConstraint(condition=Q(memory_gb__gt=0), name="tier_memory_positive"),
            models.CheckConstraint(condition=Q(tdp_w__gt=0) & Q(idle_w__gte=0), name="tier_power_valid"),
            models.CheckConstraint(condition=Q(idle_w__lte=F("tdp_w")), name="tier_idle_below_tdp"),
            models.CheckConstraint(condition=Q(price_usd_per_gpu_h__gte=0), name="tier_price_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class NodeStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    READY = "ready", "Ready"
    DRAINING = "draining", "Draining"
    CORDONED = "cordoned", "Cordoned"
    UNREACHABLE = "unreachable", "Unreachable"


class Node(models.Model):
    """One GPU machine with its node agent."""

    name = models.CharField(max_length=100, unique=True)
    tier = models.ForeignKey(GpuTier, on_delete=models.PROTECT, related_name="nodes")
    gpu_count = models.PositiveSmallIntegerField()
    agent_url = models.URLField(blank=True, help_text="Base URL of the node agent's API.")
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.REGISTERED)
    labels = models.JSONField(default=dict, blank=True)
    generation_desired = models.PositiveIntegerField(default=0)
    generation_applied = models.PositiveIntegerField(default=0)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    agent_version = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(gpu_count__gt=0), name="node_gpu_count_positive"),
        ]
        indexes = [models.Index(fields=["status", "last_heartbeat_at"], name="node_status_heartbeat_idx")]

    def __str__(self) -> str:
        return self.name


class WorkerRole(models.TextChoices):
    PREFILL = "prefill", "Prefill"
    DECODE = "decode", "Decode"
    COLOCATED = "colocated", "Colocated"
    ROUTER = "router", "Router"


class Engine(models.TextChoices):
    SIM = "sim", "Simulated"
    VLLM = "vllm", "vLLM"
    SGLANG = "sglang", "SGLang"


class WorkerStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    STARTING = "starting", "Starting"
    READY = "ready", "Ready"
    DRAINING = "draining", "Draining"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class Worker(models.Model):
    """An engine (or router) process on a node, as the node last reported it."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="workers")
    name = models.CharField(max_length=100)
    service = models.ForeignKey("traffic.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="workers")
    plan = models.ForeignKey("planning.Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="workers")
    role = models.CharField(max_length=16, choices=WorkerRole.choices)
    engine = models.CharField(max_length=16, choices=Engine.choices, default=Engine.SIM)
    model_name = models.CharField(max_length=100, blank=True)
    tp = models.PositiveSmallIntegerField(default=1)
    gpu_ids = models.JSONField(default=list, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.PENDING)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["node__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["node", "name"], name="worker_unique_name_per_node"),
            models.CheckConstraint(condition=Q(tp__gt=0), name="worker_tp_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.node.name}/{self.name}"


class Assignment(models.Model):
    """The desired state of one node at one generation: the workers it should run."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="assignments")
    generation = models.PositiveIntegerField()
    plan = models.ForeignKey("planning.Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="assignments")
    workers = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    pushed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node", "-generation"]
        constraints = [
            models.UniqueConstraint(fields=["node", "generation"], name="assignment_unique_generation"),
            models.CheckConstraint(condition=Q(generation__gt=0), name="assignment_generation_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.node.name}@{self.generation}"
