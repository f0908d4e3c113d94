"""Shared-prefix helpers used by both inference (agents/hf_backend.py: prefix-KV reuse when scoring) and training
(training/model.py: prompts that share a prefix forward it once)."""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token rows."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
