"""Argument types shared by the agents' command lines (node agent, sim engine, router, load generator)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer above zero; argparse names the flag when it is not."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A number above zero; argparse names the flag when it is not."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
