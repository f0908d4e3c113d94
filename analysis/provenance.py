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

#: the sources of the study's replay policies: recorded counts, and the model beyond them
REPLAY, REPLAY_MODEL = "replay", "replay-model"


def _column(source: str) -> str:
    return str(source).replace("-", "_")


def source_shares(frame: Any) -> Any:
    """One row per policy: `policy`, `decisions` (trace rows) and the share of its decisions from each source, one
    column per source (hyphens as underscores; `replay` and `replay_model` always present), policies sorted."""
    import pandas as pd

    df = pd.DataFrame({"policy": frame["policy"].astype(str).to_numpy(),
                       "source": frame["source"].astype(str).to_numpy()})
    sources = sorted(set(df["source"]) | {REPLAY, REPLAY_MODEL})
    cols = ["policy", "decisions", *(_column(s) for s in sources)]
    if df.empty:
        return pd.DataFrame(columns=cols)
    counts = pd.crosstab(df["policy"], df["source"]).reindex(columns=sources, fill_value=0)
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


def replay_note(frame: Any) -> str:
    """One line per study replay policy present (any decision of source replay or replay-model), e.g.
    "study/llama2-70b: 85% of its 400 decisions modelled (replay-model), not recorded"; "" when there is none."""
    shares = source_shares(frame)
    study = shares[(shares["replay"] > 0) | (shares["replay_model"] > 0)]
    return "\n".join(f"{r.policy}: {_percent(r.replay_model)} of its {r.decisions} decisions modelled (replay-model), "
                     f"not recorded" for r in study.itertuples(index=False))
