"""How API token secrets look and how they are hashed. Pure functions, no database."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "clv_"


def token_digest(raw: str) -> str:
    """SHA-256 of the whole token. Tokens carry 256 random bits, so a fast hash is enough (no salt needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token_secret() -> tuple[str, str]:
    """A fresh token and its public prefix: ``clv_<prefix>_<secret>``."""
    prefix = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return raw, prefix
