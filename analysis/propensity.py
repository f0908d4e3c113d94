"""Propensity tables: p(C) per model x framing x game (x round), exact when the run scored probabilities, else
counted with Wilson intervals; invalid answers are counted, never dropped silently. Donations: mean contribution.

Which table a row belongs to is the recorded game's `kind` (tomarena.envs), never its labels: every "matrix_2x2"
game (C/D, X/Y or any letters) has a propensity, P(first action) = P(C); "donation" games a mean contribution;
other tables neither.

Exact scoring defines p(C) as P(first answer token = C | first token in {C, D}) under the letter prompt (no
sampling, no top-p, no parser); `other_mass` is the mean probability the model put on neither letter, its format
adherence (0 = it always answers with a letter; NaN for sampled answers and rule-based policies)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from tomarena.analysis.columns import groups
from tomarena.analysis.stats import t_interval, wilson_interval
from tomarena.envs.games import GameKind, get_game
from tomarena.errors import TomarenaError

#: parse statuses whose rows are not a valid answer of the model (the arena's fallback acted instead)
INVALID_STATUSES = ("failed", "fallback")
PROPENSITY_COLUMNS = ["model", "framing", "game", "n_rows", "n_valid", "n_invalid", "n_cooperate", "p_cooperate",
                      "ci_low", "ci_high", "method", "other_mass"]
DONATION_COLUMNS = ["model", "framing", "game", "n_rows", "n_valid", "n_invalid", "mean_contribution", "ci_low",
                    "ci_high", "method"]


@functools.cache
def game_kind(game_id: str) -> GameKind | None:
    """The kind of a recorded game id (registered or inline spec), once per id; None when it does not resolve."""
    try:
        return get_game(game_id).kind
    except TomarenaError:
        return None


def row_kinds(frame: Any) -> Any:
    """Per row, its game's kind; ids that do not resolve here are classed by their labels as before games had
    kinds: "matrix_2x2" when every action label of that game in the data is C or D, else "donation"."""
    games = frame["game"]
    kinds = games.map({g: game_kind(str(g)) for g in games.unique()}).astype(object)
    unresolved = kinds.isna()
    if unresolved.any():
        cd = frame["action_label"].isin(["C", "D"]).groupby(games, observed=True).transform("all")
        kinds = kinds.where(~unresolved, np.where(cd, "matrix_2x2", "donation"))
    return kinds


def binary_mask(frame: Any) -> Any:
    """Rows of 2x2 games (kind "matrix_2x2"), whose propensity is P(first action) = P(C)."""
    return row_kinds(frame) == "matrix_2x2"


def donation_mask(frame: Any) -> Any:
    """Rows of donation games (kind "donation"), summarised by mean contribution."""
    return row_kinds(frame) == "donation"


def scenario_rows(frame: Any) -> Any:
    """The rows that define a model's per-scenario propensity: one-shot sweep rows when the data has any (so
    repeated play of the same model never blends in), else every row."""
    sweep = frame["kind"] == "sweep"
    return frame[sweep] if bool(sweep.any()) else frame


def _kept(frame: Any, columns: list[str], mask: Any) -> Any:
    """The rows of `frame` where `mask(frame)` holds, only those of `columns` it has: a copy of those columns alone,
    and none at all when every row is kept (a 12 M-row frame copied whole took about 1 GB)."""
    if not len(frame):
        return frame
    df = frame[[c for c in columns if c in frame.columns]]  # copy-on-write: no data copied yet
    keep = np.asarray(mask(frame), dtype=bool)
    return df if keep.all() else df[keep]


def _invalid(frame: Any) -> Any:
    return frame["parse_status"].isin(INVALID_STATUSES)


def _cell(group: Any) -> dict[str, Any]:
    invalid = _invalid(group)
    valid = group[~invalid]
    n_valid = len(valid)
    k = int((valid["intended_action"] == 0).sum())
    exact = n_valid > 0 and bool(valid["p_cooperate"].notna().all())
    if exact:
        p, lo, hi = t_interval(valid["p_cooperate"].to_numpy(dtype=float))
        method = "exact"
    else:
        p = k / n_valid if n_valid else math.nan
        lo, hi = wilson_interval(k, n_valid)
        method = "counts"
    other = group["other_mass"].dropna() if "other_mass" in group else []
    return {"n_rows": len(group), "n_valid": n_valid, "n_invalid": int(invalid.sum()), "n_cooperate": k,
            "p_cooperate": p, "ci_low": lo, "ci_high": hi, "method": method,
            "other_mass": float(other.mean()) if len(other) else math.nan}


def propensity_table(frame: Any, by_round: bool = False) -> Any:
    """p(C) = P(first action) per model x framing x game (x round) of 2x2 games: exact mean of p_cooperate when
    every valid row has it, else n_cooperate / n_valid with a Wilson 95% CI."""
    import pandas as pd

    keys = ["policy", "framing", "game"] + (["round"] if by_round else [])
    cols = PROPENSITY_COLUMNS[:3] + (["round"] if by_round else []) + PROPENSITY_COLUMNS[3:]
    df = _kept(frame, keys + ["parse_status", "intended_action", "p_cooperate", "other_mass"], binary_mask)
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = [{**dict(zip(keys, key, strict=True)), **_cell(g)} for key, g in groups(df, keys, list(df.columns))]
    return pd.DataFrame(rows).rename(columns={"policy": "model"})[cols]


def no_probs(p: Any) -> bool:
    """True when a row's probs is missing (None, NaN, or pd.NA as an Arrow-backed column gives) or empty."""
    import pandas as pd

    return p is None or p is pd.NA or (isinstance(p, float) and math.isnan(p)) or len(p) == 0


def _contribution(row_probs: Any, action: int) -> tuple[float, bool]:
    if no_probs(row_probs):
        return float(action), False
    p = np.asarray(row_probs, dtype=float)
    return float(np.dot(np.arange(p.size), p)), True


def donation_table(frame: Any) -> Any:
    """Mean contribution per model x framing x game for donation games: the expected contribution
    when every valid row has probabilities, else the chosen amounts; t-based 95% CI over decisions."""
    import pandas as pd

    df = _kept(frame, ["policy", "framing", "game", "parse_status", "intended_action", "probs"], donation_mask)
    if df.empty:
        return pd.DataFrame(columns=DONATION_COLUMNS)
    rows = []
    for (model, framing, game), g in df.groupby(["policy", "framing", "game"], sort=True):
        invalid = _invalid(g)
        valid = g[~invalid]
        pairs = [_contribution(p, a) for p, a in zip(valid["probs"], valid["intended_action"], strict=True)]
        exact = bool(pairs) and all(e for _, e in pairs)
        values = [v for v, _ in pairs] if exact else [float(a) for a in valid["intended_action"]]
        mean, lo, hi = t_interval(values)
        rows.append({"model": model, "framing": framing, "game": game, "n_rows": len(g), "n_valid": len(valid),
                     "n_invalid": int(invalid.sum()), "mean_contribution": mean, "ci_low": lo, "ci_high": hi,
                     "method": "exact" if exact else "counts"})
    return pd.DataFrame(rows)[DONATION_COLUMNS]


def donation_values(frame: Any, model: str, framing: str | None = None) -> list[float]:
    """The valid contributions of one model (optionally one framing), for t-tests between models."""
    df = frame[donation_mask(frame) & (frame["policy"] == model) & ~_invalid(frame)]
    if framing is not None:
        df = df[df["framing"] == framing]
    return [float(a) for a in df["intended_action"]]
