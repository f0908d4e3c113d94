"""Behaviour against game theory: distance of p(C) to the Nash set (with explicit equilibrium selection), a fitted
logit-QRE rationality lambda, memory-one fingerprints and cooperation over rounds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tomarena.analysis.propensity import INVALID_STATUSES, binary_mask, propensity_table
from tomarena.envs import GAMES
from tomarena.errors import ConfigError

LAMBDA_MAX = 50.0
NASH_COLUMNS = ["model", "framing", "game", "p_cooperate", "nearest_equilibrium", "distance_nearest",
                "symmetric_equilibrium", "distance_symmetric", "distance_payoff_dominant", "distance_risk_dominant"]
QRE_COLUMNS = ["model", "framing", "game", "p_cooperate", "lambda", "p_qre", "at_bound"]


def _rstp(game: Any) -> dict[str, float]:
    rstp = getattr(game, "rstp", None)
    if rstp is None:
        raise ConfigError(f"game {getattr(game, 'id', game)!r} is not a symmetric 2x2 game; equilibrium "
                          "comparison needs R, S, T, P")
    return rstp


def _payoff_dominant(game: Any) -> tuple[int, int] | None:
    """The pure equilibrium that Pareto-dominates every other pure equilibrium, when there are several."""
    eqs = game.pure_equilibria()
    if len(eqs) < 2:
        return None
    for e in eqs:
        pe = game.payoff(e)
        if all(e == o or (min(pe[k] - game.payoff(o)[k] for k in (0, 1)) >= 0 and pe != game.payoff(o))
               for o in eqs):
            return e
    return None


def equilibrium_points(game: Any) -> list[dict[str, Any]]:
    """Every Nash equilibrium as the row player's p(C), with its label, whether it is symmetric, and whether it
    is the payoff- or risk-dominant one (Stag Hunt's selection problem made explicit)."""
    _rstp(game)
    pd_, rd = _payoff_dominant(game), game.risk_dominant()
    points = []
    for eq in game.nash_equilibria():
        (a, b) = eq.strategies
        pure = (int(np.argmax(a)), int(np.argmax(b))) if eq.is_pure else None
        symmetric = bool(abs(a[0] - b[0]) < 1e-9)
        label = eq.label(game.action_labels)
        points.append({"label": label.split(", ")[0] if symmetric else label, "p_cooperate": float(a[0]),
                       "symmetric": symmetric, "payoff_dominant": pure is not None and pure == pd_,
                       "risk_dominant": pure is not None and pure == rd})
    return points


def nash_distance(game: Any, p: float) -> dict[str, Any]:
    """Distances from p(C) to the nearest equilibrium (any player role), to the nearest symmetric one (the
    population view: Snowdrift's mixed one), and to the payoff-/risk-dominant ones (NaN when not defined)."""
    pts = equilibrium_points(game)
    near = min(pts, key=lambda e: abs(p - e["p_cooperate"]))
    sym = [e for e in pts if e["symmetric"]]
    near_sym = min(sym, key=lambda e: abs(p - e["p_cooperate"])) if sym else None

    def dist(flag: str) -> float:
        hit = [e for e in pts if e[flag]]
        return abs(p - hit[0]["p_cooperate"]) if hit else math.nan

    return {"nearest_equilibrium": near["label"], "distance_nearest": abs(p - near["p_cooperate"]),
            "symmetric_equilibrium": near_sym["label"] if near_sym else "",
            "distance_symmetric": abs(p - near_sym["p_cooperate"]) if near_sym else math.nan,
            "distance_payoff_dominant": dist("payoff_dominant"), "distance_risk_dominant": dist("risk_dominant")}


def per_symmetric_game(props: Any, measure: Callable[[Any, float], dict[str, Any]], columns: list[str]) -> Any:
    """A table with `measure(game, p(C))` beside model, framing, game and p(C), for every row of a propensity table
    whose game is a registered symmetric 2x2 game (rows with a NaN p(C) are left out)."""
    import pandas as pd

    rows = []
    for r in props.itertuples(index=False):
        g = GAMES.get(r.game) if r.game in GAMES.ids() else None
        if g is None or getattr(g, "rstp", None) is None or not math.isfinite(r.p_cooperate):
            continue
        rows.append({"model": r.model, "framing": r.framing, "game": r.game, "p_cooperate": r.p_cooperate,
                     **measure(g, float(r.p_cooperate))})
    return pd.DataFrame(rows, columns=columns)


def nash_table(props: Any) -> Any:
    """nash_distance for every row of a propensity table whose game is a registered symmetric 2x2 game."""
    return per_symmetric_game(props, nash_distance, NASH_COLUMNS)


def _advantage(game: Any, p: np.ndarray | float) -> Any:
    """Expected payoff of C minus D against a co-player who plays C with probability p."""
    v = _rstp(game)
    return p * (v["R"] - v["T"]) + (1 - p) * (v["S"] - v["P"])


def qre_fixed_points(game: Any, lam: float) -> list[float]:
    """All symmetric logit-QRE probabilities of C at rationality `lam` (several in coordination games)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    def f(p: Any) -> Any:
        return p - expit(lam * _advantage(game, p))

    grid = np.linspace(0.0, 1.0, 2001)
    vals = f(grid)
    roots = [float(x) for x in grid[vals == 0]]
    for i in np.nonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) < 0)[0]:
        roots.append(float(brentq(f, grid[i], grid[i + 1], xtol=1e-14)))
    out: list[float] = []
    for r in sorted(roots):
        if not out or r - out[-1] > 1e-9:
            out.append(r)
    return out


def qre_p(game: Any, lam: float, near: float | None = None) -> float:
    """The symmetric logit-QRE p(C) at `lam`; with several, the one nearest `near` (default: the first)."""
    pts = qre_fixed_points(game, lam)
    return min(pts, key=lambda x: abs(x - near)) if near is not None else pts[0]


def _cross_entropy(p_obs: float, q: float) -> float:
    q = min(max(q, 1e-12), 1 - 1e-12)
    return -(p_obs * math.log(q) + (1 - p_obs) * math.log(1 - q))


def fit_qre_lambda(game: Any, p_obs: float, lam_max: float = LAMBDA_MAX) -> dict[str, float | bool]:
    """Max-likelihood logit-QRE lambda for an observed p(C): the closed form logit(p)/advantage(p) when it is a
    valid (non-negative, bounded) lambda, else a bounded scalar search; returns lambda, fitted p and at_bound."""
    from scipy.optimize import minimize_scalar

    if not 0.0 <= p_obs <= 1.0:
        raise ConfigError(f"p(C) must lie in [0, 1], got {p_obs}")
    adv = float(_advantage(game, p_obs))
    if 0.0 < p_obs < 1.0 and adv != 0.0:
        lam = math.log(p_obs / (1 - p_obs)) / adv
        if 0.0 <= lam <= lam_max:
            return {"lambda": lam, "p_qre": p_obs, "at_bound": False}
    if p_obs in (0.0, 1.0) and (adv > 0) == (p_obs == 1.0) and adv != 0.0:  # pure best reply: lambda -> infinity
        return {"lambda": lam_max, "p_qre": qre_p(game, lam_max, p_obs), "at_bound": True}
    res = minimize_scalar(lambda x: _cross_entropy(p_obs, qre_p(game, x, p_obs)), bounds=(0.0, lam_max),
                          method="bounded", options={"xatol": 1e-6})
    lam = float(res.x)
    best = [(lam, qre_p(game, lam, p_obs))] + [(b, qre_p(game, b, p_obs)) for b in (0.0, lam_max)]
    lam, q = min(best, key=lambda t: _cross_entropy(p_obs, t[1]))
    return {"lambda": lam, "p_qre": q, "at_bound": lam <= 1e-6 or lam >= lam_max * (1 - 1e-3)}


def qre_table(props: Any) -> Any:
    """Fitted lambda per model x game x framing (symmetric 2x2 games of the registry)."""
    return per_symmetric_game(props, fit_qre_lambda, QRE_COLUMNS)


STATES = ("CC", "CD", "DC", "DD")


def fingerprints(frame: Any) -> Any:
    """Memory-one fingerprints per model: P(C | own and co-player's previous executed actions), from two-player
    repeated-play rows of C/D games (exact p_cooperate when known, else the chosen action); with counts n."""
    import pandas as pd

    df = frame[(frame["kind"] == "tournament") & binary_mask(frame)] if len(frame) else frame
    cols = ["model", "state", "p_cooperate", "n"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    prev = df[["episode_id", "round", "agent", "action"]].assign(round=df["round"] + 1)
    total = prev.groupby(["episode_id", "round"])["action"].agg(["sum", "size"]).reset_index()
    cur = df.merge(prev.rename(columns={"action": "own_prev"}), on=["episode_id", "round", "agent"])
    cur = cur.merge(total, on=["episode_id", "round"])
    cur = cur[(cur["size"] == 2) & ~cur["parse_status"].isin(INVALID_STATUSES)]
    if cur.empty:
        return pd.DataFrame(columns=cols)
    opp = cur["sum"] - cur["own_prev"]
    cur = cur.assign(state=np.where(cur["own_prev"] == 0, "C", "D") + np.where(opp == 0, "C", "D"),
                     coop=cur["p_cooperate"].where(cur["p_cooperate"].notna(), (cur["intended_action"] == 0) * 1.0))
    out = cur.groupby(["policy", "state"])["coop"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"policy": "model", "mean": "p_cooperate", "size": "n"})[cols]


def cooperation_over_rounds(frame: Any) -> Any:
    """p(C) per model x game x round over repeated-play rows (framings pooled), with the same rules as the
    propensity table."""
    df = frame[frame["kind"] == "tournament"] if len(frame) else frame
    return propensity_table(df.assign(framing="*"), by_round=True).drop(columns=["framing"])
