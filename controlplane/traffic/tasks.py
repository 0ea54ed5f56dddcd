"""Celery tasks of the traffic app: profiling windows every minute, retraining the classifiers daily."""

from __future__ import annotations

from controlplane.tasks import cleave_task
from controlplane.traffic.models import Service
from controlplane.traffic.profiling import profiles_update
from controlplane.traffic.training import admission_retrain, workload_retrain


@cleave_task(name="traffic.profile_windows")
def profile_windows() -> int:
    """Profile every service's windows that closed since the last run; returns how many were written."""
    return sum(len(profiles_update(service=service)) for service in Service.objects.all())


@cleave_task(name="traffic.retrain", time_limit=1800, soft_time_limit=1700)
def retrain() -> list[str]:
    """Retrain both classifiers on recent traffic; activate a better version per the policy."""
    return [f"{outcome.kind}: {outcome.version or '-'} ({outcome.reason})"
            for outcome in (admission_retrain(), workload_retrain())]
