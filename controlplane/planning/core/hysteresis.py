"""When a scheduled replan should propose its plan, and how far one step may move the fleet.

A fleet that follows every wiggle of its traffic pays for rollouts that save nothing. The scheduled replan
proposes a new plan only when it saves at least ``min_saving`` of the active plan's objective (cost or
power; for goodput per dollar, that much more of it), or when the active plan is predicted to miss the
SLO under the current workload. And a proposal moves at most ``max_changes_per_tier`` instances per tier
(added, and removed) at a time: a big change goes out over several scheduled steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Kind = tuple[str, int, str]  # (tier, tp, role)


@dataclass(frozen=True)
class HysteresisPolicy:
    """How much a replan must gain before it is proposed, and how much one step may change."""

    min_saving: float = 0.10
    max_changes_per_tier: int | None = 4
    objective: str = "cost"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_saving < 1.0:
            raise ValueError(f"min_saving must be in [0, 1), got {self.min_saving}")
        if self.max_changes_per_tier is not None and self.max_changes_per_tier < 1:
            raise ValueError(f"max_changes_per_tier must be >= 1, got {self.max_changes_per_tier}")


@dataclass(frozen=True)
class PlanFigures:
    """What hysteresis compares of a plan: cost, power, goodput and whether it holds the SLO."""

    cost_usd_per_h: float
    power_kw: float
    meets_slo: bool
    goodput_rps: float = 0.0
    slo_attainment: float | None = None

    @classmethod
    def of(cls, predictions: Mapping[str, Any]) -> PlanFigures:
        """From a plan's (or a baseline's) predictions JSON."""
        return cls(
            cost_usd_per_h=float(predictions.get("cost_usd_per_h") or 0.0),
            power_kw=float(predictions.get("power_kw") or 0.0),
            meets_slo=bool(predictions.get("meets_slo")),
            goodput_rps=float(predictions.get("goodput_rps") or 0.0),
            slo_attainment=predictions.get("slo_attainment"),
        )

    def value(self, objective: str) -> float:
        """The objective's value: lower is better (goodput per dollar is negated)."""
        if objective == "power":
            return self.power_kw
        if objective == "goodput_per_usd":
            return -self.goodput_rps / self.cost_usd_per_h if self.cost_usd_per_h > 0 else 0.0
        return self.cost_usd_per_h


@dataclass(frozen=True)
class Decision:
    """Whether to propose, and why, in words; ``saving`` is the share of the objective it would save."""

    propose: bool
    reason: str
    saving: float | None = None


def should_propose(active: PlanFigures | None, candidate: PlanFigures, policy: HysteresisPolicy) -> Decision:
    """Propose ``candidate`` over the active plan (re-evaluated under the current workload) or not."""
    if active is None:
        return Decision(True, "no plan is active")
    if not active.meets_slo:
        if candidate.meets_slo:
            attained = "" if active.slo_attainment is None else f" (attainment {active.slo_attainment:.1%})"
            return Decision(True, f"the active plan is predicted to miss the SLO under the current workload{attained}")
        return Decision(False, "the active plan misses the SLO, but so does the candidate")
    if not candidate.meets_slo:
        return Decision(False, "the candidate is predicted to miss the SLO; the active plan holds it")
    objective = policy.objective
    before, after = active.value(objective), candidate.value(objective)
    if before == 0.0:
        return Decision(False, "the active plan's objective is zero: nothing to save", 0.0)
    saving = (before - after) / abs(before)
    name = {"power": "power", "goodput_per_usd": "goodput per dollar"}.get(objective, "cost")
    if saving >= policy.min_saving:
        return Decision(True, f"saves {saving:.1%} of the {name}, at least the {policy.min_saving:.0%} required",
                        saving)
    return Decision(False, f"saves {saving:.1%} of the {name}, below the {policy.min_saving:.0%} required", saving)


def bound_changes(
    current: Mapping[Kind, int], target: Mapping[Kind, int], max_per_tier: int | None
) -> dict[Kind, int]:
    """The next step from ``current`` toward ``target``: per tier at most ``max_per_tier`` instances added
    and at most as many removed. Additions go to the kinds furthest below target first (then by name), and
    removals likewise; a step never overshoots the target. Kinds at zero are left out."""
    if max_per_tier is None:
        return {kind: count for kind, count in target.items() if count > 0}
    step = {kind: count for kind, count in current.items() if count > 0}
    kinds = sorted(set(current) | set(target))
    for tier in sorted({kind[0] for kind in kinds}):
        deltas = [(target.get(k, 0) - current.get(k, 0), k) for k in kinds if k[0] == tier]
        for sign in (1, -1):
            budget = max_per_tier
            for delta, kind in sorted(((d, k) for d, k in deltas if d * sign > 0), key=lambda p: (-abs(p[0]), p[1])):
                move = min(abs(delta), budget)
                step[kind] = step.get(kind, 0) + sign * move
                budget -= move
                if budget == 0:
                    break
    return {kind: count for kind, count in step.items() if count > 0}
