"""The OpenAI shapes the simulated engine reads and writes, and its stand-in tokenizer.

Tokens: a text's token count is its number of whitespace-separated words; a completions ``prompt``
may also be a list of token ids (counted), or a one-element list of either. A chat prompt counts the
words of every message's text plus CHAT_TOKENS_PER_MESSAGE for each message (the chat template's
role markers). Output: exactly ``max_tokens`` tokens (``max_completion_tokens`` first, for chat),
16 when absent, for chat too; each is the word ``tok<i>`` after a space, so an answer's word count
is its token count. Sampling parameters are accepted and ignored; there is no stop or EOS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_TOKENS = 16
CHAT_TOKENS_PER_MESSAGE = 4
# A KV cache block, as vLLM's default; the sim hands out block ids for kv_transfer_params only.
BLOCK_TOKENS = 16


class ApiError(Exception):
    """An OpenAI-shaped error: the HTTP status and the body's message, param and code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class GenerationRequest:
    """What a completions or chat request asks of the engine."""

    chat: bool
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool
    kv_transfer_params: Mapping[str, Any] | None


def count_words(text: str) -> int:
    """The stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def token_text(index: int) -> str:
    """The text of the ``index``-th generated token."""
    return f" tok{index}"


def decode_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def parse_generation(body: Mapping[str, Any], *, chat: bool, served_model: str) -> GenerationRequest:
    """Validate a completions (``chat=False``) or chat completions body; ApiError names the field."""
    model = body.get("model")
    if model is not None and model != served_model:
        raise ApiError(404, f"The model `{model}` does not exist.", param="model", code="model_not_found")
    prompt_tokens = _chat_tokens(body.get("messages")) if chat else _prompt_tokens(body.get("prompt"))
    max_tokens = body.get("max_completion_tokens") if chat else None
    param = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, param = body.get("max_tokens"), "max_tokens"
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not _is_int(max_tokens) or max_tokens < 1:
        raise ApiError(
            400, f"{param} must be an integer >= 1, got {max_tokens!r}", param=param, code="invalid_value"
        )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be a boolean, got {stream!r}", param="stream", code="invalid_type")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options", code="invalid_type")
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise ApiError(400, f"the simulated engine generates one choice; n must be 1, got {n!r}", param="n")
    params = body.get("kv_transfer_params")
    if params is not None and not isinstance(params, dict):
        raise ApiError(
            400, "kv_transfer_params must be an object", param="kv_transfer_params", code="invalid_type"
        )
    return GenerationRequest(
        chat=chat,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        kv_transfer_params=params,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt_tokens(prompt: object) -> int:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        tokens = count_words(prompt)
    elif isinstance(prompt, list) and all(_is_int(item) for item in prompt):
        tokens = len(prompt)
    elif prompt is None:
        raise ApiError(400, "prompt is required", param="prompt", code="missing_required_parameter")
    else:
        raise ApiError(
            400,
            "prompt must be a string, a list of token ids, or a one-element list of either "
            "(the simulated engine takes one prompt per request)",
            param="prompt",
            code="invalid_type",
        )
    if tokens == 0:
        raise ApiError(400, "The prompt cannot be empty.", param="prompt", code="invalid_value")
    return tokens


def _chat_tokens(messages: object) -> int:
    if messages is None:
        raise ApiError(400, "messages is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages", code="invalid_type")
    tokens = 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(
                400, f"{where} must be an object with a string role", param=where, code="invalid_type"
            )
        content = message.get("content")
        if isinstance(content, str):
            words = count_words(content)
        elif isinstance(content, list):
            words = sum(
                count_words(part["text"])
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
        elif content is None:
            words = 0
        else:
            raise ApiError(
                400,
                f"{where}.content must be a string or a list of parts",
                param=f"{where}.content",
                code="invalid_type",
            )
        tokens += words + CHAT_TOKENS_PER_MESSAGE
    return tokens


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The ``usage`` object. No prefix cache in the sim: ``prompt_tokens_details`` stays null."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": None,
    }


def full_text(tokens: int) -> str:
    return "".join(token_text(index) for index in range(tokens))


def completion_body(
    request_id: str, created: int, model: str, chat: bool, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """A non-streamed completions or chat completions response."""
    text = full_text(completion_tokens)
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": "length",
            "stop_reason": None,
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length", "stop_reason": None}
    return {
        "id": request_id,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(prompt_tokens, completion_tokens),
    }


class ChunkWriter:
    """The SSE frames of one streamed response, built from fixed text around each token."""

    def __init__(self, request_id: str, created: int, model: str, chat: bool) -> None:
        self.chat = chat
        head = {
            "id": request_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        if chat:
            self._before = self._head + ',"choices":[{"index":0,"delta":{"content":"'
            self._after = '"},"logprobs":null,"finish_reason":%s}]}\n\n'
        else:
            self._before = self._head + ',"choices":[{"index":0,"text":"'
            self._after = '","logprobs":null,"finish_reason":%s,"stop_reason":null}]}\n\n'

    def opening(self) -> str:
        """The first chat chunk, which names the role; nothing for completions."""
        if not self.chat:
            return ""
        return (
            "data: " + self._head
            + ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
            '"finish_reason":null}]}\n\n'
        )  # fmt: skip

    def token(self, index: int, last: bool) -> str:
        # Token texts hold no character JSON escapes, so they go in as they are.
        return "data: " + self._before + token_text(index) + self._after % ('"length"' if last else "null")

    def usage(self, prompt_tokens: int, completion_tokens: int) -> str:
        body = json.dumps(
            {"choices": [], "usage": usage(prompt_tokens, completion_tokens)}, separators=(",", ":")
        )
        return "data: " + self._head + "," + body[1:] + "\n\n"

    @staticmethod
    def done() -> str:
        return "data: [DONE]\n\n"
