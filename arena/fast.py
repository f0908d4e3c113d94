"""Vectorised play of classic-strategy matches: the same results as `play_episodes`, row for row, but every round
of every match in a chunk is one numpy step per strategy instead of one Python call per decision.

It applies when every policy of a chunk has a vectorised core (`init_batch` / `p_cooperate_batch`, see
agents/classic.py), the game is a 2x2 matrix game, the horizon is fixed and there is no action noise. Each
decision consumes exactly one uniform from its player's rng stream, as the classic `act` does, so the uniforms
can be drawn up front: `rng.random(k)` equals k calls of `rng.random()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tomarena.agents.base import Policy
from tomarena.arena.episode import MatchSpec, derive_seed, player_rng
from tomarena.arena.rows import coded, columns_table, game_labels, pair_list
from tomarena.envs.games import Game, get_game


def vectorisable(specs: Sequence[MatchSpec], policies: Mapping[str, Policy]) -> bool:
    """True when the chunk can take the vectorised path."""
    for s in specs:
        if s.kind != "tournament" or s.continuation is not None or s.noise > 0 or len(s.policies) != 2:
            return False
        g = get_game(s.game)
        if not isinstance(g, Game) or g.n_actions != 2:
            return False
        if not all(policies[p].vectorised for p in s.policies):
            return False
    return bool(specs)


def _simulate(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], rounds: int,
              seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actions [m, t, seat], p(C) [m, t, seat] and payoffs [m, t, seat] of matches sharing one horizon."""
    n = len(specs)
    uniforms = np.empty((n, 2, rounds))
    for m, seed in enumerate(seeds):
        for seat in (0, 1):
            uniforms[m, seat] = player_rng(int(seed), seat).random(rounds)
    row = np.stack([get_game(s.game).row_matrix for s in specs])  # [m, 2, 2]
    col = np.stack([get_game(s.game).col_matrix for s in specs])
    # seats are numbered m * 2 + seat; each policy label plays a fixed set of them (own) against others (opp)
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label in dict.fromkeys(p for s in specs for p in s.policies):
        own = np.array([2 * m + seat for m, s in enumerate(specs) for seat in (0, 1) if s.policies[seat] == label])
        groups[label] = (own, own ^ 1)
    states = {label: policies[label].init_batch(len(own)) for label, (own, _) in groups.items()}
    u = np.ascontiguousarray(uniforms.transpose(2, 0, 1).reshape(rounds, 2 * n))  # [t, seat]
    acts = np.empty((rounds, 2 * n), dtype=np.int64)
    pcs_t = np.empty((rounds, 2 * n))
    last = np.full(2 * n, -1, dtype=np.int64)
    for t in range(rounds):
        for label, (own, opp) in groups.items():
            pcs_t[t, own], states[label] = policies[label].p_cooperate_batch(states[label], t, last[own], last[opp])
        np.greater_equal(u[t], pcs_t[t], out=acts[t], casting="unsafe")  # C (0) when u < p(C)
        last = acts[t]
    actions = np.ascontiguousarray(acts.reshape(rounds, n, 2).transpose(1, 0, 2))
    pcs = np.ascontiguousarray(pcs_t.reshape(rounds, n, 2).transpose(1, 0, 2))
    m_idx = np.arange(n)[:, None]
    pay = np.stack([row[m_idx, actions[:, :, 0], actions[:, :, 1]], col[m_idx, actions[:, :, 0], actions[:, :, 1]]],
                   axis=-1)
    return actions, pcs, pay


def play_vectorised(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], run_seed: int,
                    run_id: str = "") -> Any:
    """Play the chunk and return its trace rows as one pyarrow Table (same content as the general path)."""
    import pyarrow as pa

    tables = []
    by_rounds: dict[int, list[MatchSpec]] = {}
    for s in specs:
        by_rounds.setdefault(s.rounds or 1, []).append(s)
    for rounds, group in by_rounds.items():
        seeds = np.array([derive_seed(run_seed, s.seed_key, s.repetition) for s in group], dtype=np.int64)
        actions, pcs, pay = _simulate(group, policies, rounds, seeds)
        tables.append(_table(group, run_id, rounds, seeds, actions, pcs, pay))
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _per_match(values: Sequence[str], m_of_row: np.ndarray) -> Any:
    """A dictionary column holding values[m] on every row of match m (distinct strings stored once)."""
    distinct = list(dict.fromkeys(values))
    code = {v: i for i, v in enumerate(distinct)}
    return coded(distinct, np.array([code[v] for v in values], dtype=np.int32)[m_of_row])


def _table(specs: Sequence[MatchSpec], run_id: str, rounds: int, seeds: np.ndarray, actions: np.ndarray,
           pcs: np.ndarray, pay: np.ndarray) -> Any:
    """The trace rows of matches sharing one horizon, built column by column through the row spec."""
    n = len(specs)
    per = rounds * 2
    total = n * per
    m_of_row = np.repeat(np.arange(n, dtype=np.int32), per)
    seat = np.tile(np.array([0, 1], dtype=np.int32), n * rounds)
    zeros = np.zeros(total, dtype=np.int32)
    names = sorted({p for s in specs for p in s.policies})
    code = {p: i for i, p in enumerate(names)}
    pair_codes = np.array([[code[p] for p in s.policies] for s in specs], dtype=np.int32)  # [m, 2]
    games = {g: game_labels(get_game(g)) for g in dict.fromkeys(s.game for s in specs)}
    labels = list(dict.fromkeys(lbl for ls in games.values() for lbl in ls))
    label_codes = np.array([[labels.index(lbl) for lbl in games[s.game]] for s in specs], dtype=np.int32)  # [m, 2]
    flat_actions = actions.reshape(-1).astype(np.int64)
    p_c = pcs.reshape(-1)
    return columns_table(total, {
        "run_id": coded([run_id], zeros), "kind": coded(["tournament"], zeros),
        "episode_id": coded([s.episode_id for s in specs], m_of_row),
        "match_key": _per_match([s.match_key for s in specs], m_of_row),
        "repetition": np.repeat(np.array([s.repetition for s in specs], dtype=np.int64), per),
        "seed": np.repeat(seeds, per), "game": _per_match([s.game for s in specs], m_of_row),
        "framing": _per_match([s.framing for s in specs], m_of_row),
        "horizon": np.full(total, rounds, dtype=np.int64), "round": np.tile(np.repeat(np.arange(rounds), 2), n),
        "agent": coded(["player_0", "player_1"], seat),
        "policy": coded(names, pair_codes[m_of_row, seat]), "opponents": coded(names, pair_codes[m_of_row, 1 - seat]),
        "intended_action": flat_actions, "action": flat_actions,
        "action_label": coded(labels, label_codes[m_of_row, flat_actions]),
        "probs": pair_list(p_c, 1 - p_c), "p_cooperate": p_c, "source": coded(["rule"], zeros),
        "reward": pay.reshape(-1), "cumulative_reward": np.cumsum(pay, axis=1).reshape(-1),
    })
