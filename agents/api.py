"""The agent's HTTP API, which the control plane calls (Starlette, served by uvicorn in the agent's loop).

Every route but ``GET /health`` must be signed by the control plane with the node's key (the SHA-256
of its node token; see ``profiler.signing``). A call is refused, and nothing changes, when it is
unsigned, badly signed, outside the clock window or a replay of a signature already seen (401), or
when it pushes a generation older than the one held (409). Errors are JSON:
``{"error": {"code", "message", "fields"?}}``, like the control plane's.

- ``PUT /v1/assignment``: the node's desired workers. Checked whole (400 naming each bad field); the
  generation held again is a no-op (200); a newer one is persisted, then answered at once (202) and
  reconciled in the background.
- ``GET /v1/status``: the generation held and applied, every worker's state, reporting counters.
- ``POST /v1/workers/{name}/drain``: ``{"deadline_s"}``; the worker is reported draining, and drained
  once idle or at the deadline (202). It keeps running until an assignment without it arrives.
- ``GET /health``: liveness, unsigned.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.engines import EngineError
from agents.reconcile import AssignmentError, NoLauncherError, parse_assignment
from profiler.signing import (
    GENERATION_HEADER,
    MAX_CLOCK_SKEW_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    signing_key,
    verify,
)

if TYPE_CHECKING:
    from agents.node import NodeAgent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_DRAIN_DEADLINE_S = 24 * 3600.0


class Refusal(Exception):
    """A call the API answers with an error."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return JSONResponse({"error": error}, status_code=self.status)


class SeenSignatures:
    """Signatures already accepted, each kept until its timestamp leaves the clock window; bounded."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, signature: str, sent_at: float, now: float) -> bool:
        """Record ``signature``; False when it was seen before (a replay)."""
        while self._expiry and next(iter(self._expiry.values())) < now:
            self._expiry.popitem(last=False)
        if signature in self._expiry:
            return False
        # Expiry is monotone in arrival order only roughly; the bound keeps memory in check regardless.
        self._expiry[signature] = sent_at + MAX_CLOCK_SKEW_S
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
        return True


class AgentApi:
    """The routes, over one NodeAgent."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent
        self.seen = SeenSignatures()

    def app(self) -> Starlette:
        async def refused(request: Request, error: Exception) -> Response:
            assert isinstance(error, Refusal)
            return error.response()

        async def crashed(request: Request, error: Exception) -> Response:
            log.exception("agent API error on %s %s", request.method, request.url.path, exc_info=error)
            return Refusal(500, "internal", "the agent failed to handle the call; see its log").response()

        return Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/assignment", self.put_assignment, methods=["PUT"]),
                Route("/v1/status", self.status, methods=["GET"]),
                Route("/v1/workers/{name}/drain", self.drain, methods=["POST"]),
            ],
            exception_handlers={Refusal: refused, Exception: crashed},
        )

    async def _signed(self, request: Request) -> tuple[int, bytes]:
        """The call's generation and body once its signature checks out; Refusal otherwise."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Refusal(413, "too_large", f"bodies are at most {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise Refusal(413, "too_large", f"bodies are at most {MAX_BODY_BYTES} bytes")
        credentials = self.agent.control_plane.credentials
        if credentials is None:
            raise Refusal(503, "not_registered", "the agent has not registered with the control plane yet")
        now = time.time()
        try:
            generation = verify(
                signing_key(credentials.token), dict(request.headers), method=request.method,
                path=request.url.path, body=body, now=now,
            )  # fmt: skip
        except SignatureError as error:
            code = "unsigned" if str(error).startswith("unsigned") else "bad_signature"
            log.warning("refused %s %s: %s", request.method, request.url.path, error)
            raise Refusal(401, code, str(error)) from None
        sent_at = float(request.headers[TIMESTAMP_HEADER])
        if not self.seen.first_use(request.headers[SIGNATURE_HEADER], sent_at, now):
            log.warning("refused %s %s: a replayed signature", request.method, request.url.path)
            raise Refusal(401, "replayed", "this signature was already used")
        return generation, body

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def status(self, request: Request) -> Response:
        await self._signed(request)
        return JSONResponse(self.agent.status())

    async def put_assignment(self, request: Request) -> Response:
        signed_generation, body = await self._signed(request)
        agent = self.agent
        if agent.shutting_down:
            raise Refusal(503, "shutting_down", "the agent is shutting down")
        try:
            payload = json.loads(body)
        except ValueError:
            raise Refusal(400, "invalid", "the body is not JSON", {"body": ["Not JSON."]}) from None
        generation = payload.get("generation") if isinstance(payload, dict) else None
        if isinstance(generation, int) and not isinstance(generation, bool):
            if generation != signed_generation:
                raise Refusal(400, "invalid", "the body's generation is not the signed one", {
                    "generation": [f"Does not match the {GENERATION_HEADER} header ({signed_generation})."]
                })  # fmt: skip
            held = agent.reconciler.desired.generation
            if generation < held:
                log.warning("refused a stale assignment (generation %d < %d)", generation, held)
                raise Refusal(409, "stale_generation", f"generation {generation} is older than the one held ({held})",
                              {"generation": [f"Older than {held}."]})  # fmt: skip
            if generation == held:
                return JSONResponse({"accepted": True, "generation": held, "changed": False})
        try:
            assignment = parse_assignment(payload, agent.limits)
        except AssignmentError as error:
            raise Refusal(400, "invalid", str(error), error.fields) from None
        errors: dict[str, list[str]] = {}
        for index, worker in enumerate(assignment.workers):
            try:
                agent.supervisor.prepare(worker)
            except NoLauncherError:
                pass  # accepted, and reported failed with the reason: the launcher may come with an upgrade
            except EngineError as error:
                errors[f"workers[{index}]"] = [str(error)]
        if errors:
            raise Refusal(400, "invalid", next(iter(errors.values()))[0], errors)
        agent.accept(assignment)
        return JSONResponse({"accepted": True, "generation": assignment.generation, "changed": True}, status_code=202)

    async def drain(self, request: Request) -> Response:
        _, body = await self._signed(request)
        name = request.path_params["name"]
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            raise Refusal(400, "invalid", "the body is not JSON", {"body": ["Not JSON."]}) from None
        deadline = payload.get("deadline_s") if isinstance(payload, dict) else None
        if (
            not isinstance(deadline, int | float) or isinstance(deadline, bool) or not math.isfinite(deadline)
            or not 0 <= deadline <= MAX_DRAIN_DEADLINE_S
        ):  # fmt: skip
            raise Refusal(400, "invalid", "deadline_s must be a number of seconds",
                          {"deadline_s": [f"Required: a number from 0 to {MAX_DRAIN_DEADLINE_S:.0f}."]})  # fmt: skip
        try:
            view = self.agent.supervisor.drain(name, float(deadline))
        except KeyError:
            raise Refusal(404, "not_found", f"no worker {name} on this node") from None
        return JSONResponse(view, status_code=202)
