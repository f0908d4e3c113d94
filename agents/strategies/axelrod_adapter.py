"""Any strategy of the Axelrod library as a tomarena policy: `axelrod:<name>` (e.g. `axelrod:Grudger`,
`axelrod:Tit For Tat`, `axelrod:Gradual?seed=3`) and a few registered ids `axelrod/<snake_name>`.

The Axelrod player never sees an opponent object: before each move its own history is brought up to
date from the Observation, and `strategy()` is handed a stand-in that carries only the co-player's
history (and the counts Axelrod strategies read from it). Strategies that inspect or manipulate their
opponent (classifier `inspects_source`, `manipulates_source`, `manipulates_state`) are refused.

Names are checked against a table of the library's strategies (agents/strategies/axelrod_strategies.json for the
version it was made from, else a per-version cache built once), so a typo fails in milliseconds with
close matches and `tomarena list policies --axelrod` needs no import. The library itself (≈20 s to
import as shipped: every player instantiation re-reads its source with `inspect.getsource`) loads only
when an Axelrod policy is built, with that lookup memoised (≈4 s, most of it torch/scipy/dask).

Speed: the state holds the live Axelrod player and is advanced in place when it is used once, as a match
does (O(1) per move); handing `act` a state that was already used replays the match from the
Observation instead, so results never depend on reuse. Deterministic strategies that read neither the
game nor the match length (143 of 244) also carry the vectorised core of agents/strategies/classic.py
(`init_batch` / `p_cooperate_batch`), so tournaments mixing them with classic strategies stay on the
fast path of arena/fast.py; their batch states are single-use (reusing one raises).

Each decision draws exactly one `rng.random()`; in a match's first round that draw seeds a stochastic
player (unless the `seed` option fixes it), which makes stochastic strategies reproducible from the
rng they are given. Probabilities are one-hot for deterministic strategies and None for stochastic ones.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import re
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from tomarena.agents.base import Decision, Policy, register_policy
from tomarena.agents.policy_options import PolicyOptions, Whole, check_options, rule, takes
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import ConfigError, GameError
from tomarena.files import cache_root, write_text_atomic

CHEATING = ("inspects_source", "manipulates_source", "manipulates_state")
#: Axelrod strategies registered as `axelrod/<snake_name>` (those without a native classic twin).
REGISTERED = ("Gradual", "Prober", "Adaptive", "Forgiver", "Hard Go By Majority", "Hard Tit For 2 Tats")
INSTALL_HINT = "pip install axelrod"


@dataclass(frozen=True)
class StrategyInfo:
    """One Axelrod strategy as the name table records it (no import needed)."""

    name: str  # display name, e.g. "Tit For Tat"
    class_name: str  # e.g. "TitForTat"
    stochastic: bool
    makes_use_of: tuple[str, ...]  # match attributes it reads: "game", "length"
    refused: str  # why tomarena refuses it ("" when playable)

    @property
    def vectorised(self) -> bool:
        """True when it can take the vectorised path: deterministic and independent of the game and length."""
        return not self.stochastic and not self.makes_use_of and not self.refused


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def snake_name(name: str) -> str:
    """`Tit For Tat` -> `tit_for_tat`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def axelrod_version() -> str:
    """The installed Axelrod library's version (read from its metadata, without importing it)."""
    try:
        return version("axelrod")
    except PackageNotFoundError as exc:
        raise ConfigError(f"axelrod: policies need the Axelrod library; install it with: {INSTALL_HINT}") from exc


def _memo(fn: Any) -> Any:
    """`fn(obj)` cached on `obj` (a bound method on its function), exceptions included; unhashables pass through."""
    memo: dict[Any, tuple[bool, Any]] = {}

    def call(obj: Any) -> Any:
        key = getattr(obj, "__func__", obj)
        try:
            hit = memo.get(key)
        except TypeError:
            return fn(obj)
        if hit is None:
            try:
                hit = (True, fn(obj))
            except (OSError, TypeError) as exc:
                hit = (False, exc)
            memo[key] = hit
        if hit[0]:
            return hit[1]
        raise hit[1]

    return call


def import_axelrod() -> Any:
    """Import the Axelrod library with its per-instance source parsing memoised (≈5x faster import)."""
    if "axelrod" in sys.modules:
        return sys.modules["axelrod"]
    axelrod_version()
    original = inspect.getsource
    inspect.getsource = _memo(original)  # axelrod's makes_use_of re-parses each method's source per player instance
    try:
        import axelrod
        import axelrod.makes_use_of as muo
    finally:
        inspect.getsource = original
    muo.method_makes_use_of = _memo(muo.method_makes_use_of)  # the same, for players built later
    return axelrod


def build_table() -> tuple[StrategyInfo, ...]:
    """The name table from the library itself (imports it; ≈6 s)."""
    axelrod = import_axelrod()
    rows = []
    for cls in axelrod.all_strategies:
        player = cls()
        bad = [k for k in CHEATING if axelrod.Classifiers[k](player)]
        refused = f"needs to see its opponent ({', '.join(bad)})" if bad else ""
        rows.append(StrategyInfo(cls.name, cls.__name__, bool(axelrod.Classifiers["stochastic"](player)),
                                 tuple(sorted(axelrod.Classifiers["makes_use_of"](player))), refused))
    return tuple(rows)


#: the strategy table shipped with tomarena, for the Axelrod version it names (regenerate: `python -m
#: tomarena.agents.strategies.axelrod_adapter`)
SHIPPED_TABLE = Path(__file__).with_name("axelrod_strategies.json")


@functools.cache
def strategy_table() -> tuple[StrategyInfo, ...]:
    """Every strategy of the installed library: the shipped table when versions match, else a cache, else built."""
    ver = axelrod_version()
    for path in (SHIPPED_TABLE, cache_root() / f"axelrod-{ver}-strategies.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["version"] == ver:
                return tuple(StrategyInfo(n, c, s, tuple(m), r) for n, c, s, m, r in data["strategies"])
        except (OSError, ValueError, TypeError, KeyError):
            pass
    table = build_table()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(path, table, ver)
    except OSError:
        pass  # an unwritable cache only costs the next run the same import
    return table


def write_table(path: Path, table: tuple[StrategyInfo, ...], version: str) -> Path:
    """Write a strategy table as JSON (one strategy per line: name, class, stochastic, match attributes read, why
    refused) for the Axelrod `version` it was built from, atomically."""
    rows = ",\n".join("  " + json.dumps([i.name, i.class_name, i.stochastic, list(i.makes_use_of), i.refused])
                       for i in table)
    return write_text_atomic(path, f'{{"version": {json.dumps(version)},\n "strategies": [\n{rows}\n]}}\n')


@functools.cache
def _index() -> dict[str, StrategyInfo]:
    index: dict[str, StrategyInfo] = {}
    for info in strategy_table():
        index.setdefault(_key(info.name), info)
        index.setdefault(_key(info.class_name), info)
    return index


def lookup(name: str) -> StrategyInfo:
    """The table entry named `name` (display name, class name or snake name; any case); unknown names list close
    matches and refused strategies say why. Never imports the library."""
    info = _index().get(_key(name))
    if info is None:
        names = sorted(i.name for i in strategy_table())
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see `tomarena list policies --axelrod`"
        raise ConfigError(f"unknown Axelrod strategy {name!r}; {hint}")
    if info.refused:
        raise ConfigError(f"Axelrod strategy {info.name!r} {info.refused}; tomarena policies never do")
    return info


def find_strategy(name: str) -> type:
    """The Axelrod strategy class named `name` (its display name, class name or snake name; any case)."""
    info = lookup(name)
    return getattr(import_axelrod(), info.class_name)


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


class AxelrodState:
    """The live Axelrod player after its last move, the co-player's history as it saw it, and the player's seed.
    `used` turns True when `act` advances it; a used state is replayed, never advanced again."""

    __slots__ = ("co_history", "player", "seed", "used")

    def __init__(self, player: Any, co_history: Any, seed: int | None) -> None:
        self.player, self.co_history, self.seed, self.used = player, co_history, seed, False


class AxelrodOptions(PolicyOptions):
    """The options of every Axelrod strategy (`axelrod:<Name>`, `axelrod/<name>`)."""

    seed: Annotated[Whole | None, rule(lambda s: 0 <= s < 2**32, "an integer in [0, 2**32)")] = Field(
        None, description="fixes the strategy's own RNG in every match (stochastic Axelrod strategies; default: drawn "
                          "from the match's rng stream)")


class AxelrodPolicy(Policy):
    """An Axelrod-library strategy played through the tomarena policy contract."""

    game_kinds = ("matrix",)
    Options = AxelrodOptions

    def __init__(self, name: str, seed: int | None = None) -> None:
        seed = check_options(AxelrodOptions, {"seed": seed}, f"axelrod:{name}").seed
        self.info = lookup(name)
        self.cls = getattr(import_axelrod(), self.info.class_name)
        self.name, self.seed, self.stochastic = self.info.name, seed, self.info.stochastic
        self.id = f"axelrod:{self.info.class_name}"
        self._moves = (import_axelrod().Action.C, import_axelrod().Action.D)

    @property
    def axl(self) -> Any:
        """The Axelrod library (a property, so policies pickle for Ray)."""
        return import_axelrod()

    def _new_player(self, obs: Observation, seed: int | None) -> Any:
        game = obs.game
        if game.kind != "matrix_2x2":
            raise GameError(f"{self.id} plays 2-player C/D games only; got game {game.id!r}")
        player = self.cls()
        if game.rstp is not None:
            rstp = game.rstp
            player.set_match_attributes(length=obs.horizon or -1,
                                        game=self.axl.Game(r=rstp["R"], s=rstp["S"], t=rstp["T"], p=rstp["P"]))
        elif "game" in self.info.makes_use_of:
            raise GameError(f"{self.id} reads the payoffs, so it plays symmetric 2x2 games only; got game {game.id!r}")
        else:
            player.set_match_attributes(length=obs.horizon or -1)
        if self.stochastic:
            player.set_seed(seed)
        return player

    def _replay(self, obs: Observation, seed: int | None) -> AxelrodState:
        """A fresh player taken through the rounds of `obs` as a match would (strategy, then the moves played)."""
        state = AxelrodState(self._new_player(obs, seed), self.axl.History(), seed)
        for k in range(obs.round):
            state.player.strategy(_CoPlayer(state.co_history))
            self._record(state, obs.actions[k][obs.player], obs.actions[k][1 - obs.player])
        return state

    def _record(self, state: AxelrodState, own: int, other: int) -> None:
        own_move, other_move = self._moves[own], self._moves[other]
        state.player.update_history(own_move, other_move)
        state.co_history.append(other_move, own_move)

    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Advance the player by the last round of `obs` (or replay the match), then ask its strategy for a move."""
        u = rng.random()  # one draw per decision: seeds a stochastic player at its first move
        if state is None:
            seed = (self.seed if self.seed is not None else int(u * (2**32 - 1))) if self.stochastic else None
            state = self._replay(obs, seed)
        elif state.used or len(state.player.history) != obs.round - 1:
            state = self._replay(obs, state.seed)
        else:
            state.used = True
            state = AxelrodState(state.player, state.co_history, state.seed)
            self._record(state, obs.actions[-1][obs.player], obs.actions[-1][1 - obs.player])
        action = 0 if state.player.strategy(_CoPlayer(state.co_history)) == self._moves[0] else 1
        probs = None if self.stochastic else ((1.0, 0.0) if action == 0 else (0.0, 1.0))
        return Decision(action, probs, "rule"), state

    def describe(self) -> dict[str, Any]:
        """Id, the Axelrod strategy's name and the fixed seed (if any)."""
        return {"id": self.id, "axelrod": self.name, "seed": self.seed}


class _Batch:
    """Single-use state of n matches on the vectorised path: the players, co-histories, and a used flag."""

    __slots__ = ("co", "players", "used")

    def __init__(self, players: list, co: list) -> None:
        self.players, self.co, self.used = players, co, False


class VectorAxelrodPolicy(AxelrodPolicy):
    """A deterministic Axelrod strategy that ignores the game and length, with the vectorised core of
    agents/strategies/classic.py: p(C) is 1 or 0, each player object advanced in place (Axelrod `Match` speed)."""

    vectorised = True

    def init_batch(self, n: int) -> _Batch:
        """Fresh players for n matches."""
        return _Batch([self.cls() for _ in range(n)], [self.axl.History() for _ in range(n)])

    def p_cooperate_batch(self, state: _Batch, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, _Batch]:
        """p(C) of each match this round after recording last round's moves (-1 in round 0); consumes `state`."""
        if state.used:
            raise ValueError("an Axelrod batch state is single-use; keep the one p_cooperate_batch returned")
        state.used = True
        moves, out = self._moves, np.empty(len(state.players))
        for i, (player, co, own, other) in enumerate(zip(state.players, state.co, own_last.tolist(),
                                                         other_last.tolist(), strict=True)):
            if own >= 0:
                player.update_history(moves[own], moves[other])
                co.append(moves[other], moves[own])
            out[i] = player.strategy(_CoPlayer(co)) == moves[0]
        return out, _Batch(state.players, state.co)


@takes(AxelrodOptions)
def axelrod_policy(name: str, seed: int | None = None) -> Policy:
    """A Policy playing the Axelrod strategy `name` (e.g. "Tit For Tat", "Grudger"); `seed` fixes its RNG
    (stochastic strategies only)."""
    info = lookup(name)
    return (VectorAxelrodPolicy if info.vectorised else AxelrodPolicy)(name, seed)


def _factory(name: str) -> Any:
    @takes(AxelrodOptions)
    def build(seed: int | None = None) -> Policy:
        return axelrod_policy(name, seed)

    build.__name__ = f"axelrod_{snake_name(name)}"
    build.__doc__ = f"The Axelrod library's {name!r} strategy."
    return build


for _name in REGISTERED:
    register_policy(f"axelrod/{snake_name(_name)}", _factory(_name), f"Axelrod library: {_name}", "axelrod")


def write_shipped_table() -> str:
    """Regenerate the shipped table (agents/strategies/axelrod_strategies.json) from the installed library; returns
    its path."""
    return str(write_table(SHIPPED_TABLE, build_table(), axelrod_version()))


if __name__ == "__main__":  # regenerate the shipped name table after upgrading the Axelrod library
    print(write_shipped_table())
