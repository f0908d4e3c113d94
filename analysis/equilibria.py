"""Behaviour against stage-game theory: distance of p(C) to the Nash set (with explicit equilibrium selection) and
the symmetric logit QRE, per cell and as one lambda per model fitted jointly by maximum likelihood. Feed them
one-shot rows only (tomarena.analysis.repeated.one_shot_rows); repeated play is judged as repeated play there
(cooperation by round and memory-one fingerprints, with match-bootstrap intervals)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tomarena.envs import GAMES
from tomarena.errors import ConfigError

LAMBDA_MAX = 50.0
NASH_COLUMNS = ["model", "framing", "game", "p_cooperate", "nearest_equilibrium", "distance_nearest",
                "symmetric_equilibrium", "distance_symmetric", "distance_payoff_dominant", "distance_risk_dominant"]
QRE_COLUMNS = ["model", "framing", "game", "p_cooperate", "lambda", "p_qre", "at_bound", "branch", "verdict"]
QRE_MODEL_COLUMNS = ["model", "lambda", "ci_low", "ci_high", "at_bound", "loglik", "loglik_uniform", "p_constant",
                     "loglik_constant", "loglik_saturated", "n_cells", "n_obs", "n_unexplained", "n_off_principal",
                     "weights"]
#: the per-cell verdict of a p(C) that no symmetric logit QRE with lambda >= 0 reaches (never reported as lambda 0)
NO_LAMBDA = "no λ ≥ 0"


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


def _symmetric_game(game_id: str) -> Any:
    """The registered game of that id when it is a symmetric 2x2 game, else None."""
    g = GAMES.get(game_id) if game_id in GAMES.ids() else None
    return g if g is not None and getattr(g, "rstp", None) is not None else None


def per_symmetric_game(props: Any, measure: Callable[[Any, float], dict[str, Any]], columns: list[str]) -> Any:
    """A table with `measure(game, p(C))` beside model, framing, game and p(C), for every row of a propensity table
    whose game is a registered symmetric 2x2 game (rows with a NaN p(C) are left out)."""
    import pandas as pd

    rows = []
    for r in props.itertuples(index=False):
        g = _symmetric_game(r.game)
        if g is None or not math.isfinite(r.p_cooperate):
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


def principal_interval(game: Any) -> tuple[float, float]:
    """The p(C) values the principal QRE branch (the continuation from p = 1/2 at lambda = 0) covers for lambda in
    [0, inf): from 1/2 toward the action favoured at 1/2, up to the first mixed equilibrium or the pure end; the
    branch is monotone there, one p(C) per lambda. Stag Hunt's other branches (toward (D,D)) are not on it."""
    v = _rstp(game)
    a, b = float(v["S"] - v["P"]), float((v["R"] - v["T"]) - (v["S"] - v["P"]))  # advantage(p) = a + b p
    at_half = a + b / 2
    zero = -a / b if b != 0 else math.nan
    if at_half > 0:
        return (0.5, zero if 0.5 < zero < 1.0 else 1.0)
    if at_half < 0:
        return (zero if 0.0 < zero < 0.5 else 0.0, 0.5)
    return (0.5, 0.5)


def principal_qre_logit(game: Any, lam: float) -> float:
    """logit of the principal-branch QRE p(C) at `lam` (exact in both tails, where p or 1 - p underflows)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    lo, hi = principal_interval(game)
    if lam == 0.0 or lo == hi:
        return 0.0
    v = _rstp(game)
    bound = lam * max(abs(v["S"] - v["P"]), abs(v["R"] - v["T"])) + 1.0  # |logit p| = lam |advantage| < bound
    end = lo if hi == 0.5 else hi
    far = math.log(end / (1 - end)) if 0.0 < end < 1.0 else math.copysign(bound, end - 0.5)
    a, b = sorted((0.0, far))
    return float(brentq(lambda x: x - lam * _advantage(game, expit(x)), a, b, xtol=1e-13, rtol=4 * np.finfo(float).eps))


def principal_qre_p(game: Any, lam: float) -> float:
    """The symmetric logit-QRE p(C) at `lam` on the principal branch (unique in the PD, Snowdrift and Delight;
    in Stag Hunt the branch from 1/2 that ends at the risk-dominant equilibrium)."""
    from scipy.special import expit

    return float(expit(principal_qre_logit(game, lam)))


def _cell_lambda(game: Any, p: float) -> float:
    """The lambda >= 0 at which p is a symmetric QRE p(C) on some branch (inf: a Nash limit), NaN when none is."""
    adv = float(_advantage(game, p))
    if p in (0.0, 1.0):
        return math.inf if adv != 0 and (adv > 0) == (p == 1.0) else math.nan
    if adv == 0.0:
        return 0.0 if p == 0.5 else math.inf
    lam = math.log(p / (1 - p)) / adv
    return lam if lam >= 0 else math.nan


def fit_qre_lambda(game: Any, p_obs: float, lam_max: float = LAMBDA_MAX) -> dict[str, Any]:
    """The lambda >= 0 that makes p(C) a symmetric logit-QRE fixed point (closed form logit(p)/advantage(p)):
    branch = principal or other (Stag Hunt's D-side branches); a p(C) no lambda >= 0 reaches (P(C) > 1/2 in a PD)
    gets lambda NaN and verdict 'no λ ≥ 0', never lambda 0; at_bound: a pure best reply or mixed equilibrium."""
    if not 0.0 <= p_obs <= 1.0:
        raise ConfigError(f"p(C) must lie in [0, 1], got {p_obs}")
    lam = _cell_lambda(game, p_obs)
    if math.isnan(lam):
        return {"lambda": math.nan, "p_qre": math.nan, "at_bound": False, "branch": "", "verdict": NO_LAMBDA}
    lo, hi = principal_interval(game)
    principal = lo - 1e-12 <= p_obs <= hi + 1e-12
    at_bound = lam > lam_max
    lam = min(lam, lam_max)
    p_qre = p_obs if not at_bound else (principal_qre_p(game, lam) if principal else qre_p(game, lam, p_obs))
    verdict = "limit λ → ∞" if at_bound else ("uniform (λ = 0)" if lam == 0 else "fitted")
    return {"lambda": lam, "p_qre": p_qre, "at_bound": at_bound, "branch": "principal" if principal else "other",
            "verdict": verdict}


def qre_table(props: Any) -> Any:
    """Per-cell lambda, model x game x framing (symmetric 2x2 games of the registry), with the honest verdict:
    'no λ ≥ 0' where no symmetric QRE reaches the observed p(C); the per-model joint fit is `qre_model_table`."""
    return per_symmetric_game(props, fit_qre_lambda, QRE_COLUMNS)


def qre_loglik(cells: Sequence[tuple[Any, float, float]], lam: float) -> float:
    """Log-likelihood of (game, n_cooperate, n) cells (fractional counts allowed) under the principal-branch
    symmetric logit QRE at `lam`, binomial coefficients left out."""
    from scipy.special import log_expit

    total = 0.0
    for game, k, n in cells:
        x = principal_qre_logit(game, lam)
        total += k * float(log_expit(x)) + (n - k) * float(log_expit(-x))
    return total


def _bernoulli_ll(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> float:
    """sum of k log p + (n - k) log(1 - p), with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(k > 0, k * np.log(p), 0.0) + np.where(n - k > 0, (n - k) * np.log1p(-p), 0.0)
    return float(terms.sum())


def _by_game(cells: Sequence[tuple[Any, float, float]]) -> list[tuple[Any, float, float]]:
    """Cells of one game share the QRE p(C): their counts add up (one root-finding per game and lambda)."""
    acc: dict[str, list[Any]] = {}
    for game, k, n in cells:
        acc.setdefault(game.id, [game, 0.0, 0.0])
        acc[game.id][1] += k
        acc[game.id][2] += n
    return [tuple(v) for v in acc.values()]  # type: ignore[misc]


def fit_qre_joint(cells: Sequence[tuple[Any, float, float]], lam_max: float = LAMBDA_MAX,
                  level: float = 0.95) -> dict[str, Any]:
    """Max-likelihood lambda shared by (game, n_cooperate, n) cells on the principal QRE branch (grid over
    [0, lam_max], then a bounded refinement), its profile-likelihood CI, and the uniform, constant and saturated
    log-likelihoods; a CI end at 0 or lam_max means the profile did not drop that far."""
    from scipy.optimize import brentq, minimize_scalar
    from scipy.stats import chi2

    cells = [c for c in cells if c[2] > 0]
    if not cells:
        raise ConfigError("the joint QRE fit needs at least one cell with n > 0")
    games = _by_game(cells)
    k = np.array([c[1] for c in cells], dtype=float)
    n = np.array([c[2] for c in cells], dtype=float)
    grid = np.concatenate([[0.0], np.geomspace(1e-3, lam_max, 150)])
    ll = np.array([qre_loglik(games, x) for x in grid])
    i = int(np.argmax(ll))
    near = (float(grid[max(i - 1, 0)]), float(grid[min(i + 1, grid.size - 1)]))
    res = minimize_scalar(lambda x: -qre_loglik(games, x), bounds=near, method="bounded", options={"xatol": 1e-9})
    lam, best = (float(res.x), -float(res.fun)) if -res.fun >= ll[i] else (float(grid[i]), float(ll[i]))
    cut = best - chi2.ppf(level, 1) / 2

    def drop(x: float) -> float:
        return qre_loglik(games, x) - cut

    lo = 0.0 if drop(0.0) >= 0 or lam == 0.0 else float(brentq(drop, 0.0, lam, xtol=1e-10))
    hi = lam_max if drop(lam_max) >= 0 else float(brentq(drop, lam, lam_max, xtol=1e-10))
    p_const = float(k.sum() / n.sum())
    return {"lambda": lam, "ci_low": lo, "ci_high": hi, "at_bound": lam >= lam_max * (1 - 1e-6), "loglik": best,
            "loglik_uniform": float(n.sum() * math.log(0.5)), "p_constant": p_const,
            "loglik_constant": _bernoulli_ll(k, n, np.full_like(k, p_const)),
            "loglik_saturated": _bernoulli_ll(k, n, k / n), "n_cells": len(cells), "n_obs": float(n.sum())}


def qre_cells(props: Any, exact_weight: str = "one") -> Any:
    """The likelihood's data per model x framing x game: counted cells give n_cooperate of n_valid (or n_total);
    exact cells give the fractional count (p, 1 - p) times a weight, 1 per cell (`exact_weight='one'`) or its
    n_valid rows."""
    import pandas as pd

    if exact_weight not in ("one", "rows"):
        raise ConfigError(f"exact_weight must be 'one' or 'rows', got {exact_weight!r}")
    rows = []
    for r in props.to_dict("records"):
        game, p = _symmetric_game(r["game"]), float(r["p_cooperate"])
        if game is None or not math.isfinite(p):
            continue
        nv = float(r.get("n_valid", r.get("n_total", math.nan)))  # n_total: the study's shipped counts
        kc = float(r.get("n_cooperate", math.nan))
        counted = r.get("method", "counts") != "exact" and math.isfinite(nv) and nv > 0 and math.isfinite(kc)
        w = nv if counted or (exact_weight == "rows" and math.isfinite(nv) and nv > 0) else 1.0
        rows.append({"model": r["model"], "framing": r["framing"], "game": r["game"], "p_cooperate": p,
                     "k": kc if counted else p * w, "n": w, "weights": "counts" if counted else "exact"})
    return pd.DataFrame(rows, columns=["model", "framing", "game", "p_cooperate", "k", "n", "weights"])


def qre_model_table(props: Any, exact_weight: str = "one", level: float = 0.95) -> Any:
    """One lambda per model, fitted jointly over its one-shot cells (games x framings) by maximum likelihood
    (`fit_qre_joint`, principal branch), beside the uniform and best-constant models; n_unexplained counts the
    cells no lambda >= 0 reaches, n_off_principal those the principal branch never reaches. Exact cells weigh as
    pseudo-counts (`qre_cells`): their CI reflects that weight, not sampling error."""
    import pandas as pd

    cells = qre_cells(props, exact_weight)
    rows = []
    for model, g in cells.groupby("model", sort=True):
        games = [_symmetric_game(x) for x in g["game"]]
        fit = fit_qre_joint(list(zip(games, g["k"], g["n"], strict=True)), level=level)
        verdicts = [fit_qre_lambda(gm, p) for gm, p in zip(games, g["p_cooperate"], strict=True)]
        kinds = sorted(set(g["weights"]))
        rows.append({"model": model, **fit, "n_unexplained": sum(v["verdict"] == NO_LAMBDA for v in verdicts),
                     "n_off_principal": sum(v["branch"] != "principal" for v in verdicts),
                     "weights": kinds[0] if len(kinds) == 1 else "mixed"})
    return pd.DataFrame(rows, columns=QRE_MODEL_COLUMNS)
