"""Transfer that a level shift cannot fake: the student's alignment with its teacher beside null students computed by
the same code, pattern metrics a level shift cannot move, and two-level bootstrap intervals.

Null students (`who`): `base` (the untrained student: improvement 0 by definition), `null_constant` (answers the
teacher's mean P(C) over the training scenarios everywhere) and `null_framing` (the teacher's mean per training
framing where that framing was trained, else the constant). A student shows transfer on a set only where it beats the
best of them: `margin_over_best_null` is the student's gap closure minus the best null's, with a paired interval.

Metrics per (set, who): the study's `mean_improvement` and `median_improvement` (100 (s - b) / (t - b) per scenario),
`gap_closure` = 1 - mean|s - t| / mean|b - t| (bounded above by 1, robust to a tiny gap), Pearson `r`(s, t), and
`r_within_framing` / `r_within_game`: r after removing each framing's (game's) mean from both, i.e. does it read the
game within a framing (the framing within a game)?

Uncertainty has two levels: each bootstrap draw resamples the scenarios of a set, and inside each scenario the answers
of every sampled estimate (binomial with the cell's n for counted P(C); the recorded values for donations); exact
probabilities are resampled over scenarios only. Every interval is the 2.5-97.5 percentile of the draws, and every
metric of one draw is computed on the same resampled cells (so margins are paired).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

ROLES = ("base", "student", "teacher")
WHO = ("student", "base", "null_constant", "null_framing")
NULLS = ("base", "null_constant", "null_framing")
METRICS = ("mean_improvement", "median_improvement", "gap_closure", "r", "r_within_framing", "r_within_game",
           "margin_over_best_null")
CSV_COLUMNS = ["set", "who", "metric", "value", "ci_low", "ci_high"]
#: extra columns after CSV_COLUMNS: how many scenarios, whether the set is the student's own training prompts
EXTRA_COLUMNS = ["n_scenarios", "training_fit"]
N_BOOT = 4000
#: sets in the order they are shown (others follow in the order they appear)
SET_ORDER = ("in_sample", "in_sample_holdout", "oos_framings", "oos_games", "donation")
#: the metric the margin over the nulls is taken on: bounded, and defined for every null
MARGIN_METRIC = "gap_closure"


@dataclass(frozen=True)
class Nulls:
    """The null students of one analysis: a constant P(C) and per trained framing its mean (teacher's values)."""

    constant: float
    by_framing: Mapping[str, float]

    def values(self, framings: Iterable[str]) -> dict[str, np.ndarray]:
        """{null_constant, null_framing} P(C) for each scenario's framing."""
        fr = list(framings)
        return {"null_constant": np.full(len(fr), self.constant),
                "null_framing": np.array([self.by_framing.get(f, self.constant) for f in fr], dtype=float)}


def fit_nulls(table: Any, trained: Iterable[tuple[str, str]] | None = None) -> Nulls:
    """Nulls from the teacher's values on the trained scenarios (default: every `in_sample` row of `table`)."""
    rows = table[table["set"] == "in_sample"]
    if trained is not None:
        keep = set(map(tuple, trained))
        rows = table[[(f, g) in keep for f, g in zip(table["framing"], table["game"], strict=True)]]
    if rows.empty:
        return Nulls(math.nan, {})
    return Nulls(float(rows["p_teacher"].mean()), rows.groupby("framing")["p_teacher"].mean().to_dict())


def _codes(labels: Any) -> np.ndarray:
    _, inv = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    return inv.reshape(-1)


def _rowwise_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x with the same row of y (NaN where either is constant)."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    return np.where(den > 1e-12, r, np.nan)


def _demean(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """x minus the mean of its group, per row; groups (same shape, int codes) may differ between rows."""
    k = int(groups.max()) + 1 if groups.size else 0
    onehot = groups[..., None] == np.arange(k)
    counts = onehot.sum(axis=1)
    sums = np.einsum("bs,bsk->bk", x, onehot)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return x - np.einsum("bk,bsk->bs", means, onehot)


def _metrics(x: np.ndarray, b: np.ndarray, t: np.ndarray, fr: np.ndarray, gm: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of a candidate student x against (b, t), per row of (draws x scenarios) arrays; a draw where a
    metric is undefined (every gap 0, a constant pattern) gets NaN."""
    gap = t - b
    nan = np.full(x.shape[0], np.nan)
    pattern = x.shape[1] >= 3
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        imp = np.where(gap != 0, 100.0 * (x - b) / gap, np.nan)
        mean_gap = np.abs(gap).mean(axis=1)
        return {"mean_improvement": np.nanmean(imp, axis=1),
                "median_improvement": np.nanmedian(imp, axis=1),
                "gap_closure": np.where(mean_gap > 0, 1.0 - np.abs(x - t).mean(axis=1) / mean_gap, np.nan),
                "r": _rowwise_r(x, t) if pattern else nan,
                "r_within_framing": _rowwise_r(_demean(x, fr), _demean(t, fr)) if pattern else nan,
                "r_within_game": _rowwise_r(_demean(x, gm), _demean(t, gm)) if pattern else nan}


def _draw(p: np.ndarray, n: np.ndarray, idx: np.ndarray, rng: np.random.Generator,
          samples: np.ndarray | None) -> np.ndarray:
    """One model's resampled estimates at the resampled scenarios: binomial where counted, the mean of a resample
    of the recorded values where given (one-scenario sets), the exact value otherwise."""
    pv, nv = p[idx], n[idx]
    if samples is not None and samples.size:
        means = rng.choice(samples, size=(idx.shape[0], samples.size)).mean(axis=1)
        return np.broadcast_to(means[:, None], idx.shape).copy()
    counted = np.isfinite(nv) & (nv > 0)
    if not counted.any():
        return pv
    out = pv.copy()
    ns = nv[counted].astype(np.int64)
    out[counted] = rng.binomial(ns, np.clip(pv[counted], 0.0, 1.0)) / ns
    return out


def _with_margin(metrics: dict[str, dict[str, np.ndarray]], student: str) -> None:
    with warnings.catch_warnings():  # every null undefined in a draw: the margin is NaN there
        warnings.simplefilter("ignore", RuntimeWarning)
        best = np.nanmax(np.stack([metrics[w][MARGIN_METRIC] for w in NULLS]), axis=0)
    metrics[student]["margin_over_best_null"] = metrics[student][MARGIN_METRIC] - best


def _all_metrics(cols: Mapping[str, np.ndarray], fr: np.ndarray, gm: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    b, t = cols["base"], cols["teacher"]
    out = {w: _metrics(cols[w] if w != "base" else b, b, t, fr, gm) for w in WHO}
    _with_margin(out, "student")
    return out


def set_rows(cells: Any, nulls: Nulls, *, n_boot: int = N_BOOT, seed: int = 0,
             samples: Mapping[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Rows (who, metric, value, ci_low, ci_high) of one scenario set: point values and two-level intervals.
    `cells` has framing, game, p_base/p_student/p_teacher and n_base/n_student/n_teacher (NaN = exact)."""
    p = {r: cells[f"p_{r}"].to_numpy(dtype=float) for r in ROLES}
    n = {r: (cells[f"n_{r}"].to_numpy(dtype=float) if f"n_{r}" in cells else np.full(len(cells), np.nan))
         for r in ROLES}
    nv = nulls.values(cells["framing"])
    fr, gm = _codes(cells["framing"]), _codes(cells["game"])
    ident = np.arange(len(cells))[None, :]
    point = _all_metrics({**{r: p[r][None, :] for r in ROLES}, **{k: v[None, :] for k, v in nv.items()}},
                         fr[ident], gm[ident])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(cells), size=(n_boot, len(cells)))
    drawn = {r: _draw(p[r], n[r], idx, rng, (samples or {}).get(r)) for r in ROLES}
    boot = _all_metrics({**drawn, **{k: v[idx] for k, v in nv.items()}}, fr[idx], gm[idx])
    rows = []
    for who, ms in point.items():
        for metric in METRICS:
            if metric not in ms:
                continue
            lo, hi = _interval(boot[who][metric])
            rows.append({"who": who, "metric": metric, "value": float(ms[metric][0]), "ci_low": lo, "ci_high": hi})
    return rows


def _interval(draws: np.ndarray) -> tuple[float, float]:
    finite = draws[~np.isnan(draws)]
    if finite.size < max(10, draws.size // 2):
        return (math.nan, math.nan)
    lo, hi = np.quantile(finite, [0.025, 0.975])
    return (float(lo), float(hi))


def transfer_table(table: Any, *, trained: Iterable[tuple[str, str]] | None = None,
                   training_fit: Iterable[str] = (), samples: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                   donation_scale: float = math.nan, prefix: str = "", n_boot: int = N_BOOT,
                   seed: int = 0) -> Any:
    """Rows `set, who, metric, value, ci_low, ci_high, n_scenarios, training_fit` for every set of an alignment
    scenario table. `trained` names the scenarios the student was trained on (default: the in_sample set), from
    which the nulls come; sets in `training_fit` are flagged. Donation nulls give `donation_scale` (the endowment)
    times the constant share; `samples` = {set: {role: recorded values}}; `prefix` prefixes `who` (e.g. "study")."""
    import pandas as pd

    nulls = fit_nulls(table, trained)
    fit = set(training_fit)
    out = []
    names = sorted(table["set"].unique(), key=lambda s: SET_ORDER.index(s) if s in SET_ORDER else len(SET_ORDER))
    for name in names:
        cells = table[table["set"] == name]
        set_nulls = nulls if name != "donation" else Nulls(nulls.constant * donation_scale, {})
        seed_s = seed + sum(map(ord, str(name)))
        for row in set_rows(cells, set_nulls, n_boot=n_boot, seed=seed_s, samples=(samples or {}).get(name)):
            who = f"{prefix}_{row['who']}" if prefix and row["who"] != "student" else (prefix or row["who"])
            out.append({"set": name, **row, "who": who, "n_scenarios": len(cells), "training_fit": name in fit})
    return pd.DataFrame(out, columns=CSV_COLUMNS + EXTRA_COLUMNS)


def value(rows: Any, set_: str, who: str, metric: str) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of one row of a transfer table (NaNs when absent)."""
    hit = rows[(rows["set"] == set_) & (rows["who"] == who) & (rows["metric"] == metric)]
    if hit.empty:
        return (math.nan, math.nan, math.nan)
    r = hit.iloc[0]
    return (float(r["value"]), float(r["ci_low"]), float(r["ci_high"]))


def best_null(rows: Any, set_: str, prefix: str = "") -> str:
    """Which null has the highest point gap closure on a set (the one the margin is taken over)."""
    names = [f"{prefix}_{w}" if prefix else w for w in NULLS]
    vals = {w: value(rows, set_, w, MARGIN_METRIC)[0] for w in names}
    finite = {w: v for w, v in vals.items() if not math.isnan(v)}
    return max(finite, key=finite.__getitem__) if finite else ""


HEAD_METRICS = ("gap_closure", "mean_improvement", "median_improvement", "r", "r_within_framing", "r_within_game",
                "margin_over_best_null")


def _figures(rows: Any, set_: str, who: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in HEAD_METRICS:
        v, lo, hi = value(rows, set_, who, metric)
        if not math.isnan(v) or metric != "margin_over_best_null":
            out[metric], out[f"{metric}_ci"] = v, [lo, hi]
    return out


def headline(rows: Any, study_rows: Any | None = None) -> dict[str, dict[str, Any]]:
    """{set: figures} of a transfer table: the student's metrics with intervals, the base's and every null's, the
    best null and the margin over it, whether the set is a training fit; the study's own under "study"."""
    out: dict[str, dict[str, Any]] = {}
    for set_, sub in rows.groupby("set", sort=False):
        h = {"n_scenarios": int(sub["n_scenarios"].iloc[0]), "training_fit": bool(sub["training_fit"].iloc[0]),
             "best_null": best_null(rows, set_), **{w: _figures(rows, set_, w) for w in WHO}}
        if study_rows is not None and (study_rows["set"] == set_).any():
            h["study"] = {"best_null": best_null(study_rows, set_, "study"),
                          **{w: _figures(study_rows, set_, "study" if w == "student" else f"study_{w}")
                             for w in WHO}}
        out[str(set_)] = h
    return out


def _f(v: Any, spec: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _ci(fig: Mapping[str, Any], metric: str, spec: str = ".2f", unit: str = "") -> str:
    lo, hi = fig.get(f"{metric}_ci", [math.nan, math.nan])
    return f"{_f(fig.get(metric, math.nan), spec)}{unit} [{_f(lo, spec)}, {_f(hi, spec)}]"


def _line(label: str, h: Mapping[str, Any], best: str) -> str:
    s, b = h["student"], h["base"]
    best_fig = h.get(best.removeprefix("study_"), {}) if best else {}
    return (f"  {label:<8} gap closure {_ci(s, 'gap_closure')}  vs best null {best.removeprefix('study_') or 'n/a'}"
            f" {_f(best_fig.get('gap_closure', math.nan))}: margin {_ci(s, 'margin_over_best_null')}\n"
            f"  {'':<8} improvement {_ci(s, 'mean_improvement', '.2f', '%')} (constant student "
            f"{_f(h['null_constant'].get('mean_improvement', math.nan))}%)  median "
            f"{_f(s.get('median_improvement', math.nan))}%" + _pattern(s, b))


def _pattern(s: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """r, r within framing and r within game beside the base's, where defined (a set of one scenario has none)."""
    if math.isnan(s.get("r", math.nan)) and math.isnan(b.get("r", math.nan)):
        return ""
    return (f"  r {_ci(s, 'r')} (base {_f(b.get('r', math.nan))})  r within framing "
            f"{_f(s.get('r_within_framing', math.nan))} (base {_f(b.get('r_within_framing', math.nan))})  within "
            f"game {_f(s.get('r_within_game', math.nan))} (base {_f(b.get('r_within_game', math.nan))})")


def format_headline(heads: Mapping[str, Mapping[str, Any]]) -> str:
    """The one text rendering of an alignment headline (report, `analyze alignment`, pipeline): per set the
    student's gap closure and its margin over the best null student with intervals, the study's improvement beside
    the constant student's, r and the within-framing / within-game r beside the base's, and the study's own."""
    if not heads:
        return "alignment: no headline (teacher, base and student roles are needed)"
    lines = ["alignment with the teacher per scenario set (95% two-level bootstrap intervals; a null student is "
             "the base, a constant at the teacher's training mean, or the teacher's training-framing means)"]
    for set_, h in heads.items():
        fit = ("  TRAINING FIT: the student was trained on these very prompts, not transfer"
               if h.get("training_fit") else "")
        lines.append(f"{set_} ({h.get('n_scenarios')} scenarios){fit}")
        lines.append(_line("student", h, h.get("best_null", "")))
        if h.get("study"):
            lines.append(_line("study", h["study"], h["study"].get("best_null", "")))
    return "\n".join(lines)


def headline_frame(heads: Mapping[str, Mapping[str, Any]]) -> Any:
    """The headline as a table (the report's summary): a row per set and model (the run's student, the study's)."""
    import pandas as pd

    rows = []
    for set_, h in heads.items():
        for label, fig in (("student", h), ("study", h.get("study"))):
            if not fig:
                continue
            s, b, best = fig["student"], fig["base"], fig.get("best_null", "").removeprefix("study_")
            rows.append({"set": set_, "model": label, "scenarios": h.get("n_scenarios"),
                         "training fit": "yes" if h.get("training_fit") else "",
                         "gap closure [95% CI]": _ci(s, "gap_closure"),
                         "best null (gap closure)": f"{best} ({_f(fig.get(best, {}).get('gap_closure', math.nan))})",
                         "margin over best null [95% CI]": _ci(s, "margin_over_best_null"),
                         "improvement % [95% CI]": _ci(s, "mean_improvement", ".1f"),
                         "constant student %": _f(fig["null_constant"].get("mean_improvement", math.nan), ".1f"),
                         "r (base)": f"{_f(s.get('r', math.nan))} ({_f(b.get('r', math.nan))})",
                         "r within framing (base)": f"{_f(s.get('r_within_framing', math.nan))} "
                                                    f"({_f(b.get('r_within_framing', math.nan))})",
                         "r within game (base)": f"{_f(s.get('r_within_game', math.nan))} "
                                                 f"({_f(b.get('r_within_game', math.nan))})"})
    return pd.DataFrame(rows)
