"""A viewer sees no button it cannot use; an operator sees the operators' buttons; only admins see the admins'."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

OPERATOR_MARKS = {
    "plan": [b'data-testid="approve"', b'data-testid="reject"', b"csrfmiddlewaretoken"],
    "whatif": [b'data-testid="whatif-form"'],
    "rebalancing": [b'data-testid="policy-chat"'],
    "models": [b'data-testid="activate-admission-0002"'],
}


def _pages(fleet):
    return {"plan": f"/plans/{fleet.draft.pk}/", "whatif": "/what-if/", "rebalancing": "/rebalancing/",
            "models": "/models/"}


def test_a_viewer_sees_no_action(fleet, as_viewer):
    for page, url in _pages(fleet).items():
        body = as_viewer.get(url).content
        for mark in OPERATOR_MARKS[page]:
            if mark == b"csrfmiddlewaretoken":
                continue  # the log-out form carries one on every page
            assert mark not in body, (page, mark)
        assert b"<button" in body  # only the log-out button
        assert body.count(b"<button") == 1, page


def test_an_operator_sees_the_operators_actions(fleet, as_operator):
    for page, url in _pages(fleet).items():
        body = as_operator.get(url).content
        for mark in OPERATOR_MARKS[page]:
            assert mark in body, (page, mark)


def test_no_one_is_offered_to_approve_a_plan_that_is_no_longer_a_draft(fleet, as_operator):
    body = as_operator.get(f"/plans/{fleet.active.pk}/").content
    assert b'data-testid="approve"' not in body
    assert b'data-testid="reject"' not in body
