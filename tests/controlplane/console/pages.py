"""Every console page's URL for a seeded fleet, for the tests that visit them all."""

from __future__ import annotations

from tests.controlplane.console.seed import Seeded

VIEWER_PAGES = ("overview", "overview-live", "fleet", "fleet-live", "node", "traffic", "plans", "plan", "plan-live",
                "rollout", "whatif", "rebalancing", "models", "audit")
ADMIN_PAGES = ("users",)


def page_urls(fleet: Seeded) -> dict[str, str]:
    return {
        "overview": "/", "overview-live": "/overview/live?window=1h", "fleet": "/fleet/", "fleet-live": "/fleet/live",
        "node": f"/fleet/nodes/{fleet.nodes[0].name}/", "traffic": "/traffic/", "plans": "/plans/",
        "plan": f"/plans/{fleet.draft.pk}/", "plan-live": f"/plans/{fleet.rolling.pk}/live",
        "rollout": f"/plans/{fleet.rolling.pk}/", "whatif": "/what-if/", "rebalancing": "/rebalancing/",
        "models": "/models/", "audit": "/audit/", "users": "/users/",
    }
