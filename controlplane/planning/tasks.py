"""Celery tasks of the planning app: thin wrappers that advance rollouts and run scheduled rebalancing."""

from __future__ import annotations

from controlplane.planning.models import Rollout, RolloutStatus
from controlplane.planning.rollouts import rollout_advance
from controlplane.tasks import cleave_task


@cleave_task(name="planning.rollout.advance")
def advance_rollout(rollout_id: int) -> None:
    """Run a rollout's steps until one must wait; then come back when it may go on."""
    again = rollout_advance(rollout_id)
    if again is not None:
        advance_rollout.apply_async(args=[rollout_id], countdown=again)


@cleave_task(name="planning.rollout.resume")
def resume_rollouts() -> int:
    """Beat: nudge every running rollout, so one whose worker died (or whose retry was lost) goes on.

    Harmless when a rollout is already being advanced: steps are claimed atomically.
    """
    running = list(Rollout.objects.filter(status=RolloutStatus.RUNNING).values_list("pk", flat=True))
    for rollout_id in running:
        advance_rollout.delay(rollout_id)
    return len(running)


@cleave_task(name="planning.rebalance", time_limit=900, soft_time_limit=840)
def rebalance() -> list[str]:
    """Beat: replan every service whose rebalancing interval is due (see planning.rebalancing)."""
    from controlplane.planning.rebalancing import rebalance_due

    return [f"{decision.service.name}: {decision.reason}" for decision in rebalance_due()]
