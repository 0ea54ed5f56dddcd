"""Users with roles, API tokens (stored hashed, expiring, revocable) and the audit log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Role(models.TextChoices):
    """Human roles are ordered: each may do what the ones before it may. Machine roles stand apart."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"
    ROUTER = "router", "Router (machine)"
    AGENT = "agent", "Node agent (machine)"


HUMAN_ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}
MACHINE_ROLES = frozenset({Role.ROUTER, Role.AGENT})


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        ordering = ["username"]

    @property
    def is_machine(self) -> bool:
        return self.role in MACHINE_ROLES

    def has_role(self, minimum: str) -> bool:
        """True when this is a human whose role is at least `minimum` (viewer < operator < admin)."""
        if not self.is_active or self.role in MACHINE_ROLES:
            return False
        return HUMAN_ROLE_RANK.get(Role(self.role), 0) >= HUMAN_ROLE_RANK[Role(minimum)]


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now(), user__is_active=True)


class TokenScope(models.TextChoices):
    API = "api", "API"
    BOOTSTRAP = "bootstrap", "Agent bootstrap (may only register nodes)"
    NODE = "node", "Node (one node's agent)"


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 digest is stored; the secret is shown once, at creation.

    An agent registers with a `bootstrap` token and receives a `node` token bound to its node; the
    node token's digest is also the key that signs the control plane's calls to that agent.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=TokenScope.choices, default=TokenScope.API)
    node = models.ForeignKey("fleet.Node", null=True, blank=True, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part, to find the token and name it in logs.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")), name="api_token_expires_after_creation"),
            models.CheckConstraint(
                condition=Q(scope="node", node__isnull=False) | (~Q(scope="node") & Q(node__isnull=True)),
                name="api_token_node_scope_has_node",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now() and self.user.is_active


class AuditEvent(models.Model):
    """One state change made through a service function: who, what verb, on what, before and after."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=150, help_text="Username, or the system job that acted.")
    verb = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.verb} {self.object_type}:{self.object_id}"
