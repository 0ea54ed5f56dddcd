"""The console's forms. They validate on the server and name the field at fault; services do the writing,
and an ApplicationError a service raises is put back on the form's fields (`add_service_errors`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from controlplane.accounts.models import Role, TokenScope, User
from controlplane.common.errors import ApplicationError
from controlplane.fleet.models import GpuTier, NodeStatus
from controlplane.planning.core.rollout import STRATEGIES
from controlplane.planning.models import Objective, PlanStatus, RolloutStrategy
from controlplane.telemetry.selectors import WINDOWS
from controlplane.traffic.models import Service
from profiler.traces import FORMATS

WINDOW_LABELS = {"1h": "Last hour", "1d": "Last day", "1w": "Last week"}
DEFAULT_WINDOW = "1d"
MAX_TRACE_BYTES = 20 * 1024 * 1024


def add_service_errors(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's refusal on the form: at each field it names, or above the form."""
    placed = False
    for name, messages in error.fields.items():
        if name in form.fields:
            form.add_error(name, list(messages))
            placed = True
    if not placed:
        form.add_error(None, error.message)


class WindowForm(forms.Form):
    window = forms.ChoiceField(choices=[(name, WINDOW_LABELS.get(name, name)) for name in WINDOWS], required=False,
                               initial=DEFAULT_WINDOW)

    def window_name(self) -> str:
        """The window asked for, or the default when none (or nonsense) was asked for."""
        if self.is_valid() and self.cleaned_data["window"]:
            return str(self.cleaned_data["window"])
        return DEFAULT_WINDOW


class FleetFilterForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=GpuTier.objects.order_by("name"), to_field_name="name", required=False,
                                  empty_label="All tiers")
    status = forms.ChoiceField(choices=[("", "Any status"), *NodeStatus.choices], required=False)


class TrafficForm(forms.Form):
    service = forms.ModelChoiceField(queryset=Service.objects.order_by("name"), to_field_name="name", required=False,
                                     empty_label=None)
    span = forms.ChoiceField(choices=list(WINDOW_LABELS.items()), required=False, initial=DEFAULT_WINDOW)


class PlanFilterForm(forms.Form):
    service = forms.ModelChoiceField(queryset=Service.objects.order_by("name"), to_field_name="name", required=False,
                                     empty_label="All services")
    status = forms.ChoiceField(choices=[("", "Any status"), *PlanStatus.choices], required=False)


class PlanApproveForm(forms.Form):
    """Approve a draft and start rolling it out, with the strategy and its knobs."""

    strategy = forms.ChoiceField(choices=[(value, RolloutStrategy(value).label) for value in STRATEGIES],
                                 initial=RolloutStrategy.ROLLING)
    batch_nodes = forms.IntegerField(min_value=1, max_value=1000, required=False,
                                     help_text="Rolling: nodes changed at a time (default 2).")
    canary_share = forms.FloatField(min_value=0.01, max_value=0.5, required=False,
                                    help_text="Canary: share of traffic the new pools take first (default 0.1).")
    canary_duration_s = forms.FloatField(min_value=10, max_value=3600, required=False,
                                         help_text="Canary: seconds it serves before the verdict (default 120).")

    def options(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("batch_nodes", "canary_share", "canary_duration_s")
                if self.cleaned_data.get(name) is not None}


class PlanRejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class WhatIfForm(forms.Form):
    """A workload (a rate and lengths, or a trace file) and the constraints to plan it under."""

    service = forms.ModelChoiceField(queryset=Service.objects.order_by("name"))
    rate_rps = forms.FloatField(label="Arrival rate (requests/s)", min_value=0.001, max_value=1_000_000,
                                required=False, help_text="Required without a trace; with one, overrides its rate.")
    prompt_tokens_p50 = forms.IntegerField(label="Prompt tokens, median", min_value=1, max_value=2_000_000,
                                           required=False)
    prompt_tokens_p90 = forms.IntegerField(label="Prompt tokens, p90", min_value=1, max_value=2_000_000, required=False)
    output_tokens_p50 = forms.IntegerField(label="Output tokens, median", min_value=1, max_value=2_000_000,
                                           required=False)
    output_tokens_p90 = forms.IntegerField(label="Output tokens, p90", min_value=1, max_value=2_000_000, required=False)
    trace = forms.FileField(required=False, help_text=f"At most {MAX_TRACE_BYTES // (1024 * 1024)} MB.")
    trace_format = forms.ChoiceField(choices=[("", "—"), *((name, name) for name in FORMATS)], required=False)
    objective = forms.ChoiceField(choices=Objective.choices, initial=Objective.COST)
    budget_usd_per_h = forms.FloatField(label="Budget (USD/h)", min_value=0.01, required=False)
    power_cap_kw = forms.FloatField(label="Power cap (kW)", min_value=0.01, required=False)
    allowed_tiers = forms.ModelMultipleChoiceField(
        queryset=GpuTier.objects.order_by("name"), to_field_name="name", required=False,
        widget=forms.CheckboxSelectMultiple, help_text="None ticked: every tier.",
    )
    save = forms.BooleanField(label="Save as a draft plan", required=False)

    def clean_trace(self) -> UploadedFile | None:
        upload: UploadedFile | None = self.cleaned_data.get("trace")
        size = (upload.size or 0) if upload is not None else 0
        if size > MAX_TRACE_BYTES:
            raise forms.ValidationError(f"The trace is {size / 1e6:.1f} MB; at most "
                                        f"{MAX_TRACE_BYTES / 1e6:.0f} MB can be uploaded.")
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("trace") is not None:
            if not data.get("trace_format"):
                self.add_error("trace_format", "Name the trace's format.")
            return data
        # Each check names its field, whatever else is wrong: the operator fixes everything in one go.
        if data.get("rate_rps") is None and "rate_rps" not in self.errors:
            self.add_error("rate_rps", "Give a rate, or upload a trace.")
        for phase in ("prompt", "output"):
            median_field, p90_field = f"{phase}_tokens_p50", f"{phase}_tokens_p90"
            if median_field in self.errors:
                continue
            median, p90 = data.get(median_field), data.get(p90_field)
            if median is None:
                self.add_error(median_field, "Give the median length, or upload a trace.")
            elif p90 is not None and p90 < median:
                self.add_error(p90_field, "The 90th percentile cannot be below the median.")
        return data

    @contextmanager
    def trace_file(self) -> Iterator[Path | None]:
        """The uploaded trace on disk for the planner to stream (removed afterwards), or None."""
        upload: UploadedFile | None = self.cleaned_data.get("trace")
        if upload is None:
            yield None
            return
        suffix = Path(upload.name or "trace").suffix[:10]
        with tempfile.NamedTemporaryFile(prefix="whatif-", suffix=suffix, dir=settings.VAR_DIR) as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
            handle.flush()
            yield Path(handle.name)


class PolicyForm(forms.ModelForm):
    """A service's rebalancing policy, with the API's bounds."""

    rebalance_interval_s = forms.IntegerField(label="Interval (s)", min_value=60, max_value=7 * 86400)
    rebalance_min_saving = forms.FloatField(label="Minimum saving (0 to 0.9)", min_value=0.0, max_value=0.9)
    auto_approve = forms.BooleanField(label="Auto-approve", required=False)

    class Meta:
        model = Service
        fields = ["rebalance_interval_s", "rebalance_min_saving", "auto_approve"]


class UserCreateForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]+\Z", max_length=150,
                                error_messages={"invalid": "Letters, digits and @/./+/-/_ only."})
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)
    password = forms.CharField(widget=forms.PasswordInput, required=False, strip=False,
                               help_text="Required for people; machine identities (router, agent) have none.")


class TokenCreateForm(forms.Form):
    # A text box, not a select: every node has a machine user of its own, so a fleet has thousands.
    user = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), to_field_name="username",
                                  widget=forms.TextInput, error_messages={"invalid_choice": "No active user by that name."})
    name = forms.CharField(max_length=100)
    ttl_days = forms.IntegerField(label="Lifetime (days)", min_value=1, max_value=settings.API_TOKEN_MAX_TTL_DAYS,
                                  initial=settings.API_TOKEN_DEFAULT_TTL_DAYS)
    scope = forms.ChoiceField(choices=[(TokenScope.API, TokenScope.API.label),
                                       (TokenScope.BOOTSTRAP, TokenScope.BOOTSTRAP.label)], initial=TokenScope.API)
