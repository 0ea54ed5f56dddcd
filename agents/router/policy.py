"""Who gets in and where they go: the request as the router reads it, and the worker that takes it.

Admission: ``authenticate`` checks the client's key against the service's key digests, ``read_body``
and ``parse_body`` read the body (model, prompt, max_tokens, stream), each refusal an ApiError in
OpenAI's status and error shape, naming the field.

Worker choice: weighted least outstanding work, with prefix affinity.

A worker's load is the tokens it still owes the router's requests (prompt tokens for a prefill leg,
prompt and answer tokens for a worker that prefills and decodes, answer tokens for a decode leg)
divided by its weight, so a worker of weight 2 carries twice the work of one of weight 1 before it
stops being the first choice. Streamed tokens are paid off as they arrive.

Requests that share a prompt prefix (the hash of their first PREFIX_WORDS words, as Mooncake's
``hash_ids`` hash 512-token blocks) go to the worker that last served that prefix, where its KV is
likely still cached, unless that worker's load is more than AFFINITY_LOAD_FACTOR times the pool's
mean: a hot prefix must not pile onto one worker. Workers whose breaker is open are skipped.

State (loads, breakers, the affinity map) is kept by worker URL, so it survives plan swaps.

What the policy reads of a request, its prompt's length and prefix, is counted as the simulated
engine counts tokens (``read_prompt``, ``read_messages``): whitespace-separated words, or token ids.
For a real engine that is an estimate, good enough to weigh work; the engine's own ``usage`` is what
the request's record keeps.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.router.breaker import BreakerState, CircuitBreaker
from agents.router.plan import Endpoint, RoutingPlan
from profiler import catalog
from profiler.errors import ProfilerError

PREFIX_WORDS = 512
# Shorter prompts share too little to be worth steering.
MIN_PREFIX_WORDS = 32
AFFINITY_LOAD_FACTOR = 1.5
AFFINITY_ENTRIES = 65_536
# What a chat template adds per message (its role markers), about.
CHAT_TOKENS_PER_MESSAGE = 4


class ApiError(Exception):
    """An answer in OpenAI's error shape, so OpenAI's clients raise what they raise against OpenAI."""

    def __init__(
        self, status: int, message: str, *, kind: str, error_type: str = "invalid_request_error",
        param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind, self.error_type = status, message, kind, error_type
        self.param, self.code, self.headers = param, code, headers

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI answers with."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class PromptError(ValueError):
    """A prompt or messages field of the wrong shape; ``param`` names it as OpenAI does."""

    def __init__(self, param: str, message: str, code: str = "invalid_type") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(frozen=True)
class PromptShape:
    """A prompt's length in tokens (estimated) and its affinity key."""

    tokens: int
    prefix: bytes | None


def _is_token_ids(value: object) -> bool:
    return isinstance(value, list) and all(type(item) is int for item in value)


def read_prompt(prompt: object) -> PromptShape:
    """A completions ``prompt``: a string, token ids, or a one-element list of either."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        words: list[str] | list[int] = prompt.split()
    elif _is_token_ids(prompt):
        words = prompt  # type: ignore[assignment]
    elif prompt is None:
        raise PromptError("prompt", "prompt is required", "missing_required_parameter")
    else:
        raise PromptError(
            "prompt", "prompt must be a string, a list of token ids, or a one-element list of either"
        )
    if not words:
        raise PromptError("prompt", "The prompt cannot be empty.", "invalid_value")
    return PromptShape(len(words), prefix_key(words))


def read_messages(messages: object) -> PromptShape:
    """A chat ``messages`` list: its words plus the template's tokens per message."""
    if messages is None:
        raise PromptError("messages", "messages is required", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise PromptError("messages", "messages must be a non-empty list")
    words: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise PromptError(where, f"{where} must be an object with a string role")
        content = message.get("content")
        if isinstance(content, str):
            words += content.split()
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    words += part["text"].split()
        elif content is not None:
            raise PromptError(f"{where}.content", f"{where}.content must be a string or a list of parts")
    return PromptShape(len(words) + CHAT_TOKENS_PER_MESSAGE * len(messages), prefix_key(words))


def prefix_key(words: Sequence[str] | Sequence[int]) -> bytes | None:
    """The affinity key of a prompt given as words (or token ids): a hash of its first block."""
    if len(words) < MIN_PREFIX_WORDS:
        return None
    head = " ".join(str(word) for word in words[:PREFIX_WORDS])
    return hashlib.blake2b(head.encode(), digest_size=12).digest()


@dataclass
class WorkerLoad:
    """What the router has sent one worker and not yet seen finish."""

    url: str
    worker: str
    breaker: CircuitBreaker
    outstanding_tokens: int = 0
    in_flight: int = 0


@dataclass
class Lease:
    """A request's share of a worker's load; paid off as tokens arrive, released at the end."""

    load: WorkerLoad
    tokens: int
    released: bool = field(default=False)

    def grow(self, tokens: int) -> None:
        """Add work to the lease (a decode worker that will also prefill)."""
        if not self.released:
            self.tokens += tokens
            self.load.outstanding_tokens += tokens

    def progress(self, tokens: int) -> None:
        paid = min(tokens, self.tokens)
        if paid > 0 and not self.released:
            self.tokens -= paid
            self.load.outstanding_tokens -= paid

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.load.outstanding_tokens -= self.tokens
            self.load.in_flight -= 1
            self.tokens = 0


class Balancer:
    """Chooses workers and keeps their loads, breakers and the prefix affinity map."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cool_off_s: float = 5.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cool_off_s = cool_off_s
        self.loads: dict[str, WorkerLoad] = {}
        self._affinity: OrderedDict[tuple[str, bytes], str] = OrderedDict()
        self._rng = rng or random.Random()
        self._clock = clock
        self.affinity_hits = 0

    def load_of(self, endpoint: Endpoint) -> WorkerLoad:
        """The load record of a worker, made on first sight."""
        load = self.loads.get(endpoint.url)
        if load is None:
            breaker = (
                CircuitBreaker(self.failure_threshold, self.cool_off_s, self._clock)
                if self._clock is not None
                else CircuitBreaker(self.failure_threshold, self.cool_off_s)
            )
            load = self.loads[endpoint.url] = WorkerLoad(endpoint.url, endpoint.worker, breaker)
        return load

    def choose(
        self,
        pool: str,
        candidates: Sequence[Endpoint],
        work_tokens: int,
        *,
        prefix: bytes | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> tuple[Endpoint, Lease] | None:
        """The worker for ``work_tokens`` more tokens, leased; None when no worker can take it."""
        usable: list[tuple[float, Endpoint, WorkerLoad]] = []
        for endpoint in candidates:
            if endpoint.url in exclude:
                continue
            load = self.load_of(endpoint)
            if not load.breaker.available():
                continue
            usable.append((load.outstanding_tokens, endpoint, load))
        if not usable:
            return None
        # Weight 0 takes nothing (a drained canary), unless every usable worker has weight 0.
        scored = [
            (tokens / endpoint.weight, endpoint, load)
            for tokens, endpoint, load in usable
            if endpoint.weight > 0
        ] or [(float(tokens), endpoint, load) for tokens, endpoint, load in usable]
        chosen = self._affine(pool, prefix, scored) if prefix is not None else None
        if chosen is None:
            best = min(score for score, _, _ in scored)
            ties = [item for item in scored if item[0] == best]
            chosen = ties[0] if len(ties) == 1 else self._rng.choice(ties)
        _, endpoint, load = chosen
        if not load.breaker.acquire():  # pragma: no cover - available() said yes a moment ago
            return None
        if prefix is not None:
            self._remember(pool, prefix, endpoint.url)
        load.outstanding_tokens += work_tokens
        load.in_flight += 1
        return endpoint, Lease(load, work_tokens)

    def _affine(
        self, pool: str, prefix: bytes, scored: list[tuple[float, Endpoint, WorkerLoad]]
    ) -> tuple[float, Endpoint, WorkerLoad] | None:
        url = self._affinity.get((pool, prefix))
        if url is None:
            return None
        mean = sum(score for score, _, _ in scored) / len(scored)
        for item in scored:
            if item[1].url == url:
                if item[0] <= AFFINITY_LOAD_FACTOR * mean or item[0] == 0:
                    self.affinity_hits += 1
                    return item
                return None
        return None

    def _remember(self, pool: str, prefix: bytes, url: str) -> None:
        key = (pool, prefix)
        self._affinity[key] = url
        self._affinity.move_to_end(key)
        if len(self._affinity) > AFFINITY_ENTRIES:
            self._affinity.popitem(last=False)

    def success(self, endpoint: Endpoint) -> None:
        self.load_of(endpoint).breaker.record_success()

    def failure(self, endpoint: Endpoint) -> None:
        self.load_of(endpoint).breaker.record_failure()

    def breaker_states(self) -> dict[str, BreakerState]:
        """Each known worker's breaker state, by worker name."""
        return {load.worker: load.breaker.state for load in self.loads.values()}


@dataclass(frozen=True)
class Parsed:
    """What the router reads of a request body."""

    body: dict[str, Any]
    prompt: PromptShape
    max_tokens: int | None
    stream: bool
    include_usage: bool


def parse_body(raw: bytes, *, chat: bool, plan: RoutingPlan) -> Parsed:
    """Validate a completions or chat body against the plan's model; ApiError as OpenAI answers."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                       "aren't using your HTTP library correctly.)", kind="bad_request") from None  # fmt: skip
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", kind="bad_request")
    model = body.get("model")
    if not model:
        raise ApiError(400, "you must provide a model parameter", kind="bad_request", param="model")
    if model != plan.model:
        raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                       kind="not_found", code="model_not_found")  # fmt: skip
    try:
        prompt = read_messages(body.get("messages")) if chat else read_prompt(body.get("prompt"))
    except PromptError as error:
        raise ApiError(400, str(error), kind="bad_request", param=error.param, code=error.code) from None
    param = (
        "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
    )
    max_tokens = body.get(param)
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ApiError(400, f"{param} must be an integer >= 1, got {max_tokens!r}", kind="bad_request",
                       param=param, code="invalid_value")  # fmt: skip
    stream, options = body.get("stream") or False, body.get("stream_options") or {}
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be a boolean, got {stream!r}", kind="bad_request", param="stream")
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", kind="bad_request", param="stream_options")
    return Parsed(body, prompt, max_tokens, stream, bool(options.get("include_usage")))


def context_limit(model: str) -> int | None:
    """The catalog model's context length; None for a model the catalog does not know."""
    try:
        return catalog.model(model).max_context
    except ProfilerError:
        return None


def _mask(key: str) -> str:
    return f"{key[:10]}***{key[-4:]}" if len(key) > 20 else "***"


def authenticate(authorization: str, plan: RoutingPlan, *, required: bool) -> str:
    """The client's label (its ``sk-clv-<prefix>-...`` key's prefix); ApiError 401 for a missing or unknown key."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    label = key.split("-")[2] if key.startswith("sk-clv-") and key.count("-") >= 3 else ""
    if not required:
        return label
    if not key:
        raise ApiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", kind="auth")  # fmt: skip
    if plan.api_key_digests is None:
        raise ApiError(503, "The router has not loaded the service's API keys yet; retry shortly.",
                       kind="no_keys", error_type="server_error", headers={"Retry-After": "1"})  # fmt: skip
    if hashlib.sha256(key.encode()).hexdigest() not in plan.api_key_digests:
        raise ApiError(401, f"Incorrect API key provided: {_mask(key)}.", kind="auth", code="invalid_api_key")
    return label


# Far above any prompt a model's context holds (a 128k-token prompt is about 1 MiB of text).
MAX_BODY_BYTES = 32 * 2**20


async def read_body(chunks: AsyncIterator[bytes], content_length: str) -> bytes:
    """A request body, or a 413 past MAX_BODY_BYTES (before reading it, where its length is given)."""
    too_big = ApiError(413, f"The request body is over {MAX_BODY_BYTES // 2**20} MiB.", kind="bad_request",
                       code="request_too_large")  # fmt: skip
    if content_length.isdigit() and int(content_length) > MAX_BODY_BYTES:
        raise too_big
    parts, size = [], 0
    async for part in chunks:
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise too_big
        parts.append(part)
    return b"".join(parts)
