"""Request records: one per request the router answers, sent to the control plane in batches.

A Flight follows one request through the router (its workers, token counts, first and last token
times) and becomes its RequestRecord when the request ends. The router asks every worker for a
stream, whatever the client asked, so that each record has its TTFT and TPOT: a TokenClock reads the
stream's frames and times the tokens, and ``assemble`` makes the one answer a client that did not
stream is owed.

``POST /api/v1/traffic/records`` takes ``{"records": [...]}`` (at most 10,000) and stores each record
once by its id. The sender batches records in memory (``batch_records``, or whatever ``flush_s``
gathered), posts a batch, and when the control plane cannot take it (unreachable, a 5xx, a 429, a
refused token) spools it to disk and backs off; once a post succeeds again the spool is drained,
oldest first, before new batches go straight out again. A 400 means the records themselves are
malformed (a bug): the batch is logged and kept aside, never retried. Without a spool directory the
records wait in memory (bounded; the oldest are dropped beyond it, counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import httpx

from agents.router.metrics import RouterMetrics
from agents.router.spool import Spool

log = logging.getLogger("cleave.router.records")

MAX_BATCH = 10_000
MAX_BUFFER = 200_000
POST_TIMEOUT_S = 10.0
FINAL_POST_TIMEOUT_S = 3.0
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class RequestRecord:
    """What the control plane learns of one request (the fields of ``traffic/records``)."""

    id: str
    service: str
    arrival_at: float
    prompt_tokens: int
    output_tokens: int
    status: str
    endpoint: str
    client: str = ""
    max_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    prefill_worker: str = ""
    decode_worker: str = ""
    predicted_class: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record as the records endpoint takes it (absent values left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class Flight:
    """One request from its arrival to its record: what the router learns of it on the way."""

    service: str
    endpoint: str
    client: str
    arrival_at: float
    started: float  # perf_counter at arrival
    prompt_tokens: int
    max_tokens: int | None
    predicted_class: str
    stream: bool
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pool: str = "none"
    prefill_worker: str = ""
    decode_worker: str = ""
    first_token: float | None = None
    last_token: float | None = None
    output_tokens: int = 0
    cached_prompt_tokens: int | None = None
    finished: bool = False

    def take_usage(self, usage: object) -> None:
        """Token counts from an engine's ``usage`` object, where it gives them."""
        if not isinstance(usage, dict):
            return
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if type(prompt) is int and prompt > 0:
            self.prompt_tokens = prompt
        if type(completion) is int and completion >= 0:
            self.output_tokens = completion
        self.take_cached(usage)

    def take_cached(self, usage: object) -> None:
        """Cached prompt tokens (``usage.prompt_tokens_details.cached_tokens``), the most any leg reports."""
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if type(cached) is int and cached >= 0:
            self.cached_prompt_tokens = max(cached, self.cached_prompt_tokens or 0)

    def record(self, status: str, ended: float) -> RequestRecord:
        """The request's record, as it ended at ``ended`` (perf_counter)."""
        ttft = tpot = None
        if self.first_token is not None:
            ttft = self.first_token - self.started
            if self.last_token is not None and self.output_tokens > 1:
                tpot = (self.last_token - self.first_token) / (self.output_tokens - 1)
        cached = self.cached_prompt_tokens
        return RequestRecord(
            id=self.id,
            service=self.service,
            arrival_at=round(self.arrival_at, 6),
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            status=status,
            endpoint=self.endpoint,
            client=self.client[:100],
            max_tokens=self.max_tokens,
            cached_prompt_tokens=min(cached, self.prompt_tokens) if cached is not None else None,
            ttft_s=ttft,
            tpot_s=tpot,
            e2e_s=max(ended - self.started, 0.0),
            prefill_worker=self.prefill_worker[:200],
            decode_worker=self.decode_worker[:200],
            predicted_class=self.predicted_class,
        )


# A streamed frame that carries a token: non-empty completion text or chat content.
_TOKEN = re.compile(rb'"(?:text|content|reasoning_content)":\s*"(?!")')
_USAGE = re.compile(rb'"usage":\s*\{')
_NO_CHOICES = re.compile(rb'"choices":\s*\[\]')


class TokenClock:
    """Splits a worker's SSE stream into frames, times the tokens into the flight, reads the usage.

    ``feed`` returns the whole frames a chunk completes, each with whether it holds only the usage
    (the router asked for usage; a client that did not should not see that frame).
    """

    def __init__(self, flight: Flight, on_token: Callable[[], None]) -> None:
        self.flight, self.on_token = flight, on_token
        self.pending = b""
        self.tokens = 0
        self.usage_seen = False
        self.failed = False  # the worker sent an error event

    def feed(self, chunk: bytes, now: float) -> list[tuple[bytes, bool]]:
        self.pending += chunk
        frames: list[tuple[bytes, bool]] = []
        while (cut := self.pending.find(b"\n\n")) >= 0:
            frame, self.pending = self.pending[: cut + 2], self.pending[cut + 2 :]
            usage_only = False
            if _TOKEN.search(frame):
                self.tokens += 1
                self.on_token()
                if self.flight.first_token is None:
                    self.flight.first_token = now
                self.flight.last_token = now
            elif _USAGE.search(frame):
                self.usage_seen = True
                self.flight.take_usage(_payload(frame).get("usage"))
                usage_only = _NO_CHOICES.search(frame) is not None
            elif frame.startswith(b'data: {"error"'):
                self.failed = True
            frames.append((frame, usage_only))
        return frames

    def close(self) -> None:
        """The stream ended: token counts from the frames where the worker gave no usage."""
        if not self.usage_seen:
            self.flight.output_tokens = self.tokens


def _payload(frame: bytes) -> dict[str, Any]:
    try:
        value = json.loads(frame[frame.index(b"{") :])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _merge_logprobs(into: Any, part: Any) -> Any:
    if not isinstance(part, dict):
        return into
    if not isinstance(into, dict):
        return {key: list(value) if isinstance(value, list) else value for key, value in part.items()}
    for key, value in part.items():
        if isinstance(value, list) and isinstance(into.get(key), list):
            into[key] += value
        else:
            into[key] = value
    return into


def assemble(frames: Sequence[bytes], *, chat: bool) -> dict[str, Any]:
    """The non-streamed answer the frames of a stream add up to: text (or message and tool calls),
    logprobs, finish reason and usage per choice, as the engine would have answered without ``stream``."""
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for frame in frames:
        if not frame.startswith(b"data: {"):
            continue
        chunk = _payload(frame)
        head = head or chunk
        usage = chunk.get("usage") or usage
        for part in chunk.get("choices") or []:
            index = part.get("index", 0)
            choice = choices.setdefault(
                index, {"index": index, "logprobs": None, "finish_reason": None, "stop_reason": None}
            )
            if chat:
                message = choice.setdefault("message", {"role": "assistant", "content": None})
                delta = part.get("delta") or {}
                for key in ("content", "reasoning_content"):
                    if delta.get(key):
                        message[key] = (message.get(key) or "") + delta[key]
                for call in delta.get("tool_calls") or []:
                    calls = message.setdefault("tool_calls", [])
                    while len(calls) <= call.get("index", 0):
                        calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                    merged = calls[call.get("index", 0)]
                    merged["id"] = call.get("id") or merged["id"]
                    merged["type"] = call.get("type") or merged["type"]
                    function = call.get("function") or {}
                    merged["function"]["name"] += function.get("name") or ""
                    merged["function"]["arguments"] += function.get("arguments") or ""
            else:
                choice["text"] = choice.get("text", "") + (part.get("text") or "")
            choice["logprobs"] = _merge_logprobs(choice["logprobs"], part.get("logprobs"))
            for key in ("finish_reason", "stop_reason"):
                if part.get(key) is not None:
                    choice[key] = part[key]
    answer: dict[str, Any] = {
        "id": head.get("id"), "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created"), "model": head.get("model"),
        "choices": [choices[index] for index in sorted(choices)], "usage": usage,
    }  # fmt: skip
    if head.get("system_fingerprint") is not None:
        answer["system_fingerprint"] = head["system_fingerprint"]
    return answer


class Outcome(Enum):
    SENT = "sent"
    REFUSED = "refused"  # a 400: malformed records
    FAILED = "failed"  # try again later


class RecordSender:
    """Batches records and delivers them, spooling while the control plane is away."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None,
        control_plane: str | None,
        token: Callable[[], str | None],
        spool: Spool | None,
        metrics: RouterMetrics,
        batch_records: int = 500,
        flush_s: float = 2.0,
    ) -> None:
        self.client = client
        self.url = f"{control_plane.rstrip('/')}/api/v1/traffic/records" if control_plane else None
        self.token = token
        self.spool = spool
        self.metrics = metrics
        self.batch_records = max(1, min(batch_records, MAX_BATCH))
        self.flush_s = flush_s
        self._buffer: deque[dict[str, Any]] = deque()
        self._wakeup = asyncio.Event()
        self._retry_at = 0.0
        self._backoff_s = flush_s
        self._lock = asyncio.Lock()
        if self.url is None:
            log.warning("no --control-plane: request records are counted but not sent anywhere")

    def add(self, record: RequestRecord) -> None:
        """Queue a record; never blocks."""
        if self.url is None:
            return
        self._buffer.append(record.to_json())
        if len(self._buffer) > MAX_BUFFER:
            self._buffer.popleft()
            self.metrics.records.labels("dropped").inc()
        if len(self._buffer) >= self.batch_records:
            self._wakeup.set()

    @property
    def pending(self) -> int:
        """Records waiting in memory (not those in the spool)."""
        return len(self._buffer)

    async def run(self) -> None:
        """Flush every ``flush_s`` (or as soon as a batch is full) until cancelled."""
        if self.url is None:
            return
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.flush_s)
            self._wakeup.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one bad flush
                log.exception("flushing request records failed")

    async def flush(self, *, final: bool = False) -> None:
        """Send (or spool) what the buffer holds; then drain the spool when the control plane may be back.

        ``final`` (shutdown): one quick try to post, else everything goes to the spool; no draining.
        """
        async with self._lock:
            batches = -(-len(self._buffer) // self.batch_records)
            for _ in range(batches):
                batch = self._take()
                try:
                    delivered = await self._deliver(batch, final=final)
                except asyncio.CancelledError:
                    # Cancelled mid-delivery: the batch may or may not have been stored, so it is kept;
                    # sending it again stores nothing twice (records are idempotent by id).
                    self._buffer.extendleft(reversed(batch))
                    raise
                if not delivered:
                    break
            if (
                not final
                and self.spool is not None
                and len(self.spool)
                and time.monotonic() >= self._retry_at
            ):
                await self._drain()

    def _take(self) -> list[dict[str, Any]]:
        count = min(len(self._buffer), self.batch_records)
        return [self._buffer.popleft() for _ in range(count)]

    async def _deliver(self, batch: list[dict[str, Any]], *, final: bool) -> bool:
        """Post the batch, or keep it (spool, or memory); False when it went back to memory."""
        # While spooled records wait, new ones queue behind them rather than overtake them.
        if not (self.spool is not None and len(self.spool)) and time.monotonic() >= self._retry_at:
            outcome = await self._post(batch, timeout_s=FINAL_POST_TIMEOUT_S if final else POST_TIMEOUT_S)
            if outcome is Outcome.SENT:
                self._backoff_s = self.flush_s
                return True
            if outcome is Outcome.REFUSED:
                self._set_aside(batch)
                return True
            self._back_off()
        return await self._keep(batch)

    async def _keep(self, batch: list[dict[str, Any]]) -> bool:
        if self.spool is None:
            # No spool: the batch goes back to wait in memory, in front.
            self._buffer.extendleft(reversed(batch))
            while len(self._buffer) > MAX_BUFFER:
                self._buffer.pop()
                self.metrics.records.labels("dropped").inc()
            return False
        await asyncio.to_thread(self.spool.append, batch)
        self.metrics.records.labels("spooled").inc(len(batch))
        return True

    async def _drain(self) -> None:
        assert self.spool is not None
        while True:
            segment = await asyncio.to_thread(self.spool.oldest)
            if segment is None:
                return
            outcome = Outcome.SENT
            for start in range(0, len(segment.records), MAX_BATCH):
                outcome = await self._post(segment.records[start : start + MAX_BATCH])
                if outcome is not Outcome.SENT:
                    break
            if outcome is Outcome.SENT:
                await asyncio.to_thread(self.spool.acknowledge, segment)
                self._backoff_s = self.flush_s
            elif outcome is Outcome.REFUSED:
                where = await asyncio.to_thread(self.spool.reject, segment)
                log.error("the control plane refused spooled records as malformed; kept in %s", where)
            else:
                self._back_off()
                return

    async def _post(self, batch: list[dict[str, Any]], timeout_s: float = POST_TIMEOUT_S) -> Outcome:
        assert self.client is not None
        assert self.url is not None
        try:
            token = self.token()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await self.client.post(self.url, json={"records": batch}, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as error:
            log.warning("cannot send %d records: %s", len(batch), error or type(error).__name__)
            return Outcome.FAILED
        if response.is_success:
            self.metrics.records.labels("sent").inc(len(batch))
            return Outcome.SENT
        if response.status_code == 400:
            log.error(
                "the control plane refused %d records as malformed: %s", len(batch), response.text[:2000]
            )
            self.metrics.records.labels("rejected").inc(len(batch))
            return Outcome.REFUSED
        log.warning(
            "cannot send %d records: HTTP %d %s", len(batch), response.status_code, response.text[:200]
        )
        return Outcome.FAILED

    def _set_aside(self, batch: list[dict[str, Any]]) -> None:
        if self.spool is not None:
            log.error("malformed records kept in %s", self.spool.reject_batch(batch))

    def _back_off(self) -> None:
        self._retry_at = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, max(MAX_BACKOFF_S, self.flush_s))

    async def close(self) -> None:
        """On shutdown: post what is buffered (one quick try), else spool it."""
        if self.url is None:
            return
        await self.flush(final=True)
        if self._buffer:
            log.error("shutdown: %d request records lost (no spool directory)", len(self._buffer))
