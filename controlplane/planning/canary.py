"""The canary's verdict: live SLO attainment and $ per million tokens of the new pools against the old."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from controlplane.fleet.models import GpuTier
from controlplane.planning.models import Rollout
from controlplane.traffic.models import RecordStatus, RequestRecord

# The canary may be this much worse and still be promoted: live samples of a few minutes are noisy.
ATTAINMENT_TOLERANCE = 0.05
COST_TOLERANCE = 1.2


@dataclass(frozen=True)
class Side:
    requests: int
    attainment: float | None
    usd_per_million_tokens: float | None


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    old: Side
    new: Side

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _workers(routing: dict[str, Any] | None) -> dict[str, tuple[str, int]]:
    """worker id ("node/name") → (tier, tp) over every pool of a routing plan."""
    if not routing:
        return {}
    return {
        str(entry["worker"]): (str(entry.get("tier", "")), int(entry.get("tp", 1)))
        for pool in routing.get("pools", {}).values() for entry in pool
    }


def _side(workers: dict[str, tuple[str, int]], since: datetime, service_id: int, ttft: float, tpot: float,
          share: float) -> Side:
    """One side's figures. Its $/Mtok is what it would cost carrying all the traffic: each side's GPUs are
    sized for the whole load but see only `share` of it during the canary."""
    if not workers:
        return Side(0, None, None)
    names = list(workers)
    records = RequestRecord.objects.filter(service_id=service_id, arrival_at__gte=since).filter(
        Q(decode_worker__in=names) | Q(prefill_worker__in=names)
    )
    totals = records.aggregate(
        requests=Count("id"),
        met=Count("id", filter=Q(status=RecordStatus.OK, ttft_s__lte=ttft) & (Q(tpot_s__lte=tpot) | Q(tpot_s__isnull=True))),
        tokens=Sum("prompt_tokens") + Sum("output_tokens"),
    )
    if not totals["requests"]:
        return Side(0, None, None)
    prices = dict(GpuTier.objects.values_list("name", "price_usd_per_gpu_h"))
    hours = max((timezone.now() - since).total_seconds(), 1.0) / 3600
    cost = sum(float(prices.get(tier, 0)) * tp for tier, tp in workers.values()) * hours * share
    return Side(
        requests=totals["requests"],
        attainment=totals["met"] / totals["requests"],
        usd_per_million_tokens=cost / totals["tokens"] * 1e6 if totals["tokens"] else None,
    )


def compare(rollout: Rollout, *, since: float) -> Verdict:
    """Compare the records served by the new pools with those served by the old since `since` (Unix s)."""
    service = rollout.service
    start = datetime.fromtimestamp(since, tz=UTC)
    new_workers = _workers(rollout.plan.routing)
    old_workers = {k: v for k, v in _workers(rollout.previous_plan.routing if rollout.previous_plan else None).items()
                   if k not in new_workers}
    share = float(rollout.options.get("canary_share", 0.1))
    new = _side(new_workers, start, service.pk, service.ttft_slo_s, service.tpot_slo_s, share)
    old = _side(old_workers, start, service.pk, service.ttft_slo_s, service.tpot_slo_s, 1 - share)
    if new.requests == 0:
        return Verdict(True, "no canary traffic observed; promoting on the plan's predictions", old, new)
    if old.attainment is not None and new.attainment is not None and new.attainment < old.attainment - ATTAINMENT_TOLERANCE:
        return Verdict(False, f"attainment {new.attainment:.1%} vs {old.attainment:.1%}", old, new)
    if (old.usd_per_million_tokens and new.usd_per_million_tokens
            and new.usd_per_million_tokens > old.usd_per_million_tokens * COST_TOLERANCE):
        return Verdict(
            False, f"${new.usd_per_million_tokens:.2f}/Mtok vs ${old.usd_per_million_tokens:.2f}/Mtok", old, new
        )
    return Verdict(True, "canary holds the SLO and the cost", old, new)
