"""Any strategy of the Axelrod library as a tomarena policy: `axelrod:<name>` (e.g. `axelrod:Grudger`,
`axelrod:Tit For Tat`, `axelrod:Gradual?seed=3`) and a few registered ids `axelrod/<snake_name>`.

The Axelrod player never sees an opponent object: before each move its own history is brought up to
date from the Observation, and `strategy()` is handed a stand-in that carries only the co-player's
history (and the counts Axelrod strategies read from it). Strategies that inspect or manipulate their
opponent (classifier `inspects_source`, `manipulates_source`, `manipulates_state`) are refused.

The state is the Axelrod player itself; `act` works on a deep copy, so inputs are never mutated.
Each decision draws exactly one `rng.random()`; in a match's first round that draw seeds a stochastic
player (unless the `seed` option fixes it), which makes stochastic strategies reproducible from the
rng they are given. Probabilities are one-hot for deterministic strategies and None for stochastic
ones. The Axelrod library (slow to import) loads only when such a policy is built.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomarena.agents.base import Decision, Policy, register_policy
from tomarena.envs.games import DonationGame
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import ConfigError, GameError

CHEATING = ("inspects_source", "manipulates_source", "manipulates_state")
#: Axelrod strategies registered as `axelrod/<snake_name>` (those without a native classic twin).
REGISTERED = ("Gradual", "Prober", "Adaptive", "Forgiver", "Hard Go By Majority", "Hard Tit For 2 Tats")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def snake_name(name: str) -> str:
    """`Tit For Tat` -> `tit_for_tat`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def find_strategy(name: str) -> type:
    """The Axelrod strategy class named `name` (its display name, class name or snake name; any case)."""
    import axelrod

    table: dict[str, type] = {}
    for cls in axelrod.all_strategies:
        table.setdefault(_key(cls.name), cls)
        table.setdefault(_key(cls.__name__), cls)
    cls = table.get(_key(name))
    if cls is None:
        names = sorted({c.name for c in axelrod.all_strategies})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(names[:12])} ..."
        raise ConfigError(f"unknown Axelrod strategy {name!r}; {hint}")
    player = cls()
    bad = [k for k in CHEATING if axelrod.Classifiers[k](player)]
    if bad:
        raise ConfigError(f"Axelrod strategy {cls.name!r} needs to see its opponent ({', '.join(bad)}); "
                          "tomarena policies never do")
    return cls


class _CoPlayer:
    """What an Axelrod strategy may know of its opponent here: the history of moves, nothing else."""

    __slots__ = ("history",)

    def __init__(self, history: Any) -> None:
        self.history = history

    @property
    def cooperations(self) -> int:
        """Number of C moves so far."""
        return self.history.cooperations

    @property
    def defections(self) -> int:
        """Number of D moves so far."""
        return self.history.defections


@dataclass(frozen=True)
class AxelrodState:
    """The Axelrod player after its last move, and the co-player's history as it saw it."""

    player: Any
    co_history: Any


class AxelrodPolicy(Policy):
    """An Axelrod-library strategy played through the tomarena policy contract."""

    game_kinds = ("matrix",)

    def __init__(self, name: str, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise ConfigError(f"option seed must be an integer in [0, 2**32), got {seed!r}")
        self.cls = find_strategy(name)
        self.name = self.cls.name
        self.seed = seed
        self.id = f"axelrod:{self.cls.__name__}"
        import axelrod

        self.stochastic = bool(axelrod.Classifiers["stochastic"](self.cls()))

    def _new_player(self, obs: Observation, u: float) -> tuple[Any, Any]:
        import axelrod

        rstp = None if isinstance(obs.game, DonationGame) else obs.game.rstp
        if rstp is None:
            raise GameError(f"{self.id} plays symmetric 2x2 games only; got game {obs.game.id!r}")
        player = self.cls()
        game = axelrod.Game(r=rstp["R"], s=rstp["S"], t=rstp["T"], p=rstp["P"])
        player.set_match_attributes(length=obs.horizon or -1, game=game)
        if self.stochastic:
            player.set_seed(self.seed if self.seed is not None else int(u * (2**32 - 1)))
        return player, axelrod.History()

    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Bring the player's history up to date from `obs`, then ask its strategy for a move."""
        from axelrod.action import Action

        u = rng.random()  # one draw per decision: seeds a stochastic player at its first move
        if state is None:
            player, co_hist = self._new_player(obs, u)
        else:
            player, co_hist = copy.deepcopy((state.player, state.co_history))
        moves = (Action.C, Action.D)
        for k in range(len(player.history), obs.round):
            own, other = moves[obs.actions[k][obs.player]], moves[obs.actions[k][1 - obs.player]]
            player.update_history(own, other)
            co_hist.append(other, own)
        action = 0 if player.strategy(_CoPlayer(co_hist)) == Action.C else 1
        probs = None if self.stochastic else ((1.0, 0.0) if action == 0 else (0.0, 1.0))
        return Decision(action, probs, "rule"), AxelrodState(player, co_hist)

    def describe(self) -> dict[str, Any]:
        """Id, the Axelrod strategy's name and the fixed seed (if any)."""
        return {"id": self.id, "axelrod": self.name, "seed": self.seed}


def axelrod_policy(name: str, seed: int | None = None) -> Policy:
    """A Policy playing the Axelrod strategy `name` (e.g. "Tit For Tat", "Grudger"); `seed` fixes its RNG."""
    return AxelrodPolicy(name, seed)


def _factory(name: str) -> Any:
    def build(seed: int | None = None) -> Policy:
        return axelrod_policy(name, seed)

    build.__name__ = f"axelrod_{snake_name(name)}"
    build.__doc__ = f"The Axelrod library's {name!r} strategy."
    return build


for _name in REGISTERED:
    register_policy(f"axelrod/{snake_name(_name)}", _factory(_name), f"Axelrod library: {_name}", "axelrod")
