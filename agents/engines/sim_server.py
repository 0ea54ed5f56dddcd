"""The simulated engine's HTTP face: what vLLM's OpenAI server answers, over the sim scheduler.

Routes: ``POST /v1/completions`` and ``/v1/chat/completions`` (SSE when ``stream``), ``GET /v1/models``,
``GET /health`` and ``GET /metrics`` (vLLM's metric names, plus ``cleave_sim_*``). Disaggregation
follows vLLM's NixlConnector proxy protocol: a prefill worker asked with ``kv_transfer_params``
``do_remote_decode`` answers with the params a decode worker needs (its engine id, block ids, host,
port, TP size, and ``num_prompt_tokens`` for the sim's transfer time); a decode worker given params
with ``do_remote_prefill`` waits the transfer of those KV tokens over ``--kv-link`` instead of
prefilling, then decodes ``max_tokens`` tokens. A prefill worker always makes exactly one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from agents.engines.sim_protocol import (
    BLOCK_TOKENS,
    ApiError,
    ChunkWriter,
    GenerationRequest,
    completion_body,
    decode_json,
    parse_generation,
)
from agents.engines.sim_scheduler import (
    CapacityError,
    LatencyHistogram,
    SchedulerConfig,
    SimRequest,
    SimScheduler,
)
from profiler import catalog
from profiler.perfmodel import PerfModel


@dataclass(frozen=True)
class SimConfig:
    """One simulated worker: what it serves, on what hardware, how fast, and where it listens."""

    role: str
    model: str
    tier: str
    tp: int = 1
    dtype: str = "bf16"
    host: str = "127.0.0.1"
    port: int = 8000
    name: str = ""
    served_model_name: str = ""
    time_scale: float = 1.0
    kv_link: str = "nvlink"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    kv_capacity_tokens: int | None = None
    max_model_len: int | None = None

    @property
    def served(self) -> str:
        return self.served_model_name or self.model

    @property
    def engine_id(self) -> str:
        return self.name or f"sim-{self.port}"

    @property
    def context_limit(self) -> int:
        return self.max_model_len or catalog.model(self.model).max_context


class SimEngine:
    """The state behind one simulated worker's routes."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.perf = PerfModel.for_names(config.model, config.tier, config.tp, config.dtype)
        capacity = (
            self.perf.kv_capacity_tokens if config.kv_capacity_tokens is None else config.kv_capacity_tokens
        )
        self.scheduler = SimScheduler(
            self.perf,
            SchedulerConfig(
                kv_capacity_tokens=capacity,
                max_num_seqs=config.max_num_seqs,
                max_num_batched_tokens=config.max_num_batched_tokens,
                time_scale=config.time_scale,
                kv_link=config.kv_link,
            ),
        )
        self._next_block = 0
        self.started = int(time.time())

    def app(self) -> Starlette:
        """The Starlette application; its lifespan runs the scheduler's loop task."""

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            task = asyncio.create_task(self.scheduler.run(), name="sim-scheduler")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return Starlette(
            routes=[
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    # --- routes ---

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    async def models(self, request: Request) -> Response:
        served = self.config.served
        card = {
            "id": served,
            "object": "model",
            "created": self.started,
            "owned_by": "cleave-sim",
            "root": self.config.model,
            "parent": None,
            "max_model_len": self.config.context_limit,
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def metrics(self, request: Request) -> Response:
        return PlainTextResponse(render_metrics(self), media_type="text/plain; version=0.0.4; charset=utf-8")

    # --- generation ---

    async def _generate(self, http: Request, *, chat: bool) -> Response:
        config = self.config
        try:
            body = decode_json(await http.body())
            generation = parse_generation(body, chat=chat, served_model=config.served)
            sim_request, transfer_out = self._admit(generation)
        except ApiError as error:
            return JSONResponse(error.body(), status_code=error.status)
        prefix = "chatcmpl-" if chat else "cmpl-"
        request_id = prefix + (http.headers.get("x-request-id") or uuid.uuid4().hex)
        created = int(time.time())
        if generation.stream:
            writer = ChunkWriter(request_id, created, config.served, chat)
            return StreamingResponse(
                self._stream(sim_request, generation, writer), media_type="text/event-stream"
            )
        while not sim_request.finished:
            await sim_request.wakeup.wait()
            sim_request.wakeup.clear()
        answer = completion_body(
            request_id,
            created,
            config.served,
            generation.chat,
            sim_request.prompt_tokens,
            sim_request.generated,
        )
        if transfer_out is not None:
            answer["kv_transfer_params"] = transfer_out
        return JSONResponse(answer)

    def _admit(self, generation: GenerationRequest) -> tuple[SimRequest, dict[str, Any] | None]:
        config = self.config
        limit = config.context_limit
        asked = generation.prompt_tokens + generation.max_tokens
        if asked > limit:
            where = "messages" if generation.chat else "prompt"
            raise ApiError(
                400,
                f"This model's maximum context length is {limit} tokens. However, you requested {asked} "
                f"tokens ({generation.prompt_tokens} in the {where}, {generation.max_tokens} in the "
                "completion). Please reduce the length of the messages or completion.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        params = generation.kv_transfer_params or {}
        prompt_tokens, output_tokens = generation.prompt_tokens, generation.max_tokens
        remote_prefill, hold_kv_s, transfer_out = False, 0.0, None
        if config.role == "prefill":
            output_tokens = 1
            if params.get("do_remote_decode"):
                hold_kv_s = self.perf.kv_transfer_s(prompt_tokens, config.kv_link) * config.time_scale
                transfer_out = self._transfer_params(prompt_tokens)
        elif config.role == "decode" and params.get("do_remote_prefill"):
            remote_prefill = True
            given = params.get("num_prompt_tokens")
            if isinstance(given, int) and not isinstance(given, bool) and given > 0:
                prompt_tokens = given
        sim_request = SimRequest(
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            arrival_s=asyncio.get_running_loop().time(),
            remote_prefill=remote_prefill,
            hold_kv_s=hold_kv_s,
            notify_each_token=generation.stream,
        )
        try:
            self.scheduler.submit(sim_request)
        except CapacityError as error:
            raise ApiError(400, str(error), param="max_tokens", code="kv_capacity_exceeded") from None
        return sim_request, transfer_out

    def _transfer_params(self, prompt_tokens: int) -> dict[str, Any]:
        config = self.config
        blocks = math.ceil(prompt_tokens / BLOCK_TOKENS)
        first, self._next_block = self._next_block, (self._next_block + blocks) % 2**31
        return {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_engine_id": config.engine_id,
            "remote_block_ids": list(range(first, first + blocks)),
            "remote_host": config.host if config.host not in ("0.0.0.0", "::", "") else "127.0.0.1",
            "remote_port": config.port,
            "tp_size": config.tp,
            "num_prompt_tokens": prompt_tokens,
        }

    async def _stream(
        self, request: SimRequest, generation: GenerationRequest, writer: ChunkWriter
    ) -> AsyncIterator[str]:
        sent, total = 0, request.output_tokens
        try:
            opening = writer.opening()
            if opening:
                yield opening
            while True:
                await request.wakeup.wait()
                request.wakeup.clear()
                ready = request.generated
                parts = [writer.token(index, index == total - 1) for index in range(sent, ready)]
                sent = ready
                if request.finished:
                    if generation.include_usage:
                        parts.append(writer.usage(request.prompt_tokens, request.generated))
                    parts.append(writer.done())
                    yield "".join(parts)
                    return
                if parts:
                    yield "".join(parts)
        finally:
            # The client went away mid-stream: free its sequence slot and KV.
            self.scheduler.cancel(request)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, object]) -> str:
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items()) + "}"


def _histogram_lines(name: str, labels: Mapping[str, object], histogram: LatencyHistogram) -> list[str]:
    lines, cumulative = [], 0
    for bound, count in zip((*histogram.bounds, math.inf), histogram.counts, strict=True):
        cumulative += count
        le = "+Inf" if math.isinf(bound) else repr(float(bound))
        lines.append(f"{name}_bucket{_labels({**labels, 'le': le})} {float(cumulative)!r}")
    lines.append(f"{name}_sum{_labels(labels)} {histogram.total_s!r}")
    lines.append(f"{name}_count{_labels(labels)} {float(histogram.count)!r}")
    return lines


def render_metrics(engine: SimEngine) -> str:
    """The worker's Prometheus text: vLLM's names and labels, then the sim's own counters."""
    config, scheduler = engine.config, engine.scheduler
    stats = scheduler.stats
    base = {"model_name": config.served, "engine": "0"}
    prefill, decode = {**base, "phase": "prefill"}, {**base, "phase": "decode"}
    info = {
        **base,
        "engine_id": config.engine_id,
        "role": config.role,
        "model": config.model,
        "tier": config.tier,
        "tp": config.tp,
        "dtype": config.dtype,
        "time_scale": config.time_scale,
        "kv_link": config.kv_link,
        "kv_capacity_tokens": scheduler.config.kv_capacity_tokens,
    }
    # (family, type, help, [(labels, value)]); a counter's samples take the family name plus _total.
    families: list[tuple[str, str, str, list[tuple[Mapping[str, object], float]]]] = [
        ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
         [(base, scheduler.requests_running)]),
        ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
         [(base, scheduler.requests_waiting)]),
        ("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
         [(base, scheduler.kv_cache_usage)]),
        ("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", [(base, stats.prompt_tokens)]),
        ("vllm:generation_tokens", "counter", "Number of generation tokens processed.",
         [(base, stats.generation_tokens)]),
        ("vllm:request_success", "counter", "Count of successfully processed requests.",
         [({**base, "finished_reason": "length"}, stats.requests_finished)]),
        ("cleave_sim_busy_seconds", "counter", "Wall seconds the simulated GPUs spent in steps, by phase.",
         [(prefill, stats.prefill_busy_s), (decode, stats.decode_busy_s)]),
        ("cleave_sim_steps", "counter", "Steps that computed each phase (a mixed step counts in both).",
         [(prefill, stats.prefill_steps), (decode, stats.decode_steps)]),
        ("cleave_sim_step_tokens", "counter", "Prompt tokens computed (prefill), sequences stepped (decode).",
         [(prefill, stats.prefill_tokens), (decode, stats.decode_seqs)]),
        ("cleave_sim_decode_context_tokens", "counter", "Sum over decode steps of the batch's context tokens.",
         [(base, stats.decode_context_tokens)]),
        ("cleave_sim_info", "gauge", "The simulated worker's configuration.", [(info, 1)]),
    ]  # fmt: skip
    out: list[str] = []
    for name, kind, help_text, samples in families:
        sample_name = name + "_total" if kind == "counter" else name
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        out += [f"{sample_name}{_labels(labels)} {float(value)!r}" for labels, value in samples]
    for name, help_text, histogram in (
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", stats.ttft),
        ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", stats.itl),
    ):
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        out += _histogram_lines(name, base, histogram)
    return "\n".join(out) + "\n"


def serve(engine: SimEngine, *, log_level: str = "warning") -> None:
    """Run the worker under uvicorn until SIGINT or SIGTERM; in-flight requests finish first."""
    import uvicorn

    uvicorn.run(
        engine.app(),
        host=engine.config.host,
        port=engine.config.port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
