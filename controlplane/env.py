"""Strict readers for settings from environment variables.

Each helper raises ImproperlyConfigured naming the variable and what is wrong, so a bad value
stops the process at start-up instead of surfacing later as a confusing failure. A variable
`X_FILE` may name a file holding the value of `X` (for secrets mounted by an orchestrator).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str | None = None) -> str | None:
    """The raw value of `name`, or of the file named by `name_FILE`, or `default`."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name!r}: {exc.strerror}") from exc
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = envstr(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: {value!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    value = envstr(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: {value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: {number} is below the minimum of {minimum}")
    return number


def envfloat(name: str, default: float, *, minimum: float | None = None) -> float:
    value = envstr(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: {value!r} is not a number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: {number} is below the minimum of {minimum}")
    return number


def envlist(name: str, default: list[str]) -> list[str]:
    value = envstr(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def envurl(name: str, default: str, *, schemes: set[str]) -> str:
    """A URL whose scheme is one of `schemes`."""
    value = envstr(name, default) or default
    scheme = urlparse(value).scheme
    if not scheme:
        # The value is not echoed: a URL may carry a password.
        raise ImproperlyConfigured(f"{name}: not a URL (expected one of: {', '.join(sorted(schemes))}://...)")
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name}: scheme {scheme!r} is not supported (expected one of: {', '.join(sorted(schemes))})"
        )
    return value
