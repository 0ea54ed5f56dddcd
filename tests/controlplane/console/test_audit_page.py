"""The audit log filters with the API's filter set and pages; a bad filter is named at its field."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_filters_by_verb_prefix_and_actor(fleet, as_viewer):
    response = as_viewer.get("/audit/", {"verb": "rebalance.", "actor": "system:beat"})
    events = response.context["page"].object_list
    assert events
    assert all(event.verb.startswith("rebalance.") for event in events)


def test_it_pages_long_logs(fleet, as_viewer):
    page = as_viewer.get("/audit/", {"page": "2"}).context["page"]
    assert page.number == 1  # ten events fit one page
    assert as_viewer.get("/audit/", {"page": "abc"}).status_code == 200


def test_a_bad_date_is_named_at_its_field(fleet, as_viewer):
    response = as_viewer.get("/audit/", {"since": "last tuesday"})
    assert response.status_code == 200
    assert 'data-error-for="since"' in response.content.decode()
