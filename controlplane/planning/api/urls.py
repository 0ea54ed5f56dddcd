from __future__ import annotations

from controlplane.common.routers import OptionalSlashRouter
from controlplane.planning.api import views

router = OptionalSlashRouter()
router.register("plans", views.PlanViewSet, basename="plan")
router.register("rollouts", views.RolloutViewSet, basename="rollout")

urlpatterns = router.urls
