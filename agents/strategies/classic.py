"""Native classic strategies (`classic/<name>`), with exact probabilities and a vectorised core.

Every 2x2 strategy is a thin Policy around a **VectorStrategy** core that plays n matches at once
without building Observation objects (this is what the fast classic round-robin, arena/fast.py, drives):

    state = policy.init_batch(n)                    # float ndarray, shape (n, state_size)
    p_c, state = policy.p_cooperate_batch(state, round_index, own_last, other_last)

`round_index` is the 0-based round (int, or int ndarray of shape (n,)); `own_last` / `other_last` are
int ndarrays of shape (n,) with the moves executed in the previous round (0 = C, 1 = D, -1 in round
0). `p_c` (float ndarray, shape (n,)) is the probability of C this round; inputs are never mutated.
A decision is then `action = 0 if u < p_c else 1` where `u` is the next `rng.random()` of that
match's player stream: exactly one uniform per decision, deterministic strategies included, so
`rng.random(k)` can be pre-drawn for k rounds and every path (act, act_batch, arena) stays aligned.

Policies with a game-independent core (VectorPolicy: every 2x2 strategy except `equilibrium`) carry
`init_batch` / `p_cooperate_batch` themselves. `classic/equilibrium` depends on the stage game and
the seat, so it only offers `policy.vector_core(game, player)`, which every ClassicPolicy has and
which returns the core (same two methods) for that game and seat.

`act(obs, state, rng)` runs the same core on a batch of one (state None = fresh match; if the match
is already under way the core replays the history); `act_batch` vectorises over its batch.
Donation-game strategies (`classic/fixed_contributor`, `classic/conditional_cooperator`) are plain
policies with one-hot probabilities.

A strategy with options declares them as its `Options` model (agents/policy_options.py): the field is the option's
type, range, default and description, and `setup()` builds the core from `self.options`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import numpy as np
from pydantic import AfterValidator, Field

from tomarena.agents.base import Decision, Policy, register_policy, sample_action
from tomarena.agents.policy_options import Configurable, PolicyOptions, Probability, Whole, at_least
from tomarena.envs.games import DonationGame, Equilibrium, Game, GameLike
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import ConfigError, GameError

#: Default forgiveness of generous tit-for-tat: p(C) after a defection. 1/3 is what Nowak & Sigmund's
#: rule min(1 - (T-R)/(R-S), (R-P)/(T-P)) gives for Axelrod's payoffs (3, 0, 5, 1), as in Axelrod's GTFT.
GENEROSITY = 1 / 3


class VectorStrategy(Protocol):
    """The vectorised core of a 2x2 strategy (see the module docstring)."""

    state_size: int

    def init_batch(self, n: int) -> np.ndarray:
        """Fresh state for n matches, shape (n, state_size)."""
        ...

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p(C) for each match this round, and the next state (inputs are not mutated)."""
        ...


class Core:
    """Base core: memoryless (state_size 0); subclasses override `p_cooperate_batch`."""

    state_size = 0
    init_value = 0.0

    def init_batch(self, n: int) -> np.ndarray:
        """Fresh state for n matches, shape (n, state_size)."""
        return np.full((n, self.state_size), self.init_value, dtype=float)

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p(C) for each match this round, and the next state."""
        raise NotImplementedError


class ConstantCore(Core):
    """Cooperates with a fixed probability whatever happened (always C, always D, random, equilibrium)."""

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p(C) = p in every round."""
        return np.full(len(own_last), self.p), state


class MemoryOneCore(Core):
    """p(C) depends on the last joint move: `p` = (pCC, pCD, pDC, pDD) (own move first), `first` in round 0.
    Tit-for-tat, suspicious TFT, win-stay-lose-shift and generous TFT are memory-one cores."""

    def __init__(self, p: Sequence[float], first: float) -> None:
        self.table = np.asarray(p, dtype=float)
        self.first = float(first)

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Look up p(C) by the last joint move; `first` when there is none."""
        own, other = np.asarray(own_last), np.asarray(other_last)
        idx = np.clip(2 * own + other, 0, 3)
        return np.where(own < 0, self.first, self.table[idx]), state


class TitForTwoTatsCore(Core):
    """Defects only after two defections in a row by the co-player. State: the co-player's move before last."""

    state_size = 1
    init_value = -1.0

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """D iff the co-player's last two moves were both D."""
        prev = state[:, 0]
        p = np.where((np.asarray(other_last) == 1) & (prev == 1), 0.0, 1.0)
        return p, np.asarray(other_last, dtype=float).reshape(-1, 1)


class TwoTitsForTatCore(TitForTwoTatsCore):
    """Defects twice after each defection: D if the co-player defected in either of the last two rounds."""

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """D iff a D is among the co-player's last two moves."""
        prev = state[:, 0]
        p = np.where((np.asarray(other_last) == 1) | (prev == 1), 0.0, 1.0)
        return p, np.asarray(other_last, dtype=float).reshape(-1, 1)


class GrimCore(Core):
    """Cooperates until the co-player's first defection, then defects for ever. State: triggered flag."""

    state_size = 1

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """C until triggered."""
        trig = np.maximum(state[:, 0], (np.asarray(other_last) == 1).astype(float))
        return 1.0 - trig, trig.reshape(-1, 1)


class AlternatorCore(Core):
    """C first, then the opposite of its own last (executed) move: C, D, C, D, ..."""

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """C unless its own last move was C."""
        return np.where(np.asarray(own_last) == 0, 0.0, 1.0), state


class DefectOnceCore(Core):
    """C in every round but round `at` (from 0), where it plays D."""

    def __init__(self, at: int) -> None:
        self.at = int(at)

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p(C) = 0 in round `at`, 1 otherwise, whatever the co-player did."""
        rounds = np.broadcast_to(np.asarray(round_index), np.shape(own_last))
        return np.where(rounds == self.at, 0.0, 1.0), state


def _last_moves(obs: Observation) -> tuple[int, int]:
    if not obs.actions:
        return -1, -1
    last = obs.actions[-1]
    return int(last[obs.player]), int(last[1 - obs.player])


def _check_2x2(policy: Policy, game: Any) -> None:
    if game.kind != "matrix_2x2":
        raise GameError(f"{policy.id} plays two-player 2x2 games only; got game {game.id!r}")


@dataclass(frozen=True)
class Classifier:
    """What a strategy is, declared and checked by the contract tests (as Axelrod's classifiers): how many past
    rounds its choice depends on (math.inf: the whole history), whether it randomises, which games it plays."""

    memory_depth: float
    stochastic: bool
    game_kinds: tuple[str, ...] = ("matrix",)
    reads_payoffs: bool = False


class Classified(Configurable, Policy):
    """A native strategy: options from its `Options` model (agents/policy_options.py) and a declared Classifier."""

    classifier = Classifier(memory_depth=math.inf, stochastic=False)

    def classify(self, game: GameLike, player: int | None = None) -> Classifier:
        """What this strategy is when it plays `game` (as `player`, or either seat): the declared classifier, unless
        the strategy's nature depends on the game (an equilibrium player)."""
        return self.classifier

    def describe(self) -> dict[str, Any]:
        """Id plus the options that shape the strategy."""
        return {"id": self.id, **self.options.model_dump()}


class ClassicPolicy(Classified):
    """A 2x2 strategy driven by its VectorStrategy core; decisions have source 'rule' and exact probs."""

    id = "classic"
    game_kinds = ("matrix",)
    core: Core = ConstantCore(1.0)

    def vector_core(self, game: Game, player: int) -> Core:
        """The core that plays this strategy as `player` in `game` (most strategies ignore both)."""
        return self.core

    def _start(self, core: Core, obs: Observation, state: Any) -> np.ndarray:
        if state is not None:
            st = np.asarray(state, dtype=float).reshape(1, -1)
            if st.shape[1] != core.state_size:
                raise ConfigError(f"{self.id}: state must hold {core.state_size} numbers, got {state!r}")
            return st
        st = core.init_batch(1)
        own, other = obs.own_actions, obs.other_actions
        for k in range(obs.round):  # joining a match under way: rebuild the state from the history
            last = (own[k - 1], other[k - 1]) if k else (-1, -1)
            _, st = core.p_cooperate_batch(st, k, np.array([last[0]]), np.array([last[1]]))
        return st

    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """One decision: p(C) from the core on a batch of one, then one uniform draw."""
        return self.act_batch([obs], [state], [rng])[0]

    def act_batch(self, observations: Sequence[Observation], states: Sequence[Any],
                  rngs: Sequence[np.random.Generator]) -> list[tuple[Decision, Any]]:
        """Decide a batch with one core call per (game, player) group; equals `act` one by one."""
        if not len(observations) == len(states) == len(rngs):
            raise ConfigError("act_batch needs as many states and rngs as observations")
        u = np.array([r.random() for r in rngs])  # one uniform per decision, drawn in order
        groups: dict[tuple[Any, int], list[int]] = {}
        for i, obs in enumerate(observations):
            _check_2x2(self, obs.game)
            groups.setdefault((obs.game, obs.player), []).append(i)
        out: list[Any] = [None] * len(observations)
        for (game, player), idx in groups.items():
            core = self.vector_core(game, player)
            st = np.concatenate([self._start(core, observations[i], states[i]) for i in idx])
            last = np.array([_last_moves(observations[i]) for i in idx], dtype=int).reshape(-1, 2)
            rounds = np.array([observations[i].round for i in idx])
            p_c, new = core.p_cooperate_batch(st, rounds, last[:, 0], last[:, 1])
            for j, i in enumerate(idx):
                pc = float(p_c[j])
                action = 0 if u[i] < pc else 1  # identical to sample_action((pc, 1 - pc), rng)
                out[i] = (Decision(action, (pc, 1.0 - pc), "rule"), tuple(float(x) for x in new[j]))
        return out


def deterministic(memory_depth: float) -> Classifier:
    """The classifier of a deterministic 2x2 strategy whose choice depends on the last `memory_depth` rounds."""
    return Classifier(memory_depth=memory_depth, stochastic=False)


class VectorPolicy(ClassicPolicy):
    """A ClassicPolicy whose core does not depend on the game: it exposes the VectorStrategy protocol itself.
    A fixed strategy declares both in its class statement: `class X(VectorPolicy, core=..., classifier=...)`."""

    vectorised = True

    def __init_subclass__(cls, core: Core | None = None, classifier: Classifier | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if core is not None:
            cls.core = core
        if classifier is not None:
            cls.classifier = classifier

    @property
    def state_size(self) -> int:
        """Numbers of state per match."""
        return self.core.state_size

    def init_batch(self, n: int) -> np.ndarray:
        """Fresh state for n matches, shape (n, state_size)."""
        return self.core.init_batch(n)

    def p_cooperate_batch(self, state: np.ndarray, round_index: Any, own_last: np.ndarray,
                          other_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p(C) for each of n matches this round, and the next state (see the module docstring)."""
        return self.core.p_cooperate_batch(state, round_index, own_last, other_last)


class AlwaysCooperate(VectorPolicy, core=ConstantCore(1.0), classifier=deterministic(0)):
    """Always chooses C."""


class AlwaysDefect(VectorPolicy, core=ConstantCore(0.0), classifier=deterministic(0)):
    """Always chooses D."""


class TitForTat(VectorPolicy, core=MemoryOneCore((1, 0, 1, 0), 1.0), classifier=deterministic(1)):
    """C first, then copies the co-player's last move."""


class SuspiciousTitForTat(VectorPolicy, core=MemoryOneCore((1, 0, 1, 0), 0.0), classifier=deterministic(1)):
    """D first, then copies the co-player's last move."""


class TitForTwoTats(VectorPolicy, core=TitForTwoTatsCore(), classifier=deterministic(2)):
    """Defects only after two D's in a row by the co-player."""


class TwoTitsForTat(VectorPolicy, core=TwoTitsForTatCore(), classifier=deterministic(2)):
    """Answers each D of the co-player with two D's."""


class GrimTrigger(VectorPolicy, core=GrimCore(), classifier=deterministic(math.inf)):
    """Cooperates until the co-player defects once, then always D."""


class WinStayLoseShift(VectorPolicy, core=MemoryOneCore((1, 0, 0, 1), 1.0), classifier=deterministic(1)):
    """Pavlov: C first; repeats its move after R or T, switches after S or P."""


class Alternator(VectorPolicy, core=AlternatorCore(), classifier=deterministic(1)):
    """C, D, C, D, ...: the opposite of its own last move."""


class DefectOnce(VectorPolicy):
    """C in every round except round `at` (from 1), where it plays D: a probe of forgiveness."""

    classifier = Classifier(memory_depth=0, stochastic=False)

    class Options(PolicyOptions):
        at: Annotated[Whole, at_least(1, "a round number")] = Field(
            1, description="the round (from 1) in which it plays D; C in every other round")

    def setup(self) -> None:
        """The core that defects in round `at`."""
        self.core = DefectOnceCore(self.options.at - 1)


class RandomPolicy(VectorPolicy):
    """Chooses C with probability p, independently each round."""

    classifier = Classifier(memory_depth=0, stochastic=True)

    class Options(PolicyOptions):
        p: Probability = Field(0.5, description="probability of C each round")

    def setup(self) -> None:
        """A constant core; stochastic unless p is 0 or 1."""
        self.core = ConstantCore(self.options.p)
        self.classifier = Classifier(memory_depth=0, stochastic=0 < self.options.p < 1)


class GenerousTitForTat(VectorPolicy):
    """Tit-for-tat that still cooperates with probability `generosity` after a defection."""

    classifier = Classifier(memory_depth=1, stochastic=True)

    class Options(PolicyOptions):
        generosity: Probability = Field(GENEROSITY, description="p(C) after the co-player defected (C after C)")

    def setup(self) -> None:
        """A memory-one core; stochastic unless generosity is 0 or 1."""
        g = self.options.generosity
        self.core = MemoryOneCore((1, g, 1, g), 1.0)
        self.classifier = Classifier(memory_depth=1, stochastic=0 < g < 1)


def _four_probabilities(p: tuple[float, ...]) -> tuple[float, ...]:
    if len(p) != 4:
        raise ValueError(f"option p must be 4 probabilities pCC,pCD,pDC,pDD; got {list(p)}")
    for x in p:
        if not 0 <= x <= 1:  # NaN fails too
            raise ValueError(f"option p must be a probability in [0, 1], got {x!r}")
    return p


class MemoryOne(VectorPolicy):
    """Any memory-one strategy: p = "pCC,pCD,pDC,pDD" (own last move first), `first` = p(C) in round 0."""

    classifier = Classifier(memory_depth=1, stochastic=True)  # stochastic unless every p is 0 or 1

    class Options(PolicyOptions):
        p: Annotated[tuple[float, ...], AfterValidator(_four_probabilities)] = Field(
            (1.0, 0.0, 1.0, 0.0), description="p(C) after CC, CD, DC, DD (own last move first), comma list")
        first: Probability = Field(1.0, description="p(C) in round 0")

    def setup(self) -> None:
        """The memory-one core; stochastic when any of its probabilities is strictly between 0 and 1."""
        o = self.options
        self.core = MemoryOneCore(o.p, o.first)
        self.classifier = Classifier(memory_depth=1, stochastic=any(0 < x < 1 for x in (*o.p, o.first)))


@functools.lru_cache(maxsize=256)
def _equilibrium(game: Game, index: int) -> Equilibrium:
    eqs = game.nash_equilibria()
    if not 0 <= index < len(eqs):
        shown = "; ".join(f"{i}: {e.label(game.action_labels)}" for i, e in enumerate(eqs))
        raise GameError(f"equilibrium index {index} is out of range for game {game.id!r}; it has {shown}")
    return eqs[index]


class EquilibriumPlayer(ClassicPolicy):
    """Plays its part of the stage game's Nash equilibrium number `index` (mixed ones too) every round.
    Equilibria are numbered as Game.nash_equilibria() lists them: pure first."""

    #: without a game: it may randomise (a mixed equilibrium); `classify(game)` says whether it does in that game
    classifier = Classifier(memory_depth=0, stochastic=True, reads_payoffs=True)

    class Options(PolicyOptions):
        index: Annotated[Whole, at_least(0, "an integer")] = Field(
            0, description="which Nash equilibrium of the stage game to play, as `tomarena list games` numbers "
                           "them (pure first)")

    def vector_core(self, game: Game, player: int) -> Core:
        """A constant core with this player's equilibrium p(C) in `game`."""
        return ConstantCore(float(_equilibrium(game, self.options.index).strategies[player][0]))

    def classify(self, game: GameLike, player: int | None = None) -> Classifier:
        """Deterministic where its equilibrium of `game` is pure for `player` (or for both seats), else stochastic."""
        eq = _equilibrium(game, self.options.index)  # type: ignore[arg-type]
        parts = eq.strategies if player is None else (eq.strategies[player],)
        mixed = any(0 < p < 1 for s in parts for p in s)
        return Classifier(memory_depth=0, stochastic=mixed, reads_payoffs=True)


class DonationPolicy(Classified):
    """Base of donation-game rules: one-hot probabilities over contributions 0..endowment."""

    game_kinds = ("donation",)

    def contribution(self, obs: Observation, game: DonationGame) -> int:
        """The contribution this round."""
        raise NotImplementedError

    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Give `contribution(obs)` with probability 1 (one uniform drawn all the same)."""
        game = obs.game
        if game.kind != "donation":
            raise GameError(f"{self.id} plays the donation game only; got game {game.id!r}")
        give = self.contribution(obs, game)
        probs = tuple(1.0 if a == give else 0.0 for a in range(game.n_actions))
        return Decision(sample_action(probs, rng), probs, "rule"), state


#: a whole number of dollars
Dollars = Annotated[Whole, at_least(0, "a whole number of dollars")]


def _fits(policy: Policy, name: str, x: int, game: DonationGame) -> int:
    if x > game.endowment:
        raise GameError(f"{policy.id}: {name}={x} exceeds the endowment {game.endowment} of game {game.id!r}")
    return x


class FixedContributor(DonationPolicy):
    """Donation game: gives the same `amount` every round."""

    classifier = Classifier(memory_depth=0, stochastic=False, game_kinds=("donation",))

    class Options(PolicyOptions):
        amount: Dollars = Field(5, description="contribution every round")

    def contribution(self, obs: Observation, game: DonationGame) -> int:
        """Always `amount`."""
        return _fits(self, "amount", self.options.amount, game)


class ConditionalCooperator(DonationPolicy):
    """Donation game: gives `first`, then the others' mean gift of the last round (rounded half up)."""

    classifier = Classifier(memory_depth=1, stochastic=False, game_kinds=("donation",))

    class Options(PolicyOptions):
        first: Dollars = Field(5, description="contribution in round 0")

    def contribution(self, obs: Observation, game: DonationGame) -> int:
        """`first`, then the others' mean contribution of the previous round, rounded half up."""
        if not obs.actions:
            return _fits(self, "first", self.options.first, game)
        others = obs.others_actions[-1]
        return min(game.endowment, math.floor(sum(others) / len(others) + 0.5))


CLASSIC = {
    "always_cooperate": AlwaysCooperate, "always_defect": AlwaysDefect, "random": RandomPolicy,
    "tit_for_tat": TitForTat, "suspicious_tit_for_tat": SuspiciousTitForTat, "tit_for_two_tats": TitForTwoTats,
    "two_tits_for_tat": TwoTitsForTat, "grim_trigger": GrimTrigger, "win_stay_lose_shift": WinStayLoseShift,
    "generous_tit_for_tat": GenerousTitForTat, "alternator": Alternator, "memory_one": MemoryOne,
    "defect_once": DefectOnce,
    "equilibrium": EquilibriumPlayer, "fixed_contributor": FixedContributor,
    "conditional_cooperator": ConditionalCooperator,
}

for _name, _cls in CLASSIC.items():
    _cls.id = f"classic/{_name}"
    register_policy(f"classic/{_name}", _cls, (_cls.__doc__ or "").strip().split("\n")[0], "classic")

#: Other names the literature uses for the same strategies.
ALIASES = {"grudger": "grim_trigger", "pavlov": "win_stay_lose_shift"}
for _alias, _target in ALIASES.items():
    register_policy(f"classic/{_alias}", CLASSIC[_target], f"Alias of classic/{_target}.", "classic")
