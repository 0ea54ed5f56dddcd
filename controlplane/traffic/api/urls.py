from __future__ import annotations

from controlplane.common.routers import OptionalSlashRouter
from controlplane.traffic.api import views

router = OptionalSlashRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("traffic/records", views.RequestRecordViewSet, basename="record")
router.register("profiles", views.WorkloadProfileViewSet, basename="profile")
router.register("classifiers", views.ClassifierModelViewSet, basename="classifier")

urlpatterns = router.urls
