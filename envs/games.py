"""Games as validated, immutable data: 2-player matrix games (any table) and the n-player donation game.

Every game implements `GameLike`, the one interface the envs, agents, arena and analysis read; its `kind` says
how it is played and analysed, so no caller needs to test a game's class or its action labels.
Payoffs are raw points. For 2x2 social dilemmas action 0 is "C" and action 1 is "D"; the
symmetric form uses the usual letters R (C,C), S (C vs D), T (D vs C), P (D,D) for the row player.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Protocol, get_args
from urllib.parse import parse_qsl

import numpy as np

from tomarena.errors import GameError
from tomarena.registry import Registry

#: how a game is played and analysed: "matrix_2x2" (two players, two actions each; propensity = P(first action),
#: P(C) in C/D games), "matrix" (any other two-player table), "donation" (n players give an amount; mean contribution)
GameKind = Literal["matrix_2x2", "matrix", "donation"]
GAME_KINDS: tuple[GameKind, ...] = get_args(GameKind)


class GameLike(Protocol):
    """What every game offers: players, actions, payoffs, equilibria, and how it is classified. `Game` and
    `DonationGame` implement it; code that must tell games apart asks `kind`, never the class or the labels."""

    @property
    def id(self) -> str:
        """The registry id or canonical inline spec, e.g. `stag_hunt` or `matrix?row=...&col=...&labels=X/Y`."""

    @property
    def name(self) -> str:
        """A readable title."""

    @property
    def tags(self) -> tuple[str, ...]:
        """Free-form tags, e.g. `in_sample`, `doubled`."""

    @property
    def n_players(self) -> int:
        """Number of players (2 for matrix games)."""

    @property
    def action_labels(self) -> tuple[str, ...]:
        """One label per action, e.g. ("C", "D"), ("X", "Y") or the amounts "0".."10"."""

    @property
    def n_actions(self) -> int:
        """Number of actions per player."""

    @property
    def kind(self) -> GameKind:
        """How the game is played and analysed (see `GameKind`)."""

    @property
    def family(self) -> str | None:
        """The named game family ("prisoners_dilemma", "stag_hunt", ..., "donation"), None for a custom table."""

    @property
    def cooperative_action(self) -> int | None:
        """The action counted as cooperating: 0 (C, the first action) in every "matrix_2x2" game; None where
        cooperation is not one binary choice (donation amounts, larger tables)."""

    def payoff(self, actions: Sequence[int]) -> tuple[float, ...]:
        """Every player's payoff for a joint action (one action index per player, in seat order)."""

    def payoff_bounds(self) -> tuple[float, float]:
        """The smallest and largest payoff any player can get in one round."""

    def nash_equilibria(self) -> list[Equilibrium]:
        """The game's Nash equilibria, pure first."""


GAMES: Registry[GameLike] = Registry("game")


@dataclass(frozen=True)
class Equilibrium:
    """A Nash equilibrium: one mixed strategy (probabilities over actions) per player."""

    strategies: tuple[tuple[float, ...], ...]

    @property
    def is_pure(self) -> bool:
        """True when every player puts all mass on one action."""
        return all(max(s) > 1 - 1e-9 for s in self.strategies)

    def label(self, action_labels: Sequence[str]) -> str:
        """Readable form: `(C,D)` for pure profiles, `p(C)=1/6` per player for mixed ones."""
        if self.is_pure:
            return "(" + ",".join(action_labels[int(np.argmax(s))] for s in self.strategies) + ")"
        parts = []
        for s in self.strategies:
            frac = Fraction(s[0]).limit_denominator(1000)
            parts.append(f"p({action_labels[0]})={frac}")
        return "mixed " + ", ".join(parts)


def _finite_table(values: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise GameError(f"{what} must be a rectangular table of numbers, got {values!r}") from exc
    if arr.shape != shape:
        raise GameError(f"{what} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GameError(f"{what} must be finite numbers; got {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class Game:
    """A two-player matrix game. `payoffs[i][j] = (row payoff, column payoff)` for actions i, j."""

    id: str
    name: str
    payoffs: tuple[tuple[tuple[float, float], ...], ...]
    action_labels: tuple[str, ...] = ("C", "D")
    tags: tuple[str, ...] = ()
    description: str = ""
    n_players: int = field(default=2, init=False)

    def __post_init__(self) -> None:
        n = len(self.action_labels)
        if n < 2 or len(set(self.action_labels)) != n:
            raise GameError(f"game {self.id!r}: action labels must be >=2 distinct strings, got {self.action_labels}")
        _finite_table(self.payoffs, (n, n, 2), f"payoff table of game {self.id!r}")

    @property
    def n_actions(self) -> int:
        """Number of actions per player."""
        return len(self.action_labels)

    @property
    def kind(self) -> GameKind:
        """"matrix_2x2" when each player has two actions, else "matrix"."""
        return "matrix_2x2" if self.n_actions == 2 else "matrix"

    @property
    def family(self) -> str | None:
        """The named family whose strict payoff ordering this symmetric 2x2 game has at any scale (e.g. "stag_hunt"
        for `stag_hunt_doubled` and `stag_hunt?R=4&S=0&T=3&P=2`); None for any other table."""
        rstp = self.rstp
        if rstp is None:
            return None
        return next((f for f, (_, order) in _ORDERINGS.items() if _broken_pair(order, rstp) is None), None)

    @property
    def cooperative_action(self) -> int | None:
        """Action 0 (C, or the first action) in a 2x2 game; None in larger tables."""
        return 0 if self.kind == "matrix_2x2" else None

    @property
    def row_matrix(self) -> np.ndarray:
        """Payoffs of player 0 (rows = own action)."""
        return np.asarray(self.payoffs, dtype=float)[:, :, 0]

    @property
    def col_matrix(self) -> np.ndarray:
        """Payoffs of player 1 (rows = player 0's action, columns = player 1's)."""
        return np.asarray(self.payoffs, dtype=float)[:, :, 1]

    def payoff(self, actions: Sequence[int]) -> tuple[float, float]:
        """The payoffs of both players for a joint action."""
        if len(actions) != 2 or not all(0 <= a < self.n_actions for a in actions):
            raise GameError(f"game {self.id!r} needs two actions in 0..{self.n_actions - 1}, got {tuple(actions)}")
        a, b = actions
        r = self.payoffs[a][b]
        return float(r[0]), float(r[1])

    def payoff_bounds(self) -> tuple[float, float]:
        """The smallest and largest payoff any player can get in one round."""
        arr = np.asarray(self.payoffs, dtype=float)
        return float(arr.min()), float(arr.max())

    @property
    def is_symmetric(self) -> bool:
        """True when the column player's matrix is the transpose of the row player's."""
        return bool(np.allclose(self.row_matrix, self.col_matrix.T))

    @property
    def rstp(self) -> dict[str, float] | None:
        """R, S, T, P of a symmetric 2x2 game, else None."""
        if self.n_actions != 2 or not self.is_symmetric:
            return None
        m = self.row_matrix
        return {"R": m[0, 0], "S": m[0, 1], "T": m[1, 0], "P": m[1, 1]}

    def nash_equilibria(self) -> list[Equilibrium]:
        """All Nash equilibria (pure and mixed) found by nashpy's support enumeration, pure first."""
        import nashpy

        found: list[Equilibrium] = []
        seen: set[tuple[float, ...]] = set()
        gm = nashpy.Game(self.row_matrix, self.col_matrix)
        for sigma_r, sigma_c in gm.support_enumeration(non_degenerate=False, tol=1e-12):
            key = tuple(np.round(np.concatenate([sigma_r, sigma_c]), 9))
            if key in seen or not (np.all(np.isfinite(key))):
                continue
            seen.add(key)
            clean = tuple(tuple(float(round(x, 12)) + 0.0 for x in s) for s in (sigma_r, sigma_c))
            found.append(Equilibrium(clean))
        return sorted(found, key=lambda e: (not e.is_pure, [-p for s in e.strategies for p in s]))

    def pure_equilibria(self) -> list[tuple[int, int]]:
        """Pure-strategy Nash equilibria as joint actions."""
        r, c = self.row_matrix, self.col_matrix
        return [
            (i, j)
            for i, j in itertools.product(range(self.n_actions), repeat=2)
            if r[i, j] >= r[:, j].max() - 1e-12 and c[i, j] >= c[i, :].max() - 1e-12
        ]

    def pareto_efficient(self) -> list[tuple[int, int]]:
        """Pure outcomes that no other pure outcome weakly improves for both and strictly for one."""
        cells = list(itertools.product(range(self.n_actions), repeat=2))
        pay = {ij: self.payoff(ij) for ij in cells}

        def dominated(x: tuple[int, int]) -> bool:
            return any(
                all(pay[y][k] >= pay[x][k] for k in (0, 1)) and any(pay[y][k] > pay[x][k] for k in (0, 1))
                for y in cells
            )

        return [x for x in cells if not dominated(x)]

    def risk_dominant(self) -> tuple[int, int] | None:
        """Harsanyi-Selten risk-dominant equilibrium of a 2x2 game with two strict pure equilibria, else None."""
        eqs = self.pure_equilibria()
        if self.n_actions != 2 or sorted(eqs) != [(0, 0), (1, 1)]:
            return None
        r, c = self.row_matrix, self.col_matrix
        loss_cc = (r[0, 0] - r[1, 0]) * (c[0, 0] - c[0, 1])
        loss_dd = (r[1, 1] - r[0, 1]) * (c[1, 1] - c[1, 0])
        if math.isclose(loss_cc, loss_dd):
            return None
        return (0, 0) if loss_cc > loss_dd else (1, 1)

    def scaled(self, factor: float, new_id: str | None = None) -> Game:
        """The same game with every payoff multiplied by `factor` (e.g. the doubled variants)."""
        table = (np.asarray(self.payoffs, dtype=float) * factor).tolist()
        return Game(
            id=new_id or f"{self.id}_x{factor:g}",
            name=f"{self.name} (payoffs x{factor:g})",
            payoffs=_as_table(table),
            action_labels=self.action_labels,
            tags=tuple(t for t in self.tags if t != "in_sample") + ("scaled",),
            description=self.description,
        )


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _num(v: float) -> str:
    """Short form of a payoff that still tells two different numbers apart."""
    short = f"{float(v):g}"
    return short if float(short) == float(v) else repr(float(v))


def _as_table(table: object) -> tuple[tuple[tuple[float, float], ...], ...]:
    return tuple(tuple((float(a), float(b)) for a, b in row) for row in table)  # type: ignore[union-attr]


_ORDERINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prisoners_dilemma": ("Prisoner's Dilemma", ("T", "R", "P", "S")),
    "snowdrift": ("Snowdrift", ("T", "R", "S", "P")),
    "stag_hunt": ("Stag Hunt", ("R", "T", "P", "S")),
    "prisoners_delight": ("Prisoner's Delight", ("R", "T", "S", "P")),
}


def _broken_pair(order: Sequence[str], vals: dict[str, float]) -> tuple[str, str] | None:
    """The first neighbouring pair (hi, lo) of `order` with not vals[hi] > vals[lo], None when the ordering holds."""
    return next(((hi, lo) for hi, lo in itertools.pairwise(order) if not vals[hi] > vals[lo]), None)


def symmetric_game(
    R: float, S: float, T: float, P: float, *, id: str = "custom", name: str = "", kind: str | None = None,
    tags: Sequence[str] = (), description: str = "",
) -> Game:
    """A symmetric 2x2 game from R, S, T, P; `kind` names a family (e.g. "stag_hunt") whose strict ordering it
    enforces (the game's `family` follows from its payoffs either way)."""
    vals = {"R": R, "S": S, "T": T, "P": P}
    for k, v in vals.items():
        if not _is_real(v) or not math.isfinite(v):  # type: ignore[arg-type]
            raise GameError(f"payoff {k} must be a finite number, got {v!r}")
    if kind is not None:
        if kind not in _ORDERINGS:
            raise GameError(f"unknown game kind {kind!r}; allowed: {', '.join(_ORDERINGS)}")
        label, order = _ORDERINGS[kind]
        broken = _broken_pair(order, vals)
        if broken is not None:
            hi, lo = broken
            raise GameError(
                f"{label} needs {' > '.join(order)} but {hi}={_num(vals[hi])} > {lo}={_num(vals[lo])} does not hold"
            )
        name = name or label
    table = (((R, R), (S, T)), ((T, S), (P, P)))
    return Game(id=id, name=name or id, payoffs=_as_table(table), tags=tuple(tags), description=description)


def prisoners_dilemma(R: float = 5, S: float = 2, T: float = 10, P: float = 3, **kw: object) -> Game:
    """Prisoner's Dilemma (T > R > P > S); defaults are the study's payoffs."""
    return symmetric_game(R, S, T, P, kind="prisoners_dilemma", id=str(kw.pop("id", "prisoners_dilemma")), **kw)  # type: ignore[arg-type]


def snowdrift(R: float = 5, S: float = 3, T: float = 10, P: float = 2, **kw: object) -> Game:
    """Snowdrift / Chicken (T > R > S > P); defaults are the study's payoffs."""
    return symmetric_game(R, S, T, P, kind="snowdrift", id=str(kw.pop("id", "snowdrift")), **kw)  # type: ignore[arg-type]


def stag_hunt(R: float = 10, S: float = 2, T: float = 5, P: float = 3, **kw: object) -> Game:
    """Stag Hunt (R > T > P > S); defaults are the study's payoffs."""
    return symmetric_game(R, S, T, P, kind="stag_hunt", id=str(kw.pop("id", "stag_hunt")), **kw)  # type: ignore[arg-type]


def prisoners_delight(R: float = 10, S: float = 3, T: float = 5, P: float = 2, **kw: object) -> Game:
    """Prisoner's Delight / Harmony (R > T > S > P), the study's control game; defaults are its payoffs."""
    return symmetric_game(R, S, T, P, kind="prisoners_delight", id=str(kw.pop("id", "prisoners_delight")), **kw)  # type: ignore[arg-type]


def matrix_game(
    row: object, col: object, *, id: str = "custom", name: str = "", action_labels: Sequence[str] = ("C", "D"),
    tags: Sequence[str] = (),
) -> Game:
    """Any two-player game from the row player's and the column player's payoff matrices."""
    n = len(action_labels)
    r = _finite_table(row, (n, n), "row payoff matrix")
    c = _finite_table(col, (n, n), "column payoff matrix")
    table = np.stack([r, c], axis=-1).tolist()
    return Game(id=id, name=name or id, payoffs=_as_table(table), action_labels=tuple(action_labels), tags=tuple(tags))


@dataclass(frozen=True)
class DonationGame:
    """Linear public-goods game: each of n players gives an integer 0..endowment to a shared fund that is
    multiplied and split equally. Payoff_i = endowment - c_i + multiplier * sum(c) / n."""

    id: str = "donation"
    name: str = "Donation (public goods)"
    n_players: int = 4
    endowment: int = 10
    multiplier: float = 2.0
    tags: tuple[str, ...] = ("out_of_sample", "n_player")
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.n_players, bool) or not isinstance(self.n_players, int) or self.n_players < 2:
            raise GameError(f"donation game needs n_players >= 2 (an integer), got {self.n_players!r}")
        if isinstance(self.endowment, bool) or not isinstance(self.endowment, int) or self.endowment < 1:
            raise GameError(f"donation game needs an integer endowment >= 1, got {self.endowment!r}")
        m = self.multiplier
        if not _is_real(m) or not math.isfinite(m) or not 1 < m < self.n_players:  # type: ignore[arg-type]
            raise GameError(
                f"donation game needs 1 < multiplier < n_players={self.n_players} to be a social dilemma, got {m!r}"
            )

    @property
    def action_labels(self) -> tuple[str, ...]:
        """Contributions as strings: "0" .. str(endowment)."""
        return tuple(str(i) for i in range(self.endowment + 1))

    @property
    def n_actions(self) -> int:
        """endowment + 1 integer contributions."""
        return self.endowment + 1

    @property
    def kind(self) -> GameKind:
        """Always "donation": n players each give an amount."""
        return "donation"

    @property
    def family(self) -> str:
        """Always "donation"."""
        return "donation"

    @property
    def cooperative_action(self) -> None:
        """None: giving is an amount, not one binary choice."""
        return None

    def payoff(self, actions: Sequence[int]) -> tuple[float, ...]:
        """Each player's payoff for a contribution profile."""
        if len(actions) != self.n_players:
            raise GameError(f"donation game expects {self.n_players} contributions, got {len(actions)}")
        bad = [c for c in actions if not 0 <= c <= self.endowment]
        if bad:
            raise GameError(f"donation contributions must be in 0..{self.endowment}, got {bad[0]!r}")
        share = self.multiplier * sum(actions) / self.n_players
        return tuple(float(self.endowment - c + share) for c in actions)

    def payoff_bounds(self) -> tuple[float, float]:
        """Smallest payoff (give all, others nothing) and largest (give nothing, others all) in one round."""
        e, n, m = self.endowment, self.n_players, self.multiplier
        return float(m * e / n), float(e + m * e * (n - 1) / n)

    def dominant_strategy_equilibrium(self) -> tuple[int, ...]:
        """Everyone gives 0: each unit given returns only multiplier/n < 1 to the giver."""
        return (0,) * self.n_players

    def social_optimum(self) -> tuple[int, ...]:
        """Everyone gives the whole endowment: total welfare grows by (multiplier - 1) per unit given."""
        return (self.endowment,) * self.n_players

    def nash_equilibria(self) -> list[Equilibrium]:
        """The unique (strictly dominant) equilibrium, as pure strategies."""
        pure = tuple(1.0 if a == 0 else 0.0 for a in range(self.n_actions))
        return [Equilibrium((pure,) * self.n_players)]


def _register_builtin_games() -> None:
    base = [prisoners_dilemma(), snowdrift(), stag_hunt(), prisoners_delight()]
    for g in base:
        g = Game(g.id, g.name, g.payoffs, g.action_labels, ("in_sample", "study"), g.description)
        GAMES.register(g.id, g)
        doubled = g.scaled(2, f"{g.id}_doubled")
        GAMES.register(doubled.id, Game(doubled.id, doubled.name, doubled.payoffs, doubled.action_labels,
                                        ("out_of_sample", "doubled", "study")))
    GAMES.register(
        "prisoners_dilemma_axelrod",
        prisoners_dilemma(3, 0, 5, 1, id="prisoners_dilemma_axelrod", name="Prisoner's Dilemma (Axelrod)",
                          tags=("classic",)),
    )
    GAMES.register("donation", DonationGame())


INLINE_FAMILIES = (*_ORDERINGS, "symmetric", "matrix", "donation")
_INLINE_CACHE: dict[str, GameLike] = {}


def _inline_number(key: str, value: str, spec: str) -> float:
    try:
        x = float(value)
    except ValueError as exc:
        raise GameError(f"game spec {spec!r}: {key}={value!r} is not a number") from exc
    if not math.isfinite(x):
        raise GameError(f"game spec {spec!r}: {key}={value!r} must be finite")
    return x


def _inline_table(key: str, value: str, spec: str) -> list[list[float]]:
    cells = [_inline_number(key, v, spec) for v in value.replace(",", "/").split("/")]
    n = math.isqrt(len(cells))
    if n < 2 or n * n != len(cells):
        raise GameError(f"game spec {spec!r}: {key} needs n*n payoffs separated by '/' (row-major, n >= 2), "
                        f"got {len(cells)}")
    return [cells[i * n:(i + 1) * n] for i in range(n)]


def parse_game_spec(spec: str) -> Game | DonationGame:
    """A game from an inline spec: `prisoners_dilemma?R=3&S=0&T=5&P=1` (any of the four named families, with
    their orderings enforced; omitted payoffs keep the study's values), `symmetric?R=..&S=..&T=..&P=..` (no
    ordering), `matrix?row=r11/r12/r21/r22&col=c11/c12/c21/c22[&labels=A/B]`,
    `donation?n_players=4&endowment=10&multiplier=2`."""
    family, _, query = spec.partition("?")
    if family not in INLINE_FAMILIES:
        raise GameError(f"unknown game family {family!r} in {spec!r}; allowed: {', '.join(INLINE_FAMILIES)}")
    try:
        opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError as exc:
        raise GameError(f"malformed game spec {spec!r}; use family?key=value&key=value") from exc
    allowed = {"matrix": ("row", "col", "labels"), "donation": ("n_players", "endowment", "multiplier")}.get(
        family, ("R", "S", "T", "P"))
    unknown = [k for k in opts if k not in allowed]
    if unknown:
        raise GameError(f"unknown key {unknown[0]!r} in game spec {spec!r}; allowed: {', '.join(allowed)}")
    if family == "donation":
        vals = {k: _inline_number(k, v, spec) for k, v in opts.items()}
        for k in ("n_players", "endowment"):
            if k in vals and vals[k] != int(vals[k]):
                raise GameError(f"game spec {spec!r}: {k} must be a whole number, got {opts[k]}")
        d = DonationGame()
        n, e = int(vals.get("n_players", d.n_players)), int(vals.get("endowment", d.endowment))
        m = vals.get("multiplier", d.multiplier)
        return DonationGame(id=f"donation?n_players={n}&endowment={e}&multiplier={_num(m)}", n_players=n,
                            endowment=e, multiplier=m)
    if family == "matrix":
        if "row" not in opts or "col" not in opts:
            raise GameError(f"game spec {spec!r} needs both row=... and col=... payoffs")
        row, col = _inline_table("row", opts["row"], spec), _inline_table("col", opts["col"], spec)
        labels = tuple(x.strip() for x in opts.get("labels", "").replace(",", "/").split("/") if x.strip()) or tuple(
            "CD"[i] if len(row) == 2 else f"A{i + 1}" for i in range(len(row)))
        if len(labels) != len(row):
            raise GameError(f"game spec {spec!r}: {len(labels)} labels for {len(row)} actions")
        canon = (f"matrix?row={'/'.join(_num(x) for r in row for x in r)}"
                 f"&col={'/'.join(_num(x) for r in col for x in r)}&labels={'/'.join(labels)}")
        return matrix_game(row, col, id=canon, name="Custom matrix game", action_labels=labels)
    vals = {k: _inline_number(k, v, spec) for k, v in opts.items()}
    if family == "symmetric" and len(vals) < 4:
        raise GameError(f"game spec {spec!r} needs all of R, S, T, P")
    base = GAMES.get(family).rstp if family in _ORDERINGS else {}
    rstp = {k: vals.get(k, base.get(k)) for k in ("R", "S", "T", "P")}
    canon = f"{family}?" + "&".join(f"{k}={_num(v)}" for k, v in rstp.items())
    kind = family if family in _ORDERINGS else None
    return symmetric_game(**rstp, id=canon, kind=kind, name="" if kind else "Custom symmetric game")


def get_game(game: str | GameLike) -> GameLike:
    """Resolve a game id or an inline spec such as `stag_hunt?R=4&S=0&T=3&P=2` (or pass a game object through)."""
    if not isinstance(game, str):
        if getattr(game, "kind", None) not in GAME_KINDS:
            raise GameError(f"a game must be an id or a game object of kind {', '.join(GAME_KINDS)}; got {game!r}")
        return game
    if "?" in game:
        if game not in _INLINE_CACHE:
            _INLINE_CACHE[game] = parse_game_spec(game)
        return _INLINE_CACHE[game]
    return GAMES.get(game)


_register_builtin_games()
