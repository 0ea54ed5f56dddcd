"""One permission class for the whole API: what each role may do, declared on the view.

A view says, as class attributes, the least human role it needs to read (`read_role`, default
viewer) and to write (`write_role`, default operator), may raise the bar for single actions
(`action_roles = {"approve": Role.OPERATOR}`), and names the only actions machine identities may
call (`machine_actions = {"create": {Role.ROUTER}}`). Machines get nothing that is not named.
A bootstrap token may only do what a view names in `token_scopes` (`{"register": {"bootstrap"}}`);
other actions take `api` and `node` tokens.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from controlplane.accounts.models import ApiToken, Role, TokenScope

_DEFAULT_SCOPES = frozenset({TokenScope.API, TokenScope.NODE})


def view_action(request: Request, view: Any) -> str:
    return getattr(view, "action", None) or (request.method or "get").lower()


class RolePermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        action = view_action(request, view)
        if isinstance(request.auth, ApiToken):
            scopes = getattr(view, "token_scopes", {}).get(action, _DEFAULT_SCOPES)
            if request.auth.scope not in scopes:
                return False
        if user.is_machine:
            allowed: set[str] = set(getattr(view, "machine_actions", {}).get(action, ()))
            return user.role in allowed
        action_roles: dict[str, str] = getattr(view, "action_roles", {})
        if action in action_roles:
            minimum = action_roles[action]
        elif request.method in SAFE_METHODS:
            minimum = getattr(view, "read_role", Role.VIEWER)
        else:
            minimum = getattr(view, "write_role", Role.OPERATOR)
        return bool(user.has_role(minimum))
