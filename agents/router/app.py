"""The router's HTTP face: an OpenAI-compatible gateway in front of a service's workers.

``POST /v1/completions`` and ``/v1/chat/completions`` (SSE when ``stream``), ``GET /v1/models``,
``GET /health`` and ``GET /metrics``. Each request is checked (API key, body, model, context length)
with OpenAI's status codes and error shape, refused with a 429 when ``max_queue`` requests are already
in flight, classed by the admission model, and sent on the plan it arrived under: a long prompt to a
prefill worker (``max_tokens=1``, ``kv_transfer_params`` asking for a remote decode), then to a decode
worker with the params the prefill returned; a prompt under the plan's local-prefill threshold, or
any prompt to a colocated worker, to one worker.

The decode leg is always streamed from the worker, so every request's TTFT and TPOT are measured;
a client that did not ask for a stream gets the answer the stream adds up to. A leg that fails
before the client saw a byte (connect error, timeout, 5xx, a stream cut short) is retried once on
another worker (a prefill with no other prefill worker left falls back to prefilling on the decode
worker); once tokens have reached the client, a failure ends its stream with an error event. A
worker's 4xx goes back to the client as it is. Every request past the key check and the body parse
leaves one record (``agents.router.records``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Lifespan, Receive, Scope, Send

from agents.router.metrics import RouterMetrics
from agents.router.plan import Endpoint, PlanHolder, RoutingPlan
from agents.router.policy import (
    ApiError,
    Balancer,
    Lease,
    Parsed,
    authenticate,
    context_limit,
    parse_body,
    read_body,
)
from agents.router.records import Flight, RecordSender, TokenClock, assemble
from profiler.models.schema import ModelFormatError

# What the prefill leg asks for, as vLLM's disaggregated proxy protocol has it.
REMOTE_DECODE_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
DEFAULT_MAX_TOKENS = 16
# The slowest a working worker prefills a prompt token (the prefill leg is the one leg not streamed).
PROMPT_TOKEN_FLOOR_S = 0.001
_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


class UpstreamFailure(Exception):
    """A worker failed a leg (no answer, a timeout, a 5xx): its breaker counts it, the leg may be retried."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class UpstreamRefusal(Exception):
    """A worker refused the request (a 4xx): the client gets the worker's answer."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


@dataclass(frozen=True)
class RouterConfig:
    """How the router admits and forwards requests."""

    max_queue: int = 256
    require_api_key: bool = True
    worker_timeout_s: float = 30.0
    connect_timeout_s: float = 2.0


def _no_plan() -> ApiError:
    return ApiError(503, "The router has no routing plan yet.", kind="no_plan", error_type="server_error")


def _unreachable(endpoint: Endpoint, error: httpx.HTTPError, kind: str = "") -> UpstreamFailure:
    kind = kind or ("upstream_timeout" if isinstance(error, httpx.TimeoutException) else "upstream_connect")
    return UpstreamFailure(kind, f"{endpoint.worker}: {error or type(error).__name__}")


def _error(error: ApiError) -> Response:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


class Router:
    """The request path: admission, worker choice, the legs, and the relay of the answer."""

    def __init__(
        self, *, config: RouterConfig, plans: PlanHolder, balancer: Balancer, metrics: RouterMetrics,
        sender: RecordSender, upstream: httpx.AsyncClient,
    ) -> None:  # fmt: skip
        self.config, self.plans, self.balancer = config, plans, balancer
        self.metrics, self.sender, self.upstream = metrics, sender, upstream
        self.in_flight = 0
        self._limits: dict[str, int | None] = {}

    def app(self, lifespan: Lifespan[Starlette] | None = None) -> Starlette:
        """The Starlette application."""
        return Starlette(
            routes=[
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, "completions")

    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, "chat")

    async def models(self, request: Request) -> Response:
        plan = self.plans.current
        try:
            if plan is None:
                raise _no_plan()
            authenticate(request.headers.get("authorization", ""), plan, required=self.config.require_api_key)
        except ApiError as error:
            return _error(error)
        card = {"id": plan.model, "object": "model", "created": 0, "owned_by": "cleave",
                "max_model_len": context_limit(plan.model)}  # fmt: skip
        return JSONResponse({"object": "list", "data": [card]})

    async def health(self, request: Request) -> Response:
        plan = self.plans.current
        if plan is None:
            return JSONResponse({"status": "no routing plan"}, status_code=503)
        return JSONResponse({"status": "ok", "service": plan.service, "plan_version": plan.version})

    async def prometheus(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # --- admission ---

    def _predict(self, plan: RoutingPlan, parsed: Parsed, endpoint: str, client: str, arrival: float) -> str:
        if plan.admission is None:
            return "balanced"
        inputs = {
            "prompt_tokens": parsed.prompt.tokens, "max_tokens": parsed.max_tokens,
            "hour_of_day": int(arrival % 86400 // 3600), "endpoint": endpoint, "service": plan.service,
            "client": client or None,
        }  # fmt: skip
        try:
            return plan.admission.predict(inputs)[0]
        except ModelFormatError:
            return "balanced"

    async def _serve(self, request: Request, endpoint: str) -> Response:
        started, arrival = time.perf_counter(), time.time()
        plan = self.plans.current
        flight: Flight | None = None
        try:
            if plan is None:
                raise _no_plan()
            client = authenticate(request.headers.get("authorization", ""), plan, required=self.config.require_api_key)
            body = await read_body(request.stream(), request.headers.get("content-length", ""))
            parsed = parse_body(body, chat=endpoint == "chat", plan=plan)
            user = parsed.body.get("user")
            client = (client or (user if isinstance(user, str) else ""))[:100]
            flight = Flight(
                service=plan.service, endpoint=endpoint, client=client, arrival_at=arrival, started=started,
                prompt_tokens=parsed.prompt.tokens, max_tokens=parsed.max_tokens,
                predicted_class=self._predict(plan, parsed, endpoint, client, arrival), stream=parsed.stream,
            )  # fmt: skip
            limit = self._limits.setdefault(plan.model, context_limit(plan.model))
            asked = parsed.prompt.tokens + (parsed.max_tokens or 0)
            if limit is not None and asked > limit:
                where = "messages" if endpoint == "chat" else "prompt"
                raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                               f"{asked} tokens ({parsed.prompt.tokens} in the {where}, {parsed.max_tokens or 0} in "
                               "the completion). Please reduce the length of the messages or completion.",
                               kind="context_length", param=where, code="context_length_exceeded")  # fmt: skip
            if self.in_flight >= self.config.max_queue:
                raise ApiError(429, f"The router has {self.in_flight} requests in flight, its limit; retry shortly.",
                               kind="overloaded", error_type="requests", code="rate_limit_exceeded",
                               headers={"Retry-After": "1"})  # fmt: skip
        except ApiError as error:
            service = plan.service if plan is not None else ""
            self.metrics.errors.labels(service, "none", error.kind).inc()
            if flight is not None:
                self._finish(flight, "rejected", [], holds_slot=False)
            return _error(error)
        self.in_flight += 1
        leases: list[Lease] = []
        try:
            response = await self._route(plan, parsed, flight, leases)
        except ApiError as error:
            self.metrics.errors.labels(plan.service, flight.pool, error.kind).inc()
            self._finish(flight, "error", leases)
            return _error(error)
        except UpstreamRefusal as refusal:
            self.metrics.errors.labels(plan.service, flight.pool, "upstream_4xx").inc()
            self._finish(flight, "rejected", leases)
            return Response(refusal.body, status_code=refusal.status, media_type="application/json")
        except asyncio.CancelledError:
            self._finish(flight, "cancelled", leases)
            raise
        except Exception:
            self._finish(flight, "error", leases)
            raise
        if not isinstance(response, _Relay):
            self._finish(flight, "ok", leases)
        else:
            response.on_end = lambda status: self._finish(flight, status, leases)
        return response

    def _finish(self, flight: Flight, status: str, leases: list[Lease], *, holds_slot: bool = True) -> None:
        """Count the request once: free its leases and queue slot, observe it, record it."""
        if flight.finished:
            return
        flight.finished = True
        for lease in leases:
            lease.release()
        if holds_slot:
            self.in_flight -= 1
        record = flight.record(status, time.perf_counter())
        self.metrics.observe(
            service=flight.service, pool=flight.pool, status=status, ttft_s=record.ttft_s, tpot_s=record.tpot_s,
            e2e_s=record.e2e_s or 0.0, prompt_tokens=record.prompt_tokens, output_tokens=record.output_tokens,
            predicted_class=record.predicted_class,
        )  # fmt: skip
        self.sender.add(record)

    # --- forwarding ---

    async def _route(self, plan: RoutingPlan, parsed: Parsed, flight: Flight, leases: list[Lease]) -> Response:
        long_prompt = bool(plan.prefill) and parsed.prompt.tokens >= plan.local_prefill_threshold
        output_tokens = parsed.max_tokens or DEFAULT_MAX_TOKENS
        excluded: frozenset[str] = frozenset()
        failure: UpstreamFailure | None = None
        for attempt in range(2):
            chosen = self.balancer.choose(
                "serving", plan.serving, output_tokens, prefix=None if long_prompt else parsed.prompt.prefix,
                exclude=excluded,
            )  # fmt: skip
            if chosen is None:
                break
            endpoint, lease = chosen
            leases.append(lease)
            flight.pool, flight.decode_worker, flight.prefill_worker = endpoint.pool, endpoint.worker, ""
            flight.first_token = flight.last_token = None  # a retry starts the clock's readings afresh
            params = None
            if long_prompt and endpoint.pool == "decode":
                params = await self._prefill(plan, parsed, flight, leases)
            if params is None:
                lease.grow(parsed.prompt.tokens)
            else:
                self.metrics.disaggregated.labels(plan.service).inc()
            try:
                return await self._decode(endpoint, parsed, flight, lease, params)
            except UpstreamFailure as error:
                failure = error
                self._failed(endpoint, "decode", error)
                lease.release()
                excluded |= {endpoint.url}
                if attempt == 0:
                    self.metrics.retries.labels(plan.service, "decode").inc()
        if failure is not None:
            raise ApiError(502, f"The workers serving this request failed: {failure}", kind=failure.kind,
                           error_type="server_error", code="upstream_error")  # fmt: skip
        raise ApiError(503, "No worker is available for this request; retry shortly.", kind="no_worker",
                       error_type="server_error", code="no_worker", headers={"Retry-After": "1"})  # fmt: skip

    def _failed(self, endpoint: Endpoint, leg: str, error: UpstreamFailure) -> None:
        self.balancer.failure(endpoint)
        self.metrics.upstream.labels(endpoint.worker, leg, "error").inc()

    async def _prefill(
        self, plan: RoutingPlan, parsed: Parsed, flight: Flight, leases: list[Lease]
    ) -> dict[str, Any] | None:
        """The prefill leg: the params the decode worker pulls the KV with; None to prefill locally."""
        excluded: frozenset[str] = frozenset()
        body = {**parsed.body, "max_tokens": 1, "stream": False, "kv_transfer_params": REMOTE_DECODE_PARAMS}
        body.pop("max_completion_tokens", None)
        body.pop("stream_options", None)
        for attempt in range(2):
            chosen = self.balancer.choose(
                "prefill", plan.prefill, parsed.prompt.tokens, prefix=parsed.prompt.prefix, exclude=excluded
            )
            if chosen is None:
                return None
            endpoint, lease = chosen
            leases.append(lease)
            try:
                answer = await self._call(endpoint, parsed, flight, body)
            except UpstreamFailure as error:
                self._failed(endpoint, "prefill", error)
                excluded |= {endpoint.url}
                if attempt == 0:
                    self.metrics.retries.labels(plan.service, "prefill").inc()
                continue
            finally:
                lease.release()
            try:
                document = json.loads(answer.content)
            except ValueError:
                document = None
            params = document.get("kv_transfer_params") if isinstance(document, dict) else None
            if not isinstance(params, dict) or not isinstance(document, dict):
                self._failed(endpoint, "prefill", UpstreamFailure("upstream_protocol", "no kv_transfer_params"))
                excluded |= {endpoint.url}
                continue
            self.balancer.success(endpoint)
            self.metrics.upstream.labels(endpoint.worker, "prefill", "ok").inc()
            flight.prefill_worker = endpoint.worker
            flight.take_cached(document.get("usage"))
            return params
        return None

    async def _call(self, endpoint: Endpoint, parsed: Parsed, flight: Flight, body: dict[str, Any]) -> httpx.Response:
        """The prefill leg's exchange; UpstreamFailure or UpstreamRefusal unless it answered 200."""
        url = endpoint.url + _PATHS[flight.endpoint]
        # A long prompt may take a while to prefill on a busy worker: the silence allowed, plus time for
        # its tokens at a floor rate, so that a working worker is not taken for a failed one.
        read_s = self.config.worker_timeout_s + parsed.prompt.tokens * PROMPT_TOKEN_FLOOR_S
        timeout = httpx.Timeout(read_s, connect=self.config.connect_timeout_s)
        try:
            answer = await self.upstream.post(url, json=body, headers={"X-Request-Id": flight.id}, timeout=timeout)
        except httpx.HTTPError as error:
            raise _unreachable(endpoint, error) from None
        self._check_status(endpoint, "prefill", answer.status_code, answer.content)
        return answer

    def _check_status(self, endpoint: Endpoint, leg: str, status: int, content: bytes) -> None:
        if status >= 500:
            raise UpstreamFailure("upstream_5xx", f"{endpoint.worker} answered HTTP {status}")
        if status != 200:
            self.balancer.success(endpoint)  # the worker is up: the request was at fault
            self.metrics.upstream.labels(endpoint.worker, leg, "refused").inc()
            raise UpstreamRefusal(status, content)

    async def _decode(
        self, endpoint: Endpoint, parsed: Parsed, flight: Flight, lease: Lease, params: dict[str, Any] | None
    ) -> Response:
        """The leg that makes the tokens. It is streamed from the worker whatever the client asked, so that
        every request's first token and pace are timed; a client that did not stream gets the sum."""
        body = {**parsed.body, "stream": True}
        body["stream_options"] = {**(parsed.body.get("stream_options") or {}), "include_usage": True}
        if params is not None:
            body["kv_transfer_params"] = params
        headers = {"x-request-id": flight.id, "x-cleave-decode-worker": endpoint.worker}
        if flight.prefill_worker:
            headers["x-cleave-prefill-worker"] = flight.prefill_worker
        request = self.upstream.build_request(
            "POST", endpoint.url + _PATHS[flight.endpoint], json=body, headers={"X-Request-Id": flight.id}
        )
        try:
            upstream = await self.upstream.send(request, stream=True)
        except httpx.HTTPError as error:
            raise _unreachable(endpoint, error) from None
        clock = TokenClock(flight, lambda: lease.progress(1))
        chunks = upstream.aiter_raw()
        frames: list[bytes] = []
        try:
            if upstream.status_code != 200:
                self._check_status(endpoint, "decode", upstream.status_code, await upstream.aread())
            if parsed.stream:
                # The first bytes come before the client sees any: a failure until then can still be retried.
                first = await chunks.__anext__()
            else:
                # Nothing reaches the client before the end: a failure anywhere can still be retried.
                async for chunk in chunks:
                    frames += [frame for frame, _ in clock.feed(chunk, time.perf_counter())]
        except StopAsyncIteration:
            await upstream.aclose()
            raise UpstreamFailure("stream_broken", f"{endpoint.worker} closed the stream at once") from None
        except httpx.HTTPError as error:
            await upstream.aclose()
            raise _unreachable(endpoint, error, "stream_broken") from None
        except BaseException:
            await upstream.aclose()
            raise
        if not parsed.stream:
            await upstream.aclose()
            clock.close()
            if clock.failed:
                raise UpstreamFailure("stream_broken", f"{endpoint.worker} sent an error event")
            self._ended(endpoint, flight, None)
            return JSONResponse(assemble(frames, chat=flight.endpoint == "chat"), headers=headers)
        return _Relay(self, endpoint, parsed, flight, clock, upstream, chunks, first, headers)

    def _ended(self, endpoint: Endpoint, flight: Flight, failure: str | None) -> None:
        """A worker's stream ended: whole (failure None), cut by the worker, or left by the client ("cancelled")."""
        if failure is None:
            self.balancer.success(endpoint)
            self.metrics.upstream.labels(endpoint.worker, "decode", "ok").inc()
        elif failure != "cancelled":
            self._failed(endpoint, "decode", UpstreamFailure("stream_broken", failure))
            self.metrics.errors.labels(flight.service, flight.pool, "stream_broken").inc()


class _Relay(StreamingResponse):
    """Streams a worker's SSE answer to the client, timing tokens and closing the worker's stream whatever happens."""

    def __init__(
        self, router: Router, endpoint: Endpoint, parsed: Parsed, flight: Flight, clock: TokenClock,
        upstream: httpx.Response, chunks: AsyncIterator[bytes], first: bytes, headers: dict[str, str],
    ) -> None:  # fmt: skip
        super().__init__(self._frames(), media_type="text/event-stream", headers=headers)
        self.router, self.endpoint, self.parsed, self.flight = router, endpoint, parsed, flight
        self.clock, self.upstream, self.chunks, self.first = clock, upstream, chunks, first
        self.status = "cancelled"
        self.on_end: Callable[[str], None] | None = None

    async def _frames(self) -> AsyncIterator[bytes]:
        clock, drop_usage = self.clock, not self.parsed.include_usage
        chunk: bytes | None = self.first
        try:
            while chunk is not None:
                frames = clock.feed(chunk, time.perf_counter())
                out = b"".join(frame for frame, usage_only in frames if not (usage_only and drop_usage))
                if out:
                    yield out
                try:
                    chunk = await self.chunks.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except httpx.HTTPError as error:
            self.status = "error"
            self.router._ended(self.endpoint, self.flight, f"{error or type(error).__name__}")
            message = {"message": f"The worker serving this request failed mid-stream ({self.endpoint.worker}).",
                       "type": "server_error", "param": None, "code": "upstream_stream_error"}  # fmt: skip
            yield b"data: " + json.dumps({"error": message}).encode() + b"\n\n"
            return
        if clock.pending:  # a last frame without its blank line
            yield clock.pending
        clock.close()
        self.status = "error" if clock.failed else "ok"
        if not clock.failed:
            self.router._ended(self.endpoint, self.flight, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()
            if self.on_end is not None:
                self.on_end(self.status)
