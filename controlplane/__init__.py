"""The Cleave control plane (Django). Importing it loads the Celery app so shared tasks bind to it."""

from __future__ import annotations

from controlplane.celery import app as celery_app

__all__ = ["celery_app"]
