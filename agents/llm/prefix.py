"""Shared-prefix planning, pure Python over token rows, imported by inference (agents/llm/hf_backend.py: which rows are
forwarded together after one cached prefix) and by training (training/model.py: which KL prompts forward their
common prefix once). Forwarding a shared prefix once and only the suffixes per row is what both save; these
functions decide where that pays off by counting forwarded tokens."""

from __future__ import annotations

from collections.abc import Sequence

Row = tuple[int, ...]

MIN_PREFIX = 8  # shorter shared prefixes are not worth a separate forward


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token rows."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _batch_cost(n: int, prefix: int, width: int) -> int:
    """Tokens forwarded for `n` rows of at most `width` tokens sharing `prefix` (counted once if long enough)."""
    prefix = prefix if prefix >= MIN_PREFIX else 0
    return prefix + n * (width - prefix)


def plan_batches(order: Sequence[Row], needs: Sequence[int], batch_size: int, reuse: bool = True) -> list[list[Row]]:
    """Cut sorted rows (each needing its last `need` positions) into batches of at most `batch_size`, greedily: a
    row joins the open batch when the batch still shares at least half of the row as prefix (long prefixes are what
    later calls reuse) and that costs fewer forwarded tokens (shared prefix once + padded suffixes) than starting a
    batch of its own. Without `reuse`, plain consecutive batches."""
    if not reuse:
        return [list(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    batches: list[list[Row]] = []
    cur: list[Row] = []
    pre = width = 0  # shared prefix length of `cur`, longest row of `cur`
    for row, need in zip(order, needs, strict=True):
        if cur and len(cur) < batch_size:
            p2 = min(pre, common_prefix(cur[0], row), len(row) - need)
            w2 = max(width, len(row))
            if 2 * p2 >= len(row) and _batch_cost(len(cur) + 1, p2, w2) <= _batch_cost(len(cur), pre, width) + len(row):
                cur.append(row)
                pre, width = p2, w2
                continue
        if cur:
            batches.append(cur)
        cur, pre, width = [row], len(row) - need, len(row)
    if cur:
        batches.append(cur)
    return batches


def shared_prefix(rows: Sequence[Row], needs: Sequence[int]) -> int:
    """Tokens every row of a batch shares before its needed positions (0 when shorter than MIN_PREFIX)."""
    first, n = rows[0], min(len(r) - k for r, k in zip(rows, needs))
    for r in rows[1:]:
        n = min(n, common_prefix(first, r))
    return n if n >= MIN_PREFIX else 0


def group_by_prefix(rows: Sequence[Sequence[int]]) -> list[tuple[int, list[int]]]:
    """Partition row indices into (prefix length, members): rows sorted, and a row joins the previous group when
    forwarding the group's common prefix once plus every (left-padded) suffix costs fewer tokens than forwarding the
    row on its own. Prefix length 0 means an ordinary padded batch."""
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    groups: list[tuple[int, list[int]]] = []

    def cost(plen: int, members: list[int]) -> int:
        return plen + len(members) * max(len(rows[m]) - plen for m in members)

    for i in order:
        ids = rows[i]
        if groups:
            plen, members = groups[-1]
            shared = min(common_prefix(rows[members[0]], ids), plen, len(ids) - 1)  # singleton: len - 1
            merged = [*members, i]
            if shared > 0 and cost(shared, merged) < cost(plen, members) + len(ids):
                groups[-1] = (shared, merged)
                continue
        groups.append((len(ids) - 1, [i]))
    return [(plen if len(m) > 1 else 0, m) for plen, m in groups]
