"""Checks of the sampling settings every generating backend and the LLM policy accept (one wording for all)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tomarena.errors import ConfigError


def check_top_p(top_p: Any) -> Any:
    """`top_p`, or a one-line ConfigError unless 0 < top_p <= 1."""
    if not (isinstance(top_p, int | float) and not isinstance(top_p, bool) and np.isfinite(top_p) and 0 < top_p <= 1):
        raise ConfigError(f"top_p must be a number in (0, 1], got {top_p!r}")
    return top_p


def check_top_k(top_k: Any) -> Any:
    """`top_k`, or a one-line ConfigError unless it is a whole number >= 0 (0 = off)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ConfigError(f"top_k must be a whole number >= 0 (0 = off), got {top_k!r}")
    return top_k


def check_repetition_penalty(repetition_penalty: Any) -> Any:
    """`repetition_penalty`, or a one-line ConfigError unless it is a finite number > 0 (1 = off)."""
    if not (isinstance(repetition_penalty, int | float) and not isinstance(repetition_penalty, bool)
            and np.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise ConfigError(f"repetition_penalty must be a finite number > 0 (1 = off), got {repetition_penalty!r}")
    return repetition_penalty


def check_sampling(top_p: float, top_k: int, repetition_penalty: float) -> None:
    """Raise a one-line ConfigError unless 0 < top_p <= 1, top_k >= 0 (0 = off) and repetition_penalty > 0."""
    check_top_p(top_p)
    check_top_k(top_k)
    check_repetition_penalty(repetition_penalty)
