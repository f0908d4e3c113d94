"""Replicator dynamics on many cross-play matrices at once (a run of 144 games has 144 of them): the dynamics of
`tournament.replicator`, iterated for every game of the same size together, one array operation per step for all of
them instead of one small loop per game. numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tomarena.errors import ConfigError


def replicator_many(matrices: Mapping[str, Any], *, steps: int = 5000) -> dict[str, dict[str, float]]:
    """Per game, the final population shares of discrete-time replicator dynamics from the uniform mix on its
    cross-play matrix (payoffs of each game shifted so that its smallest is 1), as `tournament.replicator` gives
    them; every matrix must be complete and square over >= 2 strategies (ConfigError otherwise)."""
    groups: dict[int, list[tuple[str, list[str], np.ndarray]]] = {}
    for game, m in matrices.items():
        labels = sorted(set(m.index) & set(m.columns))
        a = m.loc[labels, labels].to_numpy(dtype=float)
        if len(labels) < 2 or not np.all(np.isfinite(a)):
            raise ConfigError(f"replicator dynamics of {game} need a complete square payoff matrix of >= 2 "
                              f"strategies; got strategies {labels} with missing pairs")
        groups.setdefault(len(labels), []).append((game, labels, a - a.min() + 1.0))
    out: dict[str, dict[str, float]] = {}
    for k, items in groups.items():
        stack = np.stack([a for _, _, a in items])
        x = np.full((len(items), k), 1.0 / k)
        for _ in range(steps):
            f = np.einsum("gij,gj->gi", stack, x)
            x = x * f / np.sum(x * f, axis=1, keepdims=True)
        for (game, labels, _), shares in zip(items, x, strict=True):
            out[game] = {lab: float(v) for lab, v in zip(labels, shares, strict=True)}
    return {game: out[game] for game in matrices}
