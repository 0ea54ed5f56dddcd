from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from controlplane.console.views import (
    audit,
    classifiers,
    fleet,
    overview,
    plans,
    rebalancing,
    traffic,
    users,
    whatif,
)

app_name = "console"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", overview.OverviewView.as_view(), name="overview"),
    path("overview/live", overview.OverviewLiveView.as_view(), name="overview-live"),
    path("fleet/", fleet.FleetView.as_view(), name="fleet"),
    path("fleet/live", fleet.FleetLiveView.as_view(), name="fleet-live"),
    path("fleet/nodes/<str:name>/", fleet.NodeView.as_view(), name="node"),
    path("traffic/", traffic.TrafficView.as_view(), name="traffic"),
    path("plans/", plans.PlanListView.as_view(), name="plans"),
    path("plans/<int:pk>/", plans.PlanDetailView.as_view(), name="plan"),
    path("plans/<int:pk>/live", plans.PlanLiveView.as_view(), name="plan-live"),
    path("plans/<int:pk>/approve", plans.PlanApproveView.as_view(), name="plan-approve"),
    path("plans/<int:pk>/reject", plans.PlanRejectView.as_view(), name="plan-reject"),
    path("what-if/", whatif.WhatIfView.as_view(), name="whatif"),
    path("rebalancing/", rebalancing.RebalancingView.as_view(), name="rebalancing"),
    path("models/", classifiers.ClassifiersView.as_view(), name="models"),
    path("models/<int:pk>/activate", classifiers.ClassifierActivateView.as_view(), name="model-activate"),
    path("audit/", audit.AuditView.as_view(), name="audit"),
    path("users/", users.UsersView.as_view(), name="users"),
    path("users/create", users.UserCreateView.as_view(), name="user-create"),
    path("tokens/create", users.TokenCreateView.as_view(), name="token-create"),
    path("tokens/<int:pk>/revoke", users.TokenRevokeView.as_view(), name="token-revoke"),
]
