from __future__ import annotations

from django.urls import re_path

from controlplane.common.routers import OptionalSlashRouter
from controlplane.planning.api import views

router = OptionalSlashRouter()
router.register("plans", views.PlanViewSet, basename="plan")
router.register("rollouts", views.RolloutViewSet, basename="rollout")

urlpatterns = [
    re_path(r"^services/(?P<pk>[0-9]+)/plans/?$", views.ServicePlansView.as_view(), name="service-plans"),
    *router.urls,
]
