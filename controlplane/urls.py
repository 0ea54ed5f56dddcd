from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane.health import healthz, readyz
from controlplane.telemetry.api.views import MetricsView

api_v1 = [
    path("", include("controlplane.accounts.api.urls")),
    path("", include("controlplane.fleet.api.urls")),
    path("", include("controlplane.traffic.api.urls")),
    path("", include("controlplane.planning.api.urls")),
    path("", include("controlplane.telemetry.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("", include("controlplane.console.urls")),
]
