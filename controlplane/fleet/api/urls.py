from __future__ import annotations

from controlplane.common.routers import OptionalSlashRouter
from controlplane.fleet.api import views

router = OptionalSlashRouter()
router.register("tiers", views.GpuTierViewSet, basename="tier")
router.register("nodes", views.NodeViewSet, basename="node")
router.register("workers", views.WorkerViewSet, basename="worker")

urlpatterns = router.urls
