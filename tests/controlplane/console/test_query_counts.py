"""Every page costs a fixed number of queries: three times the fleet (nodes, workers, plans, profiles, records,
roll-ups, audit events, classifier versions) costs not one query more. The ceilings catch an N+1 creeping in."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.controlplane.console.pages import page_urls
from tests.controlplane.console.seed import seed

pytestmark = pytest.mark.django_db

# Session, user and page queries; what-if and users draw their forms' choices, the plan page its diff.
MAX_QUERIES = {
    "overview": 18, "overview-live": 18, "fleet": 10, "fleet-live": 9, "node": 11, "traffic": 11, "plans": 7,
    "plan": 8, "plan-live": 7, "rollout": 8, "whatif": 6, "rebalancing": 9, "models": 7, "audit": 6, "users": 7,
}


def count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200, url
    return len(queries)


def test_no_page_costs_more_queries_with_more_rows(fleet, as_admin, clock, django_assert_max_num_queries):
    urls = page_urls(fleet)
    small = {name: count(as_admin, url) for name, url in urls.items()}
    seed(now=clock, size=3, tag="b")
    large = {name: count(as_admin, url) for name, url in urls.items()}
    assert large == small
    for name, url in urls.items():
        with django_assert_max_num_queries(MAX_QUERIES[name]):
            as_admin.get(url)
