"""The PettingZoo environment for every registered game: one-shot, fixed-horizon or continuation-repeated play.

Agents are `player_0`, `player_1`, ...; for 2x2 games action 0 is C and 1 is D. Rewards are raw payoffs.
Each agent's observation is a flat float32 vector for RL agents (layout below); the structured `Observation`
that LLM and classic policies read is in `infos[agent]["observation"]`.

The vector has 3 + memory x n_players values; with the default memory=1 in a 2-player game, 5:

    [0] rounds played so far (= the 0-based index of the round about to be played)
    [1] this agent's cumulative payoff
    [2] the co-players' mean cumulative payoff (the co-player's, in 2-player games)
    [3] player_0's action in the last round   (0 = C, 1 = D; the contribution in the donation game; -1 = none yet)
    [4] player_1's action in the last round   (same coding; joint actions are in seat order, not own-first)

With memory=k the last k joint actions follow, most recent first, each n_players long. E.g. player_0 after
one round of (C, D) in `prisoners_dilemma` (R=5, S=2, T=10, P=3): [1, 2, 10, 0, 1].
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from tomarena.envs.framings import Framing, get_framing
from tomarena.envs.games import GameLike, get_game
from tomarena.errors import ConfigError, GameError


@dataclass(frozen=True)
class Observation:
    """What one player knows before choosing: the game, framing, round, horizon and the history so far.

    `round` counts from 0; `horizon` is the number of rounds, or None when the end is uncertain.
    `actions[k]` and `payoffs[k]` are the joint actions and payoffs of earlier round k.
    """

    game: GameLike
    framing: Framing
    player: int
    round: int
    horizon: int | None
    actions: tuple[tuple[int, ...], ...] = ()
    payoffs: tuple[tuple[float, ...], ...] = ()

    @property
    def own_actions(self) -> tuple[int, ...]:
        """This player's earlier actions."""
        return tuple(a[self.player] for a in self.actions)

    @property
    def other_actions(self) -> tuple[int, ...]:
        """The co-player's earlier actions (two-player games; use `others_actions` for more players)."""
        if self.game.n_players != 2:
            raise GameError(f"other_actions needs a two-player game; {self.game.id!r} has "
                            f"{self.game.n_players} players, use others_actions")
        return tuple(a[1 - self.player] for a in self.actions)

    @property
    def others_actions(self) -> tuple[tuple[int, ...], ...]:
        """All co-players' earlier actions per round (any number of players)."""
        return tuple(tuple(x for i, x in enumerate(a) if i != self.player) for a in self.actions)

    @property
    def own_total(self) -> float:
        """This player's payoff so far."""
        return float(sum(p[self.player] for p in self.payoffs))

    @property
    def other_total(self) -> float:
        """The co-players' mean payoff so far."""
        n = self.game.n_players
        return float(sum(sum(p) - p[self.player] for p in self.payoffs) / max(n - 1, 1))


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_prob(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v)  # type: ignore[arg-type]


def _as_action(value: object) -> int | None:
    """The integer an action value stands for (ints, numpy ints, 0-d arrays, 2.0), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        as_int = int(value)  # type: ignore[call-overload]
        return as_int if as_int == value else None
    except (TypeError, ValueError):
        return None


def _check_params(rounds: int | None, continuation: float | None, max_rounds: int, noise: float, memory: int) -> None:
    if rounds is not None and (not _is_int(rounds) or rounds < 1):
        raise ConfigError(f"rounds must be an integer >= 1, got {rounds!r}")
    if continuation is not None:
        if rounds not in (None, 1):
            raise ConfigError(f"give either rounds (fixed horizon, got {rounds!r}) or continuation "
                              f"(uncertain horizon, got {continuation!r}), not both")
        if not _is_prob(continuation) or not 0 <= continuation < 1:
            raise ConfigError(f"continuation probability must be in [0, 1), got {continuation!r}")
    if not _is_int(max_rounds) or max_rounds < 1:
        raise ConfigError(f"max_rounds must be an integer >= 1, got {max_rounds!r}")
    if not _is_prob(noise) or not 0 <= noise <= 1:
        raise ConfigError(f"noise must be a probability in [0, 1], got {noise!r}")
    if not _is_int(memory) or memory < 0:
        raise ConfigError(f"memory must be an integer >= 0 (rounds of history in the vector), got {memory!r}")


class SocialDilemmaEnv(ParallelEnv):
    """Repeated play of one matrix or donation game under one framing, as a PettingZoo ParallelEnv."""

    metadata: ClassVar[dict] = {
        "name": "tomarena_social_dilemma_v0", "render_modes": ["ansi"], "is_parallelizable": True,
    }

    def __init__(
        self,
        game: str | GameLike = "prisoners_dilemma",
        framing: str | Framing = "none",
        rounds: int | None = None,
        continuation: float | None = None,
        max_rounds: int = 1000,
        noise: float = 0.0,
        memory: int = 1,
        render_mode: str | None = None,
    ) -> None:
        _check_params(rounds, continuation, max_rounds, noise, memory)
        if render_mode not in (None, "ansi"):
            raise ConfigError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.game = get_game(game)
        self.framing = get_framing(framing)
        self.continuation = None if continuation is None else float(continuation)
        self.horizon = None if continuation is not None else (rounds or 1)
        self.max_rounds = int(max_rounds) if continuation is not None else self.horizon
        self.noise = float(noise)
        self.memory = int(memory)
        self.render_mode = render_mode
        n = self.game.n_players
        self.possible_agents = [f"player_{i}" for i in range(n)]
        self._obs_dim = 3 + self.memory * n
        self._obs_space = self._make_obs_space()
        self.state_space = self._obs_space  # state() is player 0's vector, so it lies in the same box
        self._act_space = spaces.Discrete(self.game.n_actions)
        self._rng = np.random.default_rng()
        self.agents: list[str] = []
        self._actions: list[tuple[int, ...]] = []
        self._payoffs: list[tuple[float, ...]] = []

    def _make_obs_space(self) -> spaces.Box:
        lo_pay, hi_pay = self.game.payoff_bounds()
        rounds = float(self.max_rounds)
        lo_tot, hi_tot = min(lo_pay, 0.0) * rounds, max(hi_pay, 0.0) * rounds
        slack = 1e-6 * max(1.0, abs(lo_tot), abs(hi_tot))  # float sums may overshoot the exact bound
        low = np.array([0.0, lo_tot - slack, lo_tot - slack] + [-1.0] * (self._obs_dim - 3), dtype=np.float32)
        high = np.array([rounds, hi_tot + slack, hi_tot + slack]
                        + [self.game.n_actions - 1.0] * (self._obs_dim - 3), dtype=np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        """Flat float32 vector: [rounds played, own total payoff, co-players' mean total, then the last `memory` joint
        actions in seat order, most recent first (-1 = none yet)]; 5 values by default (see the module docstring)."""
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        """One discrete action per game action (C=0, D=1 for 2x2 games; the contribution for donation)."""
        return self._act_space

    @property
    def rounds_played(self) -> int:
        """Rounds played so far in this episode (the 0-based index of the round about to be played)."""
        return len(self._actions)

    @property
    def history(self) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[float, ...], ...]]:
        """(joint executed actions, payoffs) of every round so far, each in seat order; empty before reset."""
        return tuple(self._actions), tuple(self._payoffs)

    def observe(self, player: int) -> Observation:
        """The structured observation of player index `player` at the current round."""
        return Observation(self.game, self.framing, player, self.rounds_played, self.horizon, *self.history)

    def _vector(self, player: int) -> np.ndarray:
        v = np.full(self._obs_dim, -1.0, dtype=np.float32)
        n = self.game.n_players
        totals = np.sum(self._payoffs, axis=0) if self._payoffs else np.zeros(n)
        v[0] = len(self._actions)
        v[1] = totals[player]
        v[2] = (totals.sum() - totals[player]) / max(n - 1, 1)
        recent = self._actions[max(0, len(self._actions) - self.memory):]
        for k, joint in enumerate(reversed(recent)):
            v[3 + k * n: 3 + (k + 1) * n] = joint
        return v

    def _outputs(self) -> tuple[dict, dict]:
        obs = {a: self._vector(i) for i, a in enumerate(self.possible_agents) if a in self.agents}
        infos = {a: {"observation": self.observe(i)} for i, a in enumerate(self.possible_agents) if a in self.agents}
        return obs, infos

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start a new match; `seed` fixes the noise and continuation draws."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._act_space.seed(seed)  # one space object is shared by every agent
            self._obs_space.seed(seed)
        self.agents = list(self.possible_agents)
        self._actions, self._payoffs = [], []
        return self._outputs()

    def _execute(self, intended: list[int]) -> list[int]:
        if self.noise <= 0:
            return intended
        out = []
        for a in intended:
            if self._rng.random() < self.noise:
                others = [b for b in range(self.game.n_actions) if b != a]
                a = int(others[self._rng.integers(len(others))])
            out.append(a)
        return out

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        """Play one simultaneous round; every live agent must act."""
        if not self.agents:
            raise ConfigError("the episode is over (or was never started); call reset() first")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ConfigError(f"step needs an action for every agent; missing {missing}")
        intended = []
        for a in self.agents:
            act = _as_action(actions[a])
            if act is None or not 0 <= act < self.game.n_actions:
                raise ConfigError(f"action {actions[a]!r} of {a} is not an integer in 0..{self.game.n_actions - 1}")
            intended.append(act)
        executed = self._execute(intended)
        pay = self.game.payoff(executed)
        self._actions.append(tuple(executed))
        self._payoffs.append(tuple(pay))
        played = len(self._actions)
        if self.continuation is None:
            term, trunc = played >= (self.horizon or 1), False
        else:
            term = bool(self._rng.random() >= self.continuation)
            trunc = not term and played >= self.max_rounds
        agents = list(self.agents)
        rewards = {a: pay[i] for i, a in enumerate(agents)}
        terms = {a: term for a in agents}
        truncs = {a: trunc for a in agents}
        obs = {a: self._vector(i) for i, a in enumerate(agents)}
        infos = {
            a: {"observation": self.observe(i), "intended": intended[i], "executed": executed[i]}
            for i, a in enumerate(agents)
        }
        if term or trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def render(self) -> str | None:
        """Text of the rounds so far (render_mode 'ansi')."""
        if self.render_mode != "ansi":
            return None
        labels = self.game.action_labels
        lines = [f"{self.game.name} | {self.framing.title}"]
        for k, (a, p) in enumerate(zip(self._actions, self._payoffs)):
            acts = " ".join(labels[x] for x in a)
            lines.append(f"round {k + 1}: {acts}  payoffs {' '.join(f'{x:g}' for x in p)}")
        return "\n".join(lines)

    def state(self) -> np.ndarray:
        """Global state: player 0's observation vector (the history is common knowledge); lies in `state_space`."""
        return self._vector(0)

    def close(self) -> None:
        """Nothing to release."""


def parallel_env(**kwargs: object) -> SocialDilemmaEnv:
    """A ParallelEnv for `game` (id or object) under `framing`; see SocialDilemmaEnv for the options."""
    return SocialDilemmaEnv(**kwargs)  # type: ignore[arg-type]


def env(**kwargs: object):
    """The same environment in PettingZoo's AEC form, via PettingZoo's parallel-to-AEC converter."""
    return parallel_to_aec(parallel_env(**kwargs))
