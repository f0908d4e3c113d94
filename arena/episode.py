"""The one pure episode function every executor uses.

`play_episodes` runs many matches in lock-step so that, each round, the decisions pending for one policy across
all matches are made in one batched call. Every match has its own seeds, derived from (run seed, match key,
repetition), and every player its own rng stream, so results never depend on batching, executor or order. The
match key of a seed names what each player is (arena/identity.py), so results do not depend on where a policy's
files lie either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomarena.agents.base import Decision, Policy
from tomarena.arena.rows import decision_row
from tomarena.envs.social_dilemma import SocialDilemmaEnv
from tomarena.errors import ConfigError


@dataclass(frozen=True)
class MatchSpec:
    """One match to play: who plays (policy labels, by seat), which game and framing, and how long."""

    policies: tuple[str, ...]
    game: str
    framing: str
    repetition: int = 0
    rounds: int | None = 1
    continuation: float | None = None
    max_rounds: int = 1000
    noise: float = 0.0
    kind: str = "tournament"  # or "sweep": only seat 0 decides, once, and no round is played
    #: what each seat's policy is (arena.identity.seed_identity), for seeds; None: the labels themselves
    identities: tuple[str, ...] | None = None

    @property
    def match_key(self) -> str:
        """Stable identity of the match without its repetition, by policy labels (what traces show)."""
        return " | ".join([",".join(self.policies), self.game, self.framing])

    @property
    def seed_key(self) -> str:
        """The match key by what the players are rather than by their labels: what the match's seed derives from."""
        return " | ".join([",".join(self.identities or self.policies), self.game, self.framing])

    @property
    def episode_id(self) -> str:
        """Stable identity of this repetition of the match."""
        return f"{self.match_key}#{self.repetition}"


def derive_seed(run_seed: int, match_key: str, repetition: int) -> int:
    """A 63-bit seed from (run seed, match key, repetition), independent of scheduling."""
    digest = hashlib.sha256(f"{run_seed}\x1f{match_key}\x1f{repetition}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def player_rng(seed: int, player: int) -> np.random.Generator:
    """The rng stream of one player in one episode."""
    return np.random.default_rng([seed, player])


class _Live:
    """Book-keeping of one running match."""

    def __init__(self, spec: MatchSpec, run_seed: int, policies: Mapping[str, Policy]) -> None:
        self.spec = spec
        self.seed = derive_seed(run_seed, spec.seed_key, spec.repetition)
        rounds = None if spec.continuation is not None else (spec.rounds or 1)
        self.env = SocialDilemmaEnv(game=spec.game, framing=spec.framing, rounds=rounds,
                                    continuation=spec.continuation, max_rounds=spec.max_rounds, noise=spec.noise)
        n = self.env.game.n_players
        if len(spec.policies) != n and spec.kind != "sweep":

            raise ConfigError(f"game {spec.game!r} needs {n} players, got {len(spec.policies)}: {spec.policies}")
        self.seats = list(range(n)) if spec.kind != "sweep" else [0]
        self.states = [policies[spec.policies[i if spec.kind != 'sweep' else 0]].initial_state() for i in range(n)]
        self.rngs = [player_rng(self.seed, i) for i in range(n)]
        _, infos = self.env.reset(seed=self.seed)
        self.obs = [infos[f"player_{i}"]["observation"] for i in range(n)]
        self.totals = [0.0] * n
        self.rows: list[dict[str, Any]] = []
        self.done = False


def play_episodes(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], run_seed: int,
                  run_id: str = "",
                  on_decisions: Callable[[int], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Play every match in `specs` to the end, batching each round's decisions per policy; returns trace rows
    (schema of tomarena.schema) per episode id. `on_decisions` hears how many decisions each round made (progress
    of slow policies within a chunk)."""
    live = [_Live(s, run_seed, policies) for s in specs]
    while any(not m.done for m in live):
        pending: dict[str, list[tuple[_Live, int]]] = {}
        for m in live:
            if not m.done:
                for seat in m.seats:
                    pending.setdefault(m.spec.policies[seat], []).append((m, seat))
        chosen: dict[tuple[int, int], Decision] = {}
        for label, items in pending.items():
            results = policies[label].act_batch(
                [m.obs[s] for m, s in items], [m.states[s] for m, s in items], [m.rngs[s] for m, s in items])
            for (m, s), (dec, state) in zip(items, results, strict=True):
                m.states[s] = state
                chosen[(id(m), s)] = dec
        for m in live:
            if not m.done:
                _advance(m, chosen, run_id)
        if on_decisions is not None:
            on_decisions(len(chosen))
    return {m.spec.episode_id: m.rows for m in live}


def _advance(m: _Live, chosen: Mapping[tuple[int, int], Decision], run_id: str) -> None:
    game = m.env.game
    horizon = m.env.horizon
    rnd = m.env.rounds_played
    if m.spec.kind == "sweep":
        d = chosen[(id(m), 0)]
        m.rows.append(decision_row(m.spec, run_id, m.seed, horizon, 0, 0, d, d.action, game, None, None))
        m.done = True
        return
    decisions = [chosen[(id(m), s)] for s in m.seats]
    _, rewards, terms, truncs, infos = m.env.step({f"player_{s}": d.action for s, d in enumerate(decisions)})
    for s, d in enumerate(decisions):
        agent = f"player_{s}"
        m.totals[s] += rewards[agent]
        m.rows.append(decision_row(m.spec, run_id, m.seed, horizon, rnd, s, d, infos[agent]["executed"], game,
                                   rewards[agent], m.totals[s]))
        m.obs[s] = infos[agent]["observation"]
    m.done = all(terms.values()) or all(truncs.values())


def play_episode(spec: MatchSpec, policies: Mapping[str, Policy], run_seed: int, run_id: str = "") -> list[dict]:
    """Play one match; identical to its rows inside any batch of `play_episodes`."""
    return play_episodes([spec], policies, run_seed, run_id)[spec.episode_id]
