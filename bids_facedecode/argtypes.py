"""argparse value types shared by every command of the package (checked numbers)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _number(text: str, cast: Callable[[str], float], ok: Callable[[float], bool], what: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A number > 0."""
    return _number(text, float, lambda v: v > 0, "a positive number")


def nonneg_float(text: str) -> float:
    """A number >= 0."""
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def probability(text: str) -> float:
    """A number in the open interval (0, 1)."""
    return _number(text, float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")
