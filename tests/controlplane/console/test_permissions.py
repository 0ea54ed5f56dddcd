"""The one table of who may do what in the console."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from controlplane.console.permissions import Action, can, capabilities
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EXPECTED = {
    "viewer": {Action.VIEW},
    "operator": {Action.VIEW, Action.APPROVE_PLAN, Action.REJECT_PLAN, Action.RUN_WHATIF, Action.EDIT_POLICY,
                 Action.ACTIVATE_CLASSIFIER},
    "admin": set(Action),
    "router": set(),
    "agent": set(),
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_may_do_what_the_table_says(role):
    user = UserFactory(username=f"someone-{role}", role=role)
    assert {action for action in Action if can(user, action)} == EXPECTED[role]
    assert capabilities(user) == {action.value: action in EXPECTED[role] for action in Action}


def test_anonymous_and_deactivated_users_may_do_nothing():
    retired = UserFactory(username="retired", role="admin", is_active=False)
    assert not any(can(AnonymousUser(), action) for action in Action)
    assert not any(can(retired, action) for action in Action)
