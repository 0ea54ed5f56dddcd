"""Which role may do what in the console: the one place views and templates ask.

Every page needs at least a viewer; every button is an action listed here. A view checks the action
before it acts (`require`), and a template shows a button only where `can.<action>` is true, so a
viewer sees no button it cannot use and a forged POST is refused all the same.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied

from controlplane.accounts.models import Role


class Action(StrEnum):
    VIEW = "view"
    APPROVE_PLAN = "approve_plan"
    REJECT_PLAN = "reject_plan"
    RUN_WHATIF = "run_whatif"
    EDIT_POLICY = "edit_policy"
    ACTIVATE_CLASSIFIER = "activate_classifier"
    MANAGE_USERS = "manage_users"
    MANAGE_TOKENS = "manage_tokens"


# The least human role each action needs (viewer < operator < admin). These match the API's roles for
# the same actions: plans/{id}/approve and reject, classifiers/{id}/activate and service edits are
# operators', users and tokens admins'. A what-if saves a draft plan, an operator's write in the API too.
MINIMUM_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.APPROVE_PLAN: Role.OPERATOR,
    Action.REJECT_PLAN: Role.OPERATOR,
    Action.RUN_WHATIF: Role.OPERATOR,
    Action.EDIT_POLICY: Role.OPERATOR,
    Action.ACTIVATE_CLASSIFIER: Role.OPERATOR,
    Action.MANAGE_USERS: Role.ADMIN,
    Action.MANAGE_TOKENS: Role.ADMIN,
}


def can(user: Any, action: Action) -> bool:
    """May `user` (any request.user, anonymous included) do `action`?"""
    if user is None or not user.is_authenticated:
        return False
    return bool(user.has_role(MINIMUM_ROLE[action]))


def require(user: Any, action: Action) -> None:
    """Refuse (403) unless `user` may do `action`."""
    if not can(user, action):
        raise PermissionDenied(f"Your role may not {action.value.replace('_', ' ')}.")


def capabilities(user: Any) -> dict[str, bool]:
    """Every action and whether `user` may do it, for templates: `{% if can.approve_plan %}`."""
    return {action.value: can(user, action) for action in Action}
