"""The profiler's one error hierarchy: every problem with input is a ProfilerError naming what is wrong."""

from __future__ import annotations


class ProfilerError(ValueError):
    """Base of every error the pure core raises for bad input."""


class UnknownTierError(ProfilerError):
    pass


class UnknownModelError(ProfilerError):
    pass


class ConfigurationError(ProfilerError):
    """A (model, tier, TP, dtype) combination that cannot run: TP does not divide the heads, it does not fit."""


class TraceError(ProfilerError):
    """A malformed trace: the message names the file, line and field, which are also kept as attributes."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field
