"""The agent's client of the control plane: register, heartbeat, send samples (httpx, JSON).

The node's identity is a node token, traded once for the operator's bootstrap token and kept in the
state directory. A call the control plane answers 401 (the token was revoked, expired, or the node
registered again elsewhere) registers again with the bootstrap token and is retried once. Tokens go
only in the Authorization header: never in a URL, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from agents.state import Credentials, StateDir

log = logging.getLogger(__name__)


class ControlPlaneError(Exception):
    """A call to the control plane that did not succeed."""


class Unreachable(ControlPlaneError):
    """No answer, or a server error: worth retrying as it is."""


class Unauthorized(ControlPlaneError):
    """The token was refused (401)."""


class Rejected(ControlPlaneError):
    """The control plane refused the call as it is (4xx); ``fields`` names what it found wrong."""

    def __init__(self, message: str, *, status_code: int, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.fields = fields or {}


@dataclass(frozen=True)
class NodeIdentity:
    """What the agent registers as."""

    name: str
    tier: str
    gpu_count: int
    agent_url: str
    agent_version: str
    engine: str = "sim"


@dataclass(frozen=True)
class HeartbeatAnswer:
    generation_desired: int
    status: str


def _verify(ca_bundle: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


class ControlPlane:
    """Calls to the control plane as this node; registers (again) when it must."""

    def __init__(
        self,
        url: str,
        identity: NodeIdentity,
        state: StateDir,
        *,
        bootstrap_token: str | None,
        ca_bundle: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        self.state = state
        self._bootstrap_token = bootstrap_token
        self._credentials: Credentials | None = None
        self._lock = asyncio.Lock()
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, verify=_verify(ca_bundle))

    async def close(self) -> None:
        await self.http.aclose()

    @property
    def credentials(self) -> Credentials | None:
        return self._credentials

    def load_stored(self) -> Credentials | None:
        """Take the stored node token when it is this node's at this control plane (no network)."""
        stored = self.state.load_credentials()
        if stored is not None and (stored.control_plane, stored.name) == (self.url, self.identity.name):
            self._credentials = stored
        return self._credentials

    def _stale_registration(self, credentials: Credentials) -> bool:
        identity = self.identity
        return (credentials.agent_url, credentials.tier, credentials.gpu_count) != (
            identity.agent_url, identity.tier, identity.gpu_count
        )  # fmt: skip

    async def ensure_registered(self) -> Credentials:
        """The node's credentials, registering first if there are none (or the node changed address)."""
        async with self._lock:
            credentials = self._credentials or self.load_stored()
            if credentials is not None and not self._stale_registration(credentials):
                return credentials
            if credentials is not None and not self._bootstrap_token:
                return credentials  # registered under an older address; nothing to register again with
            return await self._register()

    async def reregister(self, refused: Credentials) -> Credentials:
        """Register again after ``refused`` was answered 401 (once, however many calls saw it)."""
        async with self._lock:
            if self._credentials is not None and self._credentials.token != refused.token:
                return self._credentials
            log.warning("the control plane refused the node token: registering again")
            return await self._register()

    async def _register(self) -> Credentials:
        if not self._bootstrap_token:
            raise Unauthorized(
                "no usable node token and no bootstrap token: start the agent with --bootstrap-token "
                "or CLEAVE_BOOTSTRAP_TOKEN"
            )
        identity = self.identity
        body = {
            "name": identity.name, "tier": identity.tier, "gpu_count": identity.gpu_count,
            "agent_url": identity.agent_url, "agent_version": identity.agent_version,
            # The planner places workers of the engine the node runs.
            "labels": {"engine": identity.engine},
        }  # fmt: skip
        try:
            answer = await self._request("POST", "/api/v1/nodes/register", self._bootstrap_token, body)
        except Unauthorized:
            raise Rejected("the bootstrap token was refused (unknown, expired or revoked)", status_code=401) from None
        credentials = Credentials(
            control_plane=self.url, name=identity.name, node_id=int(answer["node"]["id"]), token=str(answer["token"]),
            agent_url=identity.agent_url, tier=identity.tier, gpu_count=identity.gpu_count,
        )  # fmt: skip
        self.state.save_credentials(credentials)
        self._credentials = credentials
        log.info("registered as node %s (id %d) at %s", identity.name, credentials.node_id, self.url)
        return credentials

    async def _as_node(self, method: str, path: str, body: dict[str, Any]) -> Any:
        credentials = await self.ensure_registered()
        try:
            return await self._request(method, path.format(node_id=credentials.node_id), credentials.token, body)
        except Unauthorized:
            credentials = await self.reregister(credentials)
            return await self._request(method, path.format(node_id=credentials.node_id), credentials.token, body)

    async def heartbeat(self, body: dict[str, Any]) -> HeartbeatAnswer:
        """Send a heartbeat; the answer says which generation the control plane wants the node at."""
        answer = await self._as_node("POST", "/api/v1/nodes/{node_id}/heartbeat", body)
        return HeartbeatAnswer(int(answer.get("generation_desired", 0)), str(answer.get("status", "")))

    async def send_samples(self, batch: dict[str, Any]) -> Any:
        """Send one batch of samples (``node_samples``, ``worker_samples``)."""
        return await self._as_node("POST", "/api/v1/telemetry/samples", batch)

    async def _request(self, method: str, path: str, token: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            response = await self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise Unreachable(f"{method} {path}: {error.__class__.__name__}: {error}") from None
        if response.status_code >= 500:
            raise Unreachable(f"{method} {path}: the control plane answered {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 401:
            raise Unauthorized(f"{method} {path}: 401")
        if response.status_code >= 400:
            detail = answer.get("error", {}) if isinstance(answer, dict) else {}
            message = detail.get("message") if isinstance(detail, dict) else None
            fields = detail.get("fields") if isinstance(detail, dict) else None
            raise Rejected(
                f"{method} {path}: {response.status_code}: {message or response.text[:200]}",
                status_code=response.status_code, fields=fields if isinstance(fields, dict) else None,
            )  # fmt: skip
        return answer
