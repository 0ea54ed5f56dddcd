"""The control plane's client for node agents: signed calls over httpx (see profiler.signing)."""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import httpx
from django.conf import settings

from controlplane.accounts.models import ApiToken, TokenScope
from controlplane.fleet.models import Node
from profiler.signing import sign


class AgentError(Exception):
    """The agent could not be reached, or refused the call (the message says which, and why)."""

    def __init__(self, node: str, message: str, *, status_code: int | None = None) -> None:
        super().__init__(f"agent of {node}: {message}")
        self.status_code = status_code


def node_signing_key(node: Node) -> bytes:
    """The key that signs calls to `node`: the digest of its current node token."""
    token = (
        ApiToken.objects.filter(node=node, scope=TokenScope.NODE, revoked_at__isnull=True)
        .order_by("-created_at").values_list("digest", flat=True).first()
    )
    if token is None:
        raise AgentError(node.name, "the node has no usable node token; has its agent registered?")
    return token.encode()


class AgentClient:
    def __init__(self, node: Node, *, timeout_s: float | None = None) -> None:
        if not node.agent_url:
            raise AgentError(node.name, "the node has no agent URL")
        self.node = node
        self.key = node_signing_key(node)
        self.client = httpx.Client(
            base_url=node.agent_url.rstrip("/"),
            timeout=timeout_s if timeout_s is not None else settings.AGENT_CALL_TIMEOUT_S,
            verify=ssl.create_default_context(cafile=settings.AGENT_CA_BUNDLE or None),
        )

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _call(self, method: str, path: str, *, generation: int, payload: dict[str, Any] | None = None) -> Any:
        body = json.dumps(payload, sort_keys=True).encode() if payload is not None else b""
        headers = sign(self.key, method=method, path=path, body=body, generation=generation, now=time.time()).as_dict()
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.client.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AgentError(self.node.name, f"unreachable ({exc.__class__.__name__})") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", {}).get("message", response.text[:200])
            except ValueError:
                detail = response.text[:200]
            raise AgentError(self.node.name, f"{response.status_code}: {detail}", status_code=response.status_code)
        return response.json()

    def put_assignment(self, assignment: dict[str, Any]) -> Any:
        """Send the desired state; the agent answers at once and reconciles in the background."""
        return self._call("PUT", "/v1/assignment", generation=int(assignment["generation"]), payload=assignment)

    def status(self) -> Any:
        """The agent's workers, their health and readiness, and the generation it applied."""
        return self._call("GET", "/v1/status", generation=self.node.generation_desired)

    def drain(self, worker: str, *, deadline_s: float) -> Any:
        """Stop admitting to `worker` and finish what it holds, within `deadline_s`."""
        return self._call(
            "POST", f"/v1/workers/{worker}/drain", generation=self.node.generation_desired,
            payload={"deadline_s": deadline_s},
        )
