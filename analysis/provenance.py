"""Where each policy's decisions came from: the share of each trace `source` (rule, llm, strategist, fallback, replay,
replay-model, ...) per policy, and a one-line note per study replay saying how much of its play was modelled rather
than recorded.

The study's replay policies (`study/llama2-70b`, ...) are the study's recorded answers only on its one-shot scenarios
(source "replay"); everywhere else (repeated rounds, other games or framings) they follow a documented model (source
"replay-model"). A figure built on them is only as recorded as these shares say. Reads trace frames (analysis.load);
pandas only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the sources of the study's replay policies: recorded counts, and the model beyond them
REPLAY, REPLAY_MODEL = "replay", "replay-model"


def _column(source: str) -> str:
    return str(source).replace("-", "_")


def _labels(column: Any, keep: Any) -> tuple[Any, list[str]]:
    """The kept rows of a column as integer codes into a list of str labels (a value as `astype(str)` writes it, a
    missing categorical value as "nan"), without a str copy of a categorical column."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        codes = codes if keep is None else codes[keep]
        labels = [str(c) for c in column.cat.categories]
        return np.where(codes < 0, len(labels), codes).astype(np.int64), [*labels, "nan"]
    values = column.astype(str).to_numpy()
    codes, uniques = pd.factorize(values if keep is None else values[keep])
    return codes.astype(np.int64), [str(u) for u in uniques]


def source_shares(frame: Any, keep: Any = None) -> Any:
    """One row per policy: `policy`, `decisions` (trace rows) and the share of its decisions from each source, one
    column per source (hyphens as underscores; `replay` and `replay_model` always present), policies sorted.
    `keep`, a boolean array over the frame's rows, counts only those rows (no copy of the frame)."""
    import pandas as pd

    keep = None if keep is None else np.asarray(keep, dtype=bool)
    pol, pol_labels = _labels(frame["policy"], keep)
    src, src_labels = _labels(frame["source"], keep)
    grid = np.bincount(pol * len(src_labels) + src, minlength=len(pol_labels) * len(src_labels))
    grid = pd.DataFrame(grid.reshape(len(pol_labels), len(src_labels)).astype(np.int64), index=pol_labels,
                        columns=src_labels)
    grid = grid.T.groupby(level=0).sum().T.groupby(level=0).sum()  # labels that coincide as str counted together
    grid = grid.loc[grid.sum(axis=1) > 0, grid.sum(axis=0) > 0]
    sources = sorted(set(grid.columns) | {REPLAY, REPLAY_MODEL})
    cols = ["policy", "decisions", *(_column(s) for s in sources)]
    if grid.empty:
        return pd.DataFrame(columns=cols)
    counts = grid.reindex(columns=sources, fill_value=0).rename_axis(index="policy", columns="source")
    total = counts.sum(axis=1)
    out = counts.div(total, axis=0).rename(columns=_column)
    out.insert(0, "decisions", total.astype(int))
    return out.reset_index().rename_axis(columns=None)[cols].sort_values("policy", ignore_index=True)


def _percent(share: float) -> str:
    """A share as a whole percent, never rounded to 0% or 100% when it is neither."""
    text = f"{share:.0%}"
    if (text == "0%" and share > 0) or (text == "100%" and share < 1):
        text = f"{share:.1%}"
    return text


def replay_note(frame: Any, shares: Any = None) -> str:
    """One line per study replay policy present (any decision of source replay or replay-model), e.g.
    "study/llama2-70b: 85% of its 400 decisions modelled (replay-model), not recorded"; "" when there is none.
    `shares`, the frame's `source_shares` when already computed, spares counting again."""
    shares = source_shares(frame) if shares is None else shares
    study = shares[(shares["replay"] > 0) | (shares["replay_model"] > 0)]
    return "\n".join(f"{r.policy}: {_percent(r.replay_model)} of its {r.decisions} decisions modelled (replay-model), "
                     f"not recorded" for r in study.itertuples(index=False))
