"""Services with their SLOs, the request records routers send, and the workload profiles built from them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Dtype(models.TextChoices):
    BF16 = "bf16", "BF16"
    FP16 = "fp16", "FP16"
    FP8 = "fp8", "FP8"


class Service(models.Model):
    """A model served under one name, with its latency SLOs and rebalancing policy.

    `model_name` names a catalog architecture; for a model the catalog lacks, the operator gives the
    architecture in `architecture` (the catalog's ModelArch fields) and the perf model uses that.
    """

    name = models.SlugField(max_length=100, unique=True)
    model_name = models.CharField(max_length=100)
    architecture = models.JSONField(null=True, blank=True)
    dtype = models.CharField(max_length=8, choices=Dtype.choices, default=Dtype.BF16)
    ttft_slo_s = models.FloatField(help_text="TTFT at the SLO percentile, seconds.")
    tpot_slo_s = models.FloatField(help_text="Time per output token at the SLO percentile, seconds.")
    slo_percentile = models.FloatField(default=0.9)
    attainment_target = models.FloatField(default=0.9, help_text="Share of requests that must meet both SLOs.")
    rebalance_interval_s = models.PositiveIntegerField(default=900)
    rebalance_min_saving = models.FloatField(default=0.10)
    auto_approve = models.BooleanField(default=False)
    min_instances_per_phase = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(ttft_slo_s__gt=0), name="service_ttft_slo_positive"),
            models.CheckConstraint(condition=Q(tpot_slo_s__gt=0), name="service_tpot_slo_positive"),
            models.CheckConstraint(
                condition=Q(attainment_target__gt=0) & Q(attainment_target__lte=1), name="service_attainment_in_range"
            ),
            models.CheckConstraint(
                condition=Q(slo_percentile__gt=0) & Q(slo_percentile__lt=1), name="service_percentile_in_range"
            ),
            models.CheckConstraint(
                condition=Q(rebalance_min_saving__gte=0) & Q(rebalance_min_saving__lt=1), name="service_min_saving_in_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RequestClass(models.TextChoices):
    PREFILL_HEAVY = "prefill-heavy", "Prefill-heavy"
    DECODE_HEAVY = "decode-heavy", "Decode-heavy"
    BALANCED = "balanced", "Balanced"


class RecordStatus(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class RequestRecord(models.Model):
    """One request as a router (or a trace import) saw it. The id is the router's, so a resend is a no-op."""

    id = models.UUIDField(primary_key=True)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="records")
    arrival_at = models.DateTimeField()
    prompt_tokens = models.PositiveIntegerField()
    output_tokens = models.PositiveIntegerField()
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=32, blank=True)
    client = models.CharField(max_length=100, blank=True)
    ttft_s = models.FloatField(null=True, blank=True)
    tpot_s = models.FloatField(null=True, blank=True)
    e2e_s = models.FloatField(null=True, blank=True)
    prefill_worker = models.CharField(max_length=200, blank=True)
    decode_worker = models.CharField(max_length=200, blank=True)
    predicted_class = models.CharField(max_length=16, choices=RequestClass.choices, blank=True)
    status = models.CharField(max_length=16, choices=RecordStatus.choices, default=RecordStatus.OK)
    source = models.CharField(max_length=100, blank=True, help_text="The router, or the imported trace.")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-arrival_at"]
        indexes = [models.Index(fields=["service", "arrival_at"], name="record_service_ts_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(cached_prompt_tokens__lte=models.F("prompt_tokens")), name="record_cached_within_prompt"
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)


class WorkloadProfile(models.Model):
    """What one service's traffic looked like over one window. An empty window (no requests) is kept: a
    rate of zero is what lets rebalancing scale a service down."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="profiles")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    request_count = models.PositiveIntegerField()
    arrival_rate_rps = models.FloatField()
    burstiness_cv = models.FloatField(null=True, blank=True)
    prompt_tokens_p50 = models.FloatField(null=True, blank=True)
    prompt_tokens_p90 = models.FloatField(null=True, blank=True)
    prompt_tokens_p99 = models.FloatField(null=True, blank=True)
    output_tokens_p50 = models.FloatField(null=True, blank=True)
    output_tokens_p90 = models.FloatField(null=True, blank=True)
    output_tokens_p99 = models.FloatField(null=True, blank=True)
    prefix_cache_share = models.FloatField(default=0.0)
    prefill_share = models.FloatField(
        null=True, blank=True, help_text="Share of GPU time spent in prefill under the perf model."
    )
    prefill_share_se = models.FloatField(null=True, blank=True, help_text="Standard error of prefill_share.")
    prefill_gpu_s = models.FloatField(default=0.0)
    decode_gpu_s = models.FloatField(default=0.0)
    workload_class = models.CharField(max_length=16, choices=RequestClass.choices, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    class_mix = models.JSONField(default=dict, blank=True)
    forecast = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service", "-window_start"]
        indexes = [models.Index(fields=["service", "window_start"], name="profile_service_ts_idx")]
        constraints = [
            models.UniqueConstraint(fields=["service", "window_start", "window_end"], name="profile_unique_window"),
            models.CheckConstraint(condition=Q(window_end__gt=models.F("window_start")), name="profile_window_ordered"),
            models.CheckConstraint(
                condition=Q(prefill_share__isnull=True) | (Q(prefill_share__gte=0) & Q(prefill_share__lte=1)),
                name="profile_share_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.name} {self.window_start:%Y-%m-%d %H:%M}"


class ServiceApiKey(models.Model):
    """A key clients use to call a service through its routers. Only the digest is kept; routers check
    a presented key against the digests of the service's unrevoked keys."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service", "-created_at"]

    def __str__(self) -> str:
        return f"{self.service.name}: {self.name} ({self.prefix}…)"


class ClassifierKind(models.TextChoices):
    ADMISSION = "admission", "Admission (per request)"
    WORKLOAD = "workload", "Workload (per window)"


class ClassifierModel(models.Model):
    """A trained classifier version. Its JSON document lives in the model store on disk (never a pickle);
    this row holds its metadata, and which version of each kind is active."""

    kind = models.CharField(max_length=16, choices=ClassifierKind.choices)
    version = models.CharField(max_length=32)
    metrics = models.JSONField(default=dict)
    trained_on = models.JSONField(default=dict)
    features = models.JSONField(default=list)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="classifier_unique_version"),
            models.UniqueConstraint(fields=["kind"], condition=Q(is_active=True), name="classifier_one_active_per_kind"),
        ]

    def __str__(self) -> str:
        return self.version
