"""Vectorised play of classic-strategy matches: the same results as `play_episodes`, row for row, but every round
of every match in a chunk is one numpy step per strategy instead of one Python call per decision.

It applies when every policy of a chunk has a vectorised core (`init_batch` / `p_cooperate_batch`, see
agents/strategies/classic.py) and the game is a 2x2 matrix game, with a fixed or an uncertain (continuation)
horizon, with or without action noise. Each decision consumes exactly one uniform from its player's rng stream, as
the classic `act` does, so the uniforms can be drawn up front: `rng.random(k)` equals k calls of `rng.random()`. The
env's own stream is drawn up front the same way: each round it draws one uniform per player for noise (a flip
picks the other of two actions without drawing), then one for the continuation, so a match's length and flips are
known before play. All matches of a chunk play in lock-step, longest first, and a match that has ended drops out
of the next round's arrays, so uncertain horizons cost about what the same number of fixed rounds does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tomarena.agents.base import Policy
from tomarena.arena.episode import MatchSpec, derive_seed, player_rng
from tomarena.arena.rows import coded, columns_table, game_labels, pair_list
from tomarena.envs.games import Game, get_game

#: most rounds of env draws taken from a match's stream at once (the first block is sized by the expected length)
ENV_BLOCK = 1 << 16


def vectorisable(specs: Sequence[MatchSpec], policies: Mapping[str, Policy]) -> bool:
    """True when the chunk can take the vectorised path."""
    for s in specs:
        if s.kind != "tournament" or len(s.policies) != 2:
            return False
        g = get_game(s.game)
        if not isinstance(g, Game) or g.n_actions != 2:
            return False
        if not all(policies[p].vectorised for p in s.policies):
            return False
    return bool(specs)


def env_draws(spec: MatchSpec, seed: int) -> tuple[int, np.ndarray | None]:
    """(rounds the match lasts, noise flips [rounds, seat] or None) from the env's stream, as SocialDilemmaEnv
    draws it: per round a noise uniform per player (when noisy), then the continuation uniform (when uncertain)."""
    noisy, uncertain = spec.noise > 0, spec.continuation is not None
    cap = spec.max_rounds if uncertain else (spec.rounds or 1)
    per_round = 2 * noisy + uncertain
    if per_round == 0:
        return cap, None
    rng = np.random.default_rng(seed)
    blocks: list[np.ndarray] = []
    drawn, length = 0, cap
    block = min(ENV_BLOCK, max(16, int(2 / (1 - spec.continuation)))) if uncertain else ENV_BLOCK
    while drawn < cap:
        u = rng.random(min(block, cap - drawn) * per_round).reshape(-1, per_round)
        stop = np.flatnonzero(u[:, -1] >= spec.continuation) if uncertain else ()
        if len(stop):
            blocks.append(u[: stop[0] + 1])
            length = drawn + int(stop[0]) + 1
            break
        blocks.append(u)
        drawn += len(u)
        block = min(ENV_BLOCK, 2 * block)
    if not noisy:
        return length, None
    return length, np.concatenate(blocks)[:length, :2] < spec.noise


class _Played:
    """The decisions of matches played together, stored round by round: round t holds the 2 * k[t] seats of the
    k[t] matches still running (matches are numbered longest first, so those are always the first k[t]); seat
    2 * j + s of round t lies at offsets[t] + 2 * j + s. Nothing is stored for a round a match never played."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.rounds = int(lengths.max())
        ordered = np.sort(lengths)
        self.running = len(lengths) - np.searchsorted(ordered, np.arange(self.rounds), side="right")  # k[t]
        self.offsets = np.concatenate([[0], np.cumsum(2 * self.running)])
        total = int(self.offsets[-1])
        self.intended, self.pcs = np.zeros(total, dtype=np.int64), np.zeros(total)
        self.actions = self.intended

    def segments(self) -> list[tuple[int, int, int]]:
        """(first round, end round, running matches) of each stretch of rounds in which no match ends."""
        change = np.flatnonzero(np.diff(self.running)) + 1
        bounds = [0, *change.tolist(), self.rounds]
        return [(t0, t1, int(self.running[t0])) for t0, t1 in zip(bounds[:-1], bounds[1:])]

    def cumulative(self, values: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Running sums of per-row `values` (laid out as `where` says) within each match and seat, added round by
        round as the episode loop adds them (so float sums agree to the last bit)."""
        flat = np.empty(len(self.intended))
        flat[where] = values
        carry = np.zeros(0)
        for t0, t1, k in self.segments():
            a, b = int(self.offsets[t0]), int(self.offsets[t1])
            block = np.concatenate([carry[: 2 * k][None, :], flat[a:b].reshape(t1 - t0, 2 * k)]) if t0 else \
                flat[a:b].reshape(t1 - t0, 2 * k)
            sums = np.cumsum(block, axis=0)[1 if t0 else 0:]
            flat[a:b], carry = sums.reshape(-1), sums[-1]
        return flat[where]

    def at(self, pos: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Where each (match, round, seat) lies, in that order, for matches at positions `pos` (longest first)
        playing `lengths` rounds each."""
        per = 2 * lengths
        start = np.repeat(np.cumsum(per) - per, per)
        step = np.arange(int(per.sum())) - start  # 2 * round + seat within the match
        return self.offsets[step // 2] + 2 * np.repeat(pos, per) + step % 2


def _simulate(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], lengths: np.ndarray, seeds: np.ndarray,
              flips: Sequence[np.ndarray | None]) -> tuple[_Played, np.ndarray]:
    """Play every match for its own length, all in lock-step, the finished ones dropping out of each round's
    arrays; returns the decisions and where each (match, round, seat) of `specs` lies in them."""
    order = np.argsort(-lengths, kind="stable")  # longest first: the running matches are always a prefix
    pos = np.empty(len(specs), dtype=np.int64)
    pos[order] = np.arange(len(specs))
    played = _Played(lengths)
    where = played.at(pos, lengths)
    drawn, start = np.empty(len(where)), 0  # each player's uniforms, match by match, round by round, seat by seat
    for seed, n in zip(seeds.tolist(), lengths.tolist(), strict=True):
        for seat in (0, 1):
            drawn[start + seat: start + 2 * n: 2] = player_rng(seed, seat).random(n)
        start += 2 * n
    u = np.empty(len(where))
    u[where] = drawn
    flip = None
    if any(f is not None for f in flips):
        flip = np.zeros(len(where), dtype=bool)
        flip[where] = np.concatenate([f.reshape(-1) if f is not None else np.zeros(2 * n, dtype=bool)
                                      for f, n in zip(flips, lengths, strict=True)])
        played.actions = np.zeros(len(where), dtype=np.int64)
    # seats are numbered 2 * position + seat; each label plays a fixed set of them (own, ascending) against others
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label in dict.fromkeys(p for s in specs for p in s.policies):
        own = np.sort([2 * pos[m] + seat for m, s in enumerate(specs) for seat in (0, 1) if s.policies[seat] == label])
        groups[label] = (own, own ^ 1)
    states = {label: policies[label].init_batch(len(own)) for label, (own, _) in groups.items()}
    last = np.full(2 * len(specs), -1, dtype=np.int64)
    for t0, t1, k in played.segments():
        running = []  # (policy, label, own seats, their opponents' seats) of the labels still playing
        for label, (own, opp) in groups.items():
            j = int(np.searchsorted(own, 2 * k))
            states[label] = states[label][:j]  # the matches that ended are the last ones: drop their states
            if j:
                running.append((policies[label], label, own[:j], opp[:j]))
        for t in range(t0, t1):
            a = int(played.offsets[t0]) + 2 * k * (t - t0)
            pcs, intended, actions = played.pcs[a: a + 2 * k], played.intended[a: a + 2 * k], \
                played.actions[a: a + 2 * k]
            for pol, label, own, opp in running:
                pcs[own], states[label] = pol.p_cooperate_batch(states[label], t, last[own], last[opp])
            np.greater_equal(u[a: a + 2 * k], pcs, out=intended, casting="unsafe")  # C (0) when u < p(C)
            if flip is not None:
                np.bitwise_xor(intended, flip[a: a + 2 * k], out=actions, casting="unsafe")
            last = actions
    return played, where


def play_vectorised(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], run_seed: int,
                    run_id: str = "") -> Any:
    """Play the chunk and return its trace rows as one pyarrow Table (same content as the general path)."""
    seeds = np.array([derive_seed(run_seed, s.seed_key, s.repetition) for s in specs], dtype=np.int64)
    draws = [env_draws(s, int(seed)) for s, seed in zip(specs, seeds, strict=True)]
    lengths = np.array([n for n, _ in draws], dtype=np.int64)
    played, where = _simulate(specs, policies, lengths, seeds, [f for _, f in draws])
    return _table(specs, run_id, lengths, seeds, played, where)


def _per_match(values: Sequence[str], m_of_row: np.ndarray) -> Any:
    """A dictionary column holding values[m] on every row of match m (distinct strings stored once)."""
    distinct = list(dict.fromkeys(values))
    code = {v: i for i, v in enumerate(distinct)}
    return coded(distinct, np.array([code[v] for v in values], dtype=np.int32)[m_of_row])


def _table(specs: Sequence[MatchSpec], run_id: str, lengths: np.ndarray, seeds: np.ndarray, played: _Played,
           where: np.ndarray) -> Any:
    """The trace rows of the chunk, match by match, round by round, built column by column through the row spec."""
    import pyarrow as pa

    n = len(specs)
    per = 2 * lengths
    total = int(per.sum())
    m_of_row = np.repeat(np.arange(n, dtype=np.int32), per)
    seat = np.tile(np.array([0, 1], dtype=np.int32), total // 2)
    zeros = np.zeros(total, dtype=np.int32)
    names = sorted({p for s in specs for p in s.policies})
    code = {p: i for i, p in enumerate(names)}
    pair_codes = np.array([[code[p] for p in s.policies] for s in specs], dtype=np.int32)  # [m, 2]
    games = {g: game_labels(get_game(g)) for g in dict.fromkeys(s.game for s in specs)}
    labels = list(dict.fromkeys(lbl for ls in games.values() for lbl in ls))
    label_codes = np.array([[labels.index(lbl) for lbl in games[s.game]] for s in specs], dtype=np.int32)  # [m, 2]
    actions = played.actions[where]
    other = actions.reshape(-1, 2)[:, ::-1].reshape(-1)  # the co-player's action in the same round
    payoffs = np.array([get_game(s.game).payoffs for s in specs], dtype=float).reshape(n, 2, 2, 2)  # [m, a0, a1, seat]
    own0 = seat == 0
    reward = payoffs[m_of_row, np.where(own0, actions, other), np.where(own0, other, actions), seat]
    starts = np.cumsum(per) - per
    horizons = np.array([(s.rounds or 1) if s.continuation is None else 0 for s in specs], dtype=np.int64)
    fixed = np.array([s.continuation is None for s in specs])
    p_c = played.pcs[where]
    return columns_table(total, {
        "run_id": coded([run_id], zeros), "kind": coded(["tournament"], zeros),
        "episode_id": coded([s.episode_id for s in specs], m_of_row),
        "match_key": _per_match([s.match_key for s in specs], m_of_row),
        "repetition": np.repeat(np.array([s.repetition for s in specs], dtype=np.int64), per),
        "seed": np.repeat(seeds, per), "game": _per_match([s.game for s in specs], m_of_row),
        "framing": _per_match([s.framing for s in specs], m_of_row),
        "horizon": pa.array(np.repeat(horizons, per), mask=~np.repeat(fixed, per)),
        "round": (np.arange(total) - np.repeat(starts, per)) // 2,
        "agent": coded(["player_0", "player_1"], seat),
        "policy": coded(names, pair_codes[m_of_row, seat]), "opponents": coded(names, pair_codes[m_of_row, 1 - seat]),
        "intended_action": played.intended[where], "action": actions,
        "action_label": coded(labels, label_codes[m_of_row, actions]),
        "probs": pair_list(p_c, 1 - p_c), "p_cooperate": p_c, "source": coded(["rule"], zeros),
        "reward": reward, "cumulative_reward": played.cumulative(reward, where),
    })
