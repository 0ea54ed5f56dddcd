"""Signatures on control-plane → agent calls: HMAC-SHA256 over the timestamp, generation, method, path and body.

Both the control plane and the node agents import this module (the dependency rule lets each import
`profiler` and nothing of the other), so the two sides cannot drift apart.

The key is the SHA-256 digest of the node's token: the agent holds the token, the control plane
stores only its digest, and neither side keeps another secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

TIMESTAMP_HEADER = "X-Cleave-Timestamp"
GENERATION_HEADER = "X-Cleave-Generation"
SIGNATURE_HEADER = "X-Cleave-Signature"
# A signed call older (or further in the future) than this is refused, whatever its signature.
MAX_CLOCK_SKEW_S = 300.0


class SignatureError(ValueError):
    """A call whose signature is missing, malformed, wrong, or outside the clock window."""


@dataclass(frozen=True)
class SignedHeaders:
    timestamp: str
    generation: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {TIMESTAMP_HEADER: self.timestamp, GENERATION_HEADER: self.generation, SIGNATURE_HEADER: self.signature}


def signing_key(node_token: str) -> bytes:
    """The HMAC key of a node: the SHA-256 digest of its token, as the control plane stores it (hex)."""
    return hashlib.sha256(node_token.encode()).hexdigest().encode()


def _message(timestamp: str, generation: str, method: str, path: str, body: bytes) -> bytes:
    return b"\n".join((timestamp.encode(), generation.encode(), method.upper().encode(), path.encode(), body))


def sign(key: bytes, *, method: str, path: str, body: bytes, generation: int, now: float) -> SignedHeaders:
    """Headers that authenticate one call."""
    timestamp = f"{now:.6f}"
    digest = hmac.new(key, _message(timestamp, str(generation), method, path, body), hashlib.sha256).hexdigest()
    return SignedHeaders(timestamp=timestamp, generation=str(generation), signature=digest)


def verify(key: bytes, headers: dict[str, str], *, method: str, path: str, body: bytes, now: float) -> int:
    """Check a call's signature and clock window; return the generation it carries.

    `headers` maps header names (any case) to values. Raises SignatureError naming what is wrong.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in (TIMESTAMP_HEADER, GENERATION_HEADER, SIGNATURE_HEADER) if name.lower() not in lowered]
    if missing:
        raise SignatureError(f"unsigned call: missing {', '.join(missing)}")
    timestamp = lowered[TIMESTAMP_HEADER.lower()]
    generation = lowered[GENERATION_HEADER.lower()]
    try:
        sent_at = float(timestamp)
        generation_number = int(generation)
    except ValueError:
        raise SignatureError("malformed timestamp or generation header") from None
    if abs(now - sent_at) > MAX_CLOCK_SKEW_S:
        raise SignatureError(f"timestamp outside the {MAX_CLOCK_SKEW_S:.0f} s window (clock skew or a replay)")
    expected = hmac.new(key, _message(timestamp, generation, method, path, body), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, lowered[SIGNATURE_HEADER.lower()]):
        raise SignatureError("bad signature")
    return generation_number
