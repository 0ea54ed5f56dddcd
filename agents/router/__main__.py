"""``python -m agents.router``: run one router process (``--help`` lists the flags).

The control plane token (a router token, or the node token of the agent running the router) comes
from ``CLEAVE_ROUTER_TOKEN``, or from ``--token-file``, never from the command line. A token file
holds the token alone, or a JSON object with a ``token`` field, and then may name the control plane
too (``control_plane``), as the node agent's ``credentials.json`` does; it is read again whenever it
changes, so a node token the agent renews reaches the router without a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.applications import Starlette

from agents.cli import positive_float, positive_int
from agents.router.app import Router, RouterConfig
from agents.router.metrics import RouterMetrics, StateSnapshot
from agents.router.plan import ControlPlanePoller, PlanHolder, load_file, watch_file
from agents.router.policy import Balancer
from agents.router.records import RecordSender
from agents.router.spool import Spool

TOKEN_ENV = "CLEAVE_ROUTER_TOKEN"
CONTROL_PLANE_ENV = "CLEAVE_CONTROL_PLANE"
CONTROL_PLANE_TIMEOUT_S = 5.0
log = logging.getLogger("cleave.router")


@dataclass(frozen=True)
class RouterOptions:
    """Everything the command line sets."""

    port: int
    host: str = "127.0.0.1"
    routing_file: Path | None = None
    control_plane: str | None = None
    service_id: int | None = None
    token: TokenSource = field(default_factory=lambda: TokenSource(None, None))
    spool_dir: Path | None = None
    spool_max_mb: float = 64.0
    max_queue: int = 256
    worker_timeout_s: float = 30.0
    connect_timeout_s: float = 2.0
    poll_s: float = 5.0
    batch_records: int = 500
    flush_s: float = 2.0
    require_api_key: bool = True
    breaker_failures: int = 3
    breaker_cool_off_s: float = 5.0


def build_app(options: RouterOptions) -> Starlette:
    """The router's application, with a lifespan that starts and stops its background tasks."""
    holder = PlanHolder()
    balancer = Balancer(failure_threshold=options.breaker_failures, cool_off_s=options.breaker_cool_off_s)
    spool = Spool(options.spool_dir, int(options.spool_max_mb * 2**20)) if options.spool_dir else None
    # One pooled client for every worker: a new client per request costs ~20 ms.
    connections = max(100, 2 * options.max_queue)
    upstream = httpx.AsyncClient(
        timeout=httpx.Timeout(options.worker_timeout_s, connect=options.connect_timeout_s),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,
    )
    control = httpx.AsyncClient(timeout=CONTROL_PLANE_TIMEOUT_S) if options.control_plane else None
    poller = None
    if control is not None and options.control_plane:
        poller = ControlPlanePoller(
            holder=holder, client=control, base_url=options.control_plane.rstrip("/"),
            service_id=options.service_id, token=options.token, take_routing=options.routing_file is None,
            cache_path=options.spool_dir / "routing-document.json" if options.spool_dir else None,
        )  # fmt: skip
    router: Router

    def snapshot() -> StateSnapshot:
        plan = holder.current
        loads = list(balancer.loads.values())
        return StateSnapshot(
            service=plan.service if plan else "", plan_version=plan.version_number if plan else None,
            plan_swaps=holder.swaps, queue_depth=router.in_flight, queue_limit=options.max_queue,
            control_plane_up=poller.up if poller else None,
            breakers={load.worker: int(load.breaker.state) for load in loads},
            ejections={load.worker: load.breaker.ejections for load in loads},
            outstanding_tokens={load.worker: load.outstanding_tokens for load in loads},
            in_flight={load.worker: load.in_flight for load in loads},
            spool_bytes=spool.bytes if spool else 0, spool_segments=spool.segments if spool else 0,
            spool_dropped_records=spool.dropped_records if spool else 0, affinity_hits=balancer.affinity_hits,
        )  # fmt: skip

    metrics = RouterMetrics(snapshot)
    sender = RecordSender(
        client=control, control_plane=options.control_plane, token=options.token, spool=spool, metrics=metrics,
        batch_records=options.batch_records, flush_s=options.flush_s,
    )  # fmt: skip
    router = Router(
        config=RouterConfig(
            max_queue=options.max_queue, require_api_key=options.require_api_key,
            worker_timeout_s=options.worker_timeout_s, connect_timeout_s=options.connect_timeout_s,
        ),
        plans=holder, balancer=balancer, metrics=metrics, sender=sender, upstream=upstream,
    )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if options.routing_file is not None:
            load_file(holder, options.routing_file)
            tasks.append(asyncio.create_task(watch_file(holder, options.routing_file), name="routing-file"))
        if poller is not None:
            poller.load_cache()
            await poller.poll_once()
            tasks.append(asyncio.create_task(poller.run(options.poll_s), name="routing-poll"))
        tasks.append(asyncio.create_task(sender.run(), name="records"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sender.close()
            await upstream.aclose()
            if control is not None:
                await control.aclose()

    return router.app(lifespan)


class TokenSource:
    """The control plane token: a fixed one (``$CLEAVE_ROUTER_TOKEN``), else the token file's, re-read when it changes."""

    def __init__(self, token: str | None, path: Path | None) -> None:
        self.fixed, self.path = token or None, path
        self._seen: tuple[int, int, int] | None = None
        self._token: str | None = None
        self._control_plane: str | None = None

    def __call__(self) -> str | None:
        if self.fixed or self.path is None:
            return self.fixed
        try:
            stat = self.path.stat()
        except OSError:
            return self._token
        if (stat.st_ino, stat.st_mtime_ns, stat.st_size) != self._seen:
            self._seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            self._read()
        return self._token

    def _read(self) -> None:
        assert self.path is not None
        try:
            text = self.path.read_text().strip()
            document = json.loads(text) if text.startswith("{") else {"token": text}
        except (OSError, ValueError) as error:
            log.error("cannot read the token file %s: %s", self.path, error)
            return
        if isinstance(document, dict):
            self._token = str(document["token"]) if document.get("token") else None
            self._control_plane = str(document["control_plane"]) if document.get("control_plane") else None

    @property
    def control_plane(self) -> str | None:
        """The control plane the token file names, if it names one."""
        self()
        return self._control_plane

def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m agents.router``."""
    p = argparse.ArgumentParser(
        prog="python -m agents.router", description="Cleave's OpenAI-compatible router."
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--routing-file", type=Path, help="routing plan JSON, reloaded when it changes")
    p.add_argument(
        "--control-plane",
        default=os.environ.get(CONTROL_PLANE_ENV),
        help=f"control plane URL, for the routing document and records (default ${CONTROL_PLANE_ENV}, "
        "else the token file's control_plane)",
    )
    p.add_argument(
        "--service-id",
        type=int,
        help="the service whose routing document to poll (default: the routing file's service_id)",
    )
    p.add_argument(
        "--token-file", type=Path, help=f"where the control plane token is, when ${TOKEN_ENV} is unset"
    )
    p.add_argument("--spool-dir", type=Path, help="where records wait while the control plane is away")
    p.add_argument("--spool-max-mb", type=positive_float, default=64.0)
    p.add_argument("--max-queue", type=positive_int, default=256, help="requests in flight before 429s")
    p.add_argument("--worker-timeout-s", type=positive_float, default=30.0)
    p.add_argument("--connect-timeout-s", type=positive_float, default=2.0)
    p.add_argument("--poll-s", type=positive_float, default=5.0, help="routing document poll interval")
    p.add_argument("--batch-records", type=positive_int, default=500)
    p.add_argument("--flush-s", type=positive_float, default=2.0)
    p.add_argument("--require-api-key", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--breaker-failures", type=positive_int, default=3)
    p.add_argument("--breaker-cool-off-s", type=positive_float, default=5.0)
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve until SIGINT or SIGTERM (in-flight requests finish, records flush)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    token = TokenSource(os.environ.get(TOKEN_ENV), args.token_file)
    args.control_plane = args.control_plane or token.control_plane
    if args.routing_file is None and (args.control_plane is None or args.service_id is None):
        parser.error("give --routing-file, or --control-plane with --service-id")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    if args.control_plane and not token():
        log.warning("no control plane token (%s): the control plane will refuse this router", TOKEN_ENV)
    if args.require_api_key and not args.control_plane:
        log.warning("--require-api-key without --control-plane: client keys must come in the routing file")
    options = RouterOptions(
        port=args.port, host=args.host, routing_file=args.routing_file, control_plane=args.control_plane,
        service_id=args.service_id, token=token, spool_dir=args.spool_dir, spool_max_mb=args.spool_max_mb,
        max_queue=args.max_queue, worker_timeout_s=args.worker_timeout_s, connect_timeout_s=args.connect_timeout_s,
        poll_s=args.poll_s, batch_records=args.batch_records, flush_s=args.flush_s,
        require_api_key=args.require_api_key, breaker_failures=args.breaker_failures,
        breaker_cool_off_s=args.breaker_cool_off_s,
    )  # fmt: skip
    import uvicorn
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # type: ignore[no-untyped-call]  # the _created series: noise nobody reads

    uvicorn.run(
        build_app(options), host=options.host, port=options.port, log_level=args.log_level, access_log=False,
        timeout_graceful_shutdown=int(options.worker_timeout_s) + 1,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
