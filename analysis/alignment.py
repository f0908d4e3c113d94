"""Alignment of a fine-tuned student with its teacher, per scenario and per scenario set: the study's signed
improvement and bounded companions (gap closure, Jensen-Shannon divergence, Pearson r); `evaluate` adds the null
students, pattern metrics and two-level intervals of analysis.transfer and the headline."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tomarena.analysis import training_fit, transfer
from tomarena.analysis.load import load_runs, roles_from_manifests
from tomarena.analysis.propensity import donation_table, donation_values, propensity_table, scenario_rows
from tomarena.analysis.training_fit import TrainingRecord
from tomarena.envs import GAMES
from tomarena.envs.scenarios import STUDY_SETS, set_of
from tomarena.errors import ConfigError

MIN_GAP = 0.0  # the study's definition: no scenario is left out, however small its teacher-base gap
SMALL_GAP = 0.05  # scenarios whose |p_teacher - p_base| is below this are flagged (their ratio is unstable)
SCENARIO_COLUMNS = ["set", "framing", "game", "p_base", "p_student", "p_teacher", "gap", "small_gap", "excluded",
                    "improvement", "gap_closure", "jsd_base", "jsd_student", "n_base", "n_student", "n_teacher"]


def _kept(gap: float, min_gap: float) -> bool:
    """A ratio over `gap` is defined (gap != 0) and not left out by the caller's `min_gap`."""
    return gap != 0 and abs(gap) + 1e-12 >= min_gap


def improvement(p_base: float, p_student: float, p_teacher: float, min_gap: float = MIN_GAP) -> float:
    """The study's 100*(p_ft - p_base)/(p_teacher - p_base); NaN when the gap is 0 or |gap| < min_gap (which
    leaves the scenario out; the study's definition is min_gap = 0)."""
    gap = p_teacher - p_base
    return 100.0 * (p_student - p_base) / gap if _kept(gap, min_gap) else math.nan


def gap_closure(p_base: float, p_student: float, p_teacher: float, min_gap: float = MIN_GAP) -> float:
    """(|p_b - p_t| - |p_f - p_t|) / |p_b - p_t|: 1 = reached the teacher, 0 = no closer, < 0 = farther."""
    gap = abs(p_base - p_teacher)
    return (gap - abs(p_student - p_teacher)) / gap if _kept(gap, min_gap) else math.nan


def js_divergence(p: float, q: float) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between the choice distributions [p, 1-p] and [q, 1-q]."""
    a, b = np.array([p, 1 - p], dtype=float), np.array([q, 1 - q], dtype=float)
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return max(0.0, 0.5 * kl(a) + 0.5 * kl(b))


def _values(props: Any, model: str, value: str) -> Any:
    sub = props[props["model"] == model]
    if sub.empty:
        known = ", ".join(sorted(map(str, props["model"].unique())))
        raise ConfigError(f"model {model!r} has no rows in the propensity table; models present: {known}")
    return sub.groupby(["framing", "game"])[value].mean()


def _sizes(props: Any, model: str) -> Any:
    """Answers behind each sampled estimate of one model (NaN where the estimate is exact: no sampling error)."""
    sub = props[props["model"] == model]
    n = sub["n_valid"].astype(float) if "n_valid" in sub else sub["framing"].map(lambda _: math.nan)
    if "method" in sub:
        n = n.where(sub["method"] != "exact")
    return n.groupby([sub["framing"], sub["game"]]).sum(min_count=1)


def scenario_table(props: Any, base: str, student: str, teacher: str, *, value: str = "p_cooperate",
                   min_gap: float = MIN_GAP, binary: bool = True, small_gap: float = SMALL_GAP) -> Any:
    """One row per scenario (framing x game) the three models share, with the per-scenario metrics.
    `value` is the compared quantity (p_cooperate, or mean_contribution with binary=False: no JSD); `small_gap`
    flags (never drops) scenarios with a tiny teacher-base gap; `min_gap` > 0 excludes them."""
    import pandas as pd

    pb, pf, pt = (_values(props, m, value) for m in (base, student, teacher))
    nb, nf, nt = (_sizes(props, m) for m in (base, student, teacher))
    joined = pd.concat({"p_base": pb, "p_student": pf, "p_teacher": pt}, axis=1, join="inner")
    sizes = pd.concat({"n_base": nb, "n_student": nf, "n_teacher": nt}, axis=1).reindex(joined.index)
    joined = pd.concat([joined, sizes], axis=1).reset_index()
    rows = []
    for r in joined.itertuples(index=False):
        b, f, t = r.p_base, r.p_student, r.p_teacher
        imp = improvement(b, f, t, min_gap)
        rows.append({"set": set_of(r.game, r.framing), "framing": r.framing, "game": r.game, "p_base": b,
                     "p_student": f, "p_teacher": t, "gap": t - b, "small_gap": bool(abs(t - b) < small_gap),
                     "excluded": bool(math.isnan(imp)),
                     "improvement": imp, "gap_closure": gap_closure(b, f, t, min_gap),
                     "jsd_base": js_divergence(b, t) if binary else math.nan,
                     "jsd_student": js_divergence(f, t) if binary else math.nan,
                     "n_base": r.n_base, "n_student": r.n_student, "n_teacher": r.n_teacher})
    return pd.DataFrame(rows, columns=SCENARIO_COLUMNS)


def _pearson(x: np.ndarray) -> float:
    if len(x) < 2 or np.std(x[:, 0]) == 0 or np.std(x[:, 1]) == 0:
        return math.nan
    return float(np.corrcoef(x[:, 0], x[:, 1])[0, 1])


def summarize(table: Any) -> dict[str, Any]:
    """Point figures of a scenario table: mean/median improvement (excluded scenarios left out and counted; none by
    default), gap closure 1 - mean|s - t| / mean|b - t|, mean JSDs, Pearson r (student and base vs teacher), mean
    p's, small-gap count. Intervals, null students and pattern metrics: analysis.transfer."""
    ok = table[~table["excluded"]]
    imp = ok["improvement"].to_numpy(dtype=float)
    ft = table[["p_student", "p_teacher"]].to_numpy(dtype=float)
    bt = table[["p_base", "p_teacher"]].to_numpy(dtype=float)
    gap = float(np.abs(ok["p_teacher"] - ok["p_base"]).mean()) if len(ok) else math.nan
    return {
        "n_scenarios": len(table), "n_excluded": int(table["excluded"].sum()),
        "n_small_gap": int(table["small_gap"].sum()),
        "mean_improvement": float(imp.mean()) if imp.size else math.nan,
        "median": float(np.median(imp)) if imp.size else math.nan,
        "gap_closure": 1 - float(np.abs(ok["p_student"] - ok["p_teacher"]).mean()) / gap if gap else math.nan,
        "jsd_base": float(table["jsd_base"].mean()) if len(table) else math.nan,
        "jsd_student": float(table["jsd_student"].mean()) if len(table) else math.nan,
        "pearson_r": _pearson(ft), "pearson_r_base": _pearson(bt),
        "mean_base": float(table["p_base"].mean()) if len(table) else math.nan,
        "mean_student": float(table["p_student"].mean()) if len(table) else math.nan,
        "mean_teacher": float(table["p_teacher"].mean()) if len(table) else math.nan,
    }


def summarize_sets(table: Any) -> dict[str, dict[str, Any]]:
    """`summarize` for every set present in the table (study sets first), plus "all" over every binary row."""
    names = list(dict.fromkeys([*STUDY_SETS, *table["set"].unique()]))
    out = {s: summarize(table[table["set"] == s]) for s in names if (table["set"] == s).any()}
    binary = table[table["set"] != "donation"]
    if len(binary):
        out["all"] = summarize(binary)
    return out


def donation_min_gap(min_gap: float) -> float:
    """The gap threshold for donations in dollars: min_gap times the registered donation game's endowment."""
    return min_gap * float(GAMES.get("donation").endowment)


def alignment_tables(frame: Any, roles: Mapping[str, str], *, min_gap: float = MIN_GAP) -> Any:
    """Scenario table from trace rows (one-shot sweep rows when present): binary games (p(C)) and donation games
    (mean contribution)."""
    import pandas as pd

    _check_roles(roles)
    frame = scenario_rows(frame)
    args = (roles["base"], roles["student"], roles["teacher"])
    parts = []
    props = propensity_table(frame)
    if len(props):
        parts.append(scenario_table(props, *args, min_gap=min_gap))
    don = donation_table(frame)
    if len(don):
        t = scenario_table(don, *args, value="mean_contribution", min_gap=donation_min_gap(min_gap), binary=False,
                           small_gap=donation_min_gap(SMALL_GAP))
        t["set"] = "donation"
        parts.append(t)
    return donation_sizes_cleared(pd.concat(parts, ignore_index=True)) if parts else \
        pd.DataFrame(columns=SCENARIO_COLUMNS)


def donation_sizes_cleared(table: Any) -> Any:
    """The scenario table with the donation rows' answer counts blanked: a mean in dollars is not a binomial
    proportion, so its answers are resampled from the recorded values instead (see analysis.transfer)."""
    out = table.copy()
    for role in ("base", "student", "teacher"):
        out.loc[out["set"] == "donation", f"n_{role}"] = math.nan
    return out


def donation_samples(frame: Any, roles: Mapping[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """{"donation": {role: chosen amounts}} of the one-shot donation rows, for roles whose answers were sampled
    (exactly scored donations have no sampling error to resample)."""
    frame = scenario_rows(frame)
    don = donation_table(frame)
    out = {}
    for role in ("base", "student", "teacher"):
        rows = don[don["model"] == roles.get(role)]
        if len(rows) and (rows["method"] == "counts").all():
            out[role] = np.array(donation_values(frame, roles[role]), dtype=float)
    return {"donation": out} if out else {}


def _check_roles(roles: Mapping[str, str]) -> None:
    missing = [r for r in ("teacher", "base", "student") if not roles.get(r)]
    if missing:
        raise ConfigError(f"alignment needs the roles teacher, base and student; missing: {', '.join(missing)} "
                          "(pass --teacher/--base/--student or set 'roles' in the run manifest)")


@dataclass(frozen=True)
class Alignment:
    """Everything the alignment of one student says: the per-scenario table, the transfer rows (metrics of the
    student, the base and the null students with two-level intervals) and the headline beside the study's own."""

    scenarios: Any
    rows: Any
    headline: dict[str, dict[str, Any]]


def evaluate(frame: Any, roles: Mapping[str, str], *, training: TrainingRecord | None = None,
             min_gap: float = MIN_GAP, seed: int = 0, study_rows: Any | None = None) -> Alignment:
    """The one alignment computation behind the report, the CLI and the pipeline: scenario table from the trace
    rows, held-out in-sample scenarios and training fits marked from `training`, transfer rows, headline."""
    table, fit, trained = training_fit.apply(alignment_tables(frame, roles, min_gap=min_gap), frame,
                                             roles["student"], training)
    rows = transfer.transfer_table(table, trained=trained, training_fit=fit, samples=donation_samples(frame, roles),
                                   donation_scale=float(GAMES.get("donation").endowment), seed=seed)
    return Alignment(table, rows, transfer.headline(rows, study_rows))


def headline(runs: Any, roles: Mapping[str, str] | None = None, *, training: TrainingRecord | None = None,
             min_gap: float = MIN_GAP, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The alignment headline ({set: figures}, see analysis.transfer.headline) of run directories (roles default
    to their manifests') or of an already loaded trace DataFrame."""
    if hasattr(runs, "columns"):
        frame = runs
    else:
        paths = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
        frame = load_runs(paths)
        roles = roles_from_manifests(paths, **dict(roles or {}))
    return evaluate(frame, roles or {}, training=training, min_gap=min_gap, seed=seed).headline
