"""The routing plan the router follows, where it comes from, and how a new one replaces the old.

A plan is immutable: each request takes the current one when it arrives and keeps it to the end, so
a swap never moves a request in flight. Two sources feed the holder:

- a routing file (``--routing-file``), which the node agent rewrites atomically (temp file + rename);
  it is polled (stat every half second) and any change of content replaces the plan. The file holds
  either the plan's routing JSON itself (``{"service", "model", "pools", ...}``) or a whole routing
  document (``{"routing": {...}, "api_key_digests": [...], "admission_model": {...}}``).
- the control plane's routing document (``GET /api/v1/services/{id}/routing``, polled with its ETag).
  Its API key digests and admission model always apply; its routing applies only when no routing file
  is given (the file is what the node agent was told for this router, canary weights included). The
  last document is cached beside the spool, so a router restarted while the control plane is down
  still knows its keys.

A bad file or document is logged and ignored: the router keeps serving on the plan it has.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from profiler.models.admission import AdmissionModel
from profiler.models.schema import ModelFormatError

log = logging.getLogger("cleave.router.plan")

POOLS = ("prefill", "decode", "colocated")
DEFAULT_HOST = "127.0.0.1"
FILE_POLL_S = 0.5


class PlanError(ValueError):
    """A routing plan the router cannot follow; the message names the field."""


@dataclass(frozen=True)
class Endpoint:
    """One worker of a pool: its name ("node/name"), base URL and weight."""

    worker: str
    pool: str
    url: str
    weight: float
    tier: str = ""
    tp: int = 1


@dataclass(frozen=True)
class RoutingPlan:
    """What the router routes by. ``api_key_digests`` is None while no key list is known."""

    service: str
    model: str
    version: int | str | None
    prefill: tuple[Endpoint, ...]
    decode: tuple[Endpoint, ...]
    colocated: tuple[Endpoint, ...]
    local_prefill_threshold: int = 0
    service_id: int | None = None
    admission: AdmissionModel | None = field(default=None, compare=False)
    api_key_digests: frozenset[str] | None = None
    source: str = ""

    @property
    def serving(self) -> tuple[Endpoint, ...]:
        """The workers that make a request's tokens: decode and colocated ones."""
        return self.decode + self.colocated

    @property
    def version_number(self) -> float:
        """The version as a number for the metric (-1 when it is not one)."""
        try:
            return float(self.version) if self.version is not None else -1.0
        except ValueError:
            return -1.0


def _endpoint(raw: object, pool: str, index: int) -> Endpoint:
    where = f"pools.{pool}[{index}]"
    if not isinstance(raw, Mapping):
        raise PlanError(f"{where} must be an object")
    worker = raw.get("worker")
    if not isinstance(worker, str) or not worker:
        raise PlanError(f"{where}.worker must be a non-empty string")
    url = raw.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PlanError(f"{where}.url must be an http(s) URL, got {url!r}")
        url = url.rstrip("/").removesuffix("/v1")
    else:
        host, port = raw.get("host") or DEFAULT_HOST, raw.get("port")
        if not isinstance(host, str):
            raise PlanError(f"{where}.host must be a string")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise PlanError(f"{where}.port must be a port number (or give url), got {port!r}")
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
        raise PlanError(f"{where}.weight must be a number >= 0, got {weight!r}")
    tp = raw.get("tp", 1)
    return Endpoint(
        worker=worker,
        pool=pool,
        url=url,
        weight=float(weight),
        tier=str(raw.get("tier") or ""),
        tp=tp if isinstance(tp, int) and not isinstance(tp, bool) else 1,
    )


def parse_routing(routing: object, *, source: str = "") -> RoutingPlan:
    """A RoutingPlan from the plan's routing JSON; PlanError naming the field when it is malformed."""
    if not isinstance(routing, Mapping):
        raise PlanError("the routing plan must be a JSON object")
    service, model = routing.get("service"), routing.get("model")
    if not isinstance(service, str) or not service:
        raise PlanError("service must be a non-empty string")
    if not isinstance(model, str) or not model:
        raise PlanError("model must be a non-empty string")
    pools = routing.get("pools")
    if not isinstance(pools, Mapping):
        raise PlanError("pools must be an object of prefill, decode and colocated lists")
    parsed: dict[str, tuple[Endpoint, ...]] = {}
    for pool in POOLS:
        entries = pools.get(pool) or []
        if not isinstance(entries, list):
            raise PlanError(f"pools.{pool} must be a list")
        parsed[pool] = tuple(_endpoint(raw, pool, index) for index, raw in enumerate(entries))
    threshold = routing.get("local_prefill_threshold") or 0
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise PlanError(f"local_prefill_threshold must be an integer >= 0, got {threshold!r}")
    version = routing.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int | str)):
        raise PlanError(f"version must be an integer, a string or null, got {version!r}")
    service_id = routing.get("service_id")
    return RoutingPlan(
        service=service,
        model=model,
        version=version,
        prefill=parsed["prefill"],
        decode=parsed["decode"],
        colocated=parsed["colocated"],
        local_prefill_threshold=threshold,
        service_id=service_id if isinstance(service_id, int) and not isinstance(service_id, bool) else None,
        source=source,
    )


def parse_digests(raw: object) -> frozenset[str]:
    """The API key digests of a routing document: SHA-256 hex strings."""
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise PlanError("api_key_digests must be a list of SHA-256 hex digests")
    return frozenset(item.lower() for item in raw)


def parse_admission(raw: object) -> AdmissionModel | None:
    """The admission model of a routing document (None when it has none)."""
    if raw is None:
        return None
    try:
        return AdmissionModel.from_json(raw)
    except ModelFormatError as error:
        raise PlanError(f"admission_model: {error}") from None


class PlanHolder:
    """The current plan and what the control plane adds to it; swaps are single assignments."""

    def __init__(self, on_swap: Callable[[RoutingPlan], None] | None = None) -> None:
        self.current: RoutingPlan | None = None
        self.swaps = 0
        self._routing: RoutingPlan | None = None
        self._routing_doc: Any = None
        self._digests: frozenset[str] | None = None
        self._admission: AdmissionModel | None = None
        self._admission_doc: Any = None
        self._on_swap = on_swap

    def set_routing(self, doc: Mapping[str, Any], *, source: str) -> bool:
        """Follow this routing JSON from now on; False (nothing changes) when it is the same as now."""
        if self._routing is not None and doc == self._routing_doc:
            return False
        self._routing, self._routing_doc = parse_routing(doc, source=source), doc
        self._publish()
        return True

    def set_keys(self, digests: frozenset[str] | None) -> None:
        if digests != self._digests:
            self._digests = digests
            self._publish()

    def set_admission(self, doc: Any) -> None:
        if doc != self._admission_doc:
            self._admission, self._admission_doc = parse_admission(doc), doc
            self._publish()

    def _publish(self) -> None:
        if self._routing is None:
            return
        previous = self.current
        self.current = replace(self._routing, admission=self._admission, api_key_digests=self._digests)
        if (
            previous is None
            or previous.version != self.current.version
            or previous.source != self.current.source
        ):
            log.info(
                "following routing plan %s of %s (%s)",
                self.current.version,
                self.current.service,
                self.current.source,
            )
        self.swaps += 1
        if self._on_swap is not None:
            self._on_swap(self.current)


def apply_document(
    holder: PlanHolder, document: Mapping[str, Any], *, take_routing: bool, source: str
) -> None:
    """Apply a routing document (``routing``, ``api_key_digests``, ``admission_model``) to the holder."""
    if "api_key_digests" in document:
        holder.set_keys(parse_digests(document["api_key_digests"]))
    if "admission_model" in document:
        holder.set_admission(document["admission_model"])
    routing = document.get("routing")
    if take_routing and routing is not None:
        holder.set_routing(routing, source=source)


def load_file(holder: PlanHolder, path: Path) -> bool:
    """Read the routing file into the holder; False when it is missing or unusable (logged)."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as error:
        log.error("ignoring unreadable routing file %s: %s", path, error)
        return False
    try:
        if isinstance(doc, Mapping) and "pools" not in doc and "routing" in doc:
            apply_document(holder, doc, take_routing=True, source=f"file:{path}")
        else:
            holder.set_routing(doc, source=f"file:{path}")
    except PlanError as error:
        log.error("ignoring routing file %s: %s", path, error)
        return False
    return True


async def watch_file(holder: PlanHolder, path: Path, interval_s: float = FILE_POLL_S) -> None:
    """Reload the routing file whenever its identity (inode, size, mtime) changes; runs until cancelled."""
    seen: tuple[int, int, int] | None = None
    while True:
        try:
            stat = os.stat(path)
            identity: tuple[int, int, int] | None = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except OSError:
            identity = None
        if identity is not None and identity != seen and load_file(holder, path):
            seen = identity
        await asyncio.sleep(interval_s)


@dataclass
class ControlPlanePoller:
    """Polls the service's routing document with its ETag and applies what changed."""

    holder: PlanHolder
    client: httpx.AsyncClient
    base_url: str
    service_id: int | None  # None: the routing plan's service_id, once the routing file gave one
    token: Callable[[], str | None]
    take_routing: bool
    cache_path: Path | None = None
    etag: str | None = None
    up: bool = False

    async def poll_once(self) -> None:
        """One GET; errors are logged and leave the plan as it is."""
        token = self.token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        plan = self.holder.current
        service_id = self.service_id if self.service_id is not None else plan.service_id if plan else None
        if service_id is None:
            return
        url = f"{self.base_url}/api/v1/services/{service_id}/routing"
        try:
            response = await self.client.get(url, headers=headers)
        except httpx.HTTPError as error:
            if self.up:
                log.warning("control plane unreachable (%s); serving on the last routing plan", error)
            self.up = False
            return
        self.up = response.status_code in (200, 304)
        if response.status_code == 304:
            return
        if response.status_code != 200:
            log.error("routing document: HTTP %d from %s: %s", response.status_code, url, response.text[:200])
            return
        try:
            document = response.json()
            apply_document(self.holder, document, take_routing=self.take_routing, source="control-plane")
        except (ValueError, PlanError) as error:
            log.error("ignoring the routing document from %s: %s", url, error)
            return
        self.etag = response.headers.get("ETag")
        if self.cache_path is not None:
            self._save(document)

    def load_cache(self) -> None:
        """Start from the last document fetched, if one was cached."""
        if self.cache_path is None or not self.cache_path.exists():
            return
        try:
            document = json.loads(self.cache_path.read_bytes())
            apply_document(self.holder, document, take_routing=self.take_routing, source="control-plane-cache")
        except (OSError, ValueError, PlanError) as error:
            log.warning("ignoring the cached routing document %s: %s", self.cache_path, error)

    def _save(self, document: Any) -> None:
        assert self.cache_path is not None
        temporary = self.cache_path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(document))
            os.replace(temporary, self.cache_path)
        except OSError as error:
            log.warning("cannot cache the routing document at %s: %s", self.cache_path, error)

    async def run(self, interval_s: float) -> None:
        """Poll every ``interval_s`` until cancelled."""
        while True:
            await self.poll_once()
            await asyncio.sleep(interval_s)
