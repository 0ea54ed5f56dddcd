"""Traffic: one service's request rate, lengths, class and confidence, prefix-cache share, phase split, drift."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from controlplane.console import figures, selectors
from controlplane.console.forms import TrafficForm
from controlplane.console.views.base import ConsolePage
from controlplane.traffic.models import Service

DEFAULT_SPAN = "1d"


class TrafficView(ConsolePage):
    template_name = "console/traffic.html"
    nav = "traffic"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = TrafficForm(self.request.GET or None)
        chosen = form.cleaned_data if form.is_valid() else {}
        service = chosen.get("service") or Service.objects.order_by("name").first()
        span = chosen.get("span") or DEFAULT_SPAN
        context.update(form=form, service=service, span=span)
        if service is None:
            return context
        data = selectors.traffic(service=service, span=span, now=timezone.now())
        rows = data.profiles
        times = [row.window_start for row in rows]
        context.update(data=data, figures={
            "chart-rate": figures.rate(times, [row.arrival_rate_rps for row in rows]),
            "chart-lengths": figures.length_histogram(data.prompt_lengths, data.output_lengths),
            "chart-percentiles": figures.length_percentiles(times, {
                name: [getattr(row, name) for row in rows]
                for name in ("prompt_tokens_p50", "prompt_tokens_p90", "prompt_tokens_p99",
                             "output_tokens_p50", "output_tokens_p90", "output_tokens_p99")
            }),
            "chart-class": figures.workload_class(
                times, [row.workload_class for row in rows], [row.confidence for row in rows],
                [row.prefill_share for row in rows]),
            "chart-prefix": figures.share_line("Prefix-cache share of prompt tokens", times,
                                               [row.prefix_cache_share for row in rows]),
            "chart-phases": figures.phase_split(times, [row.prefill_gpu_s for row in rows],
                                                [row.decode_gpu_s for row in rows]),
        })
        return context
