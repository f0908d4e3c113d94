"""Summary tables of a run: standings.csv and crossplay.csv (pandas, from the stored traces)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STANDINGS_COLUMNS = ["policy", "games_played", "rounds_played", "mean_payoff_per_round", "cooperation_rate"]
CROSSPLAY_COLUMNS = ["policy", "opponent", "game", "framing", "matches", "mean_payoff_per_round", "cooperation_rate"]


def _prepare(frame: Any) -> Any:
    df = frame[frame["kind"] == "tournament"].copy()
    df["cooperated"] = (df["action_label"] == "C").astype(float)
    df.loc[~df["action_label"].isin(["C", "D"]), "cooperated"] = float("nan")
    return df


def standings(frame: Any) -> Any:
    """Per policy: episodes played, rounds played, mean payoff per round and cooperation rate (2x2 games)."""
    import pandas as pd

    df = _prepare(frame)
    if df.empty:
        return pd.DataFrame(columns=STANDINGS_COLUMNS)
    g = df.groupby("policy")
    out = pd.DataFrame({
        "games_played": g["episode_id"].nunique(),
        "rounds_played": g.size(),
        "mean_payoff_per_round": g["reward"].mean(),
        "cooperation_rate": g["cooperated"].mean(),
    }).reset_index()
    return out.sort_values(["mean_payoff_per_round", "policy"], ascending=[False, True])[STANDINGS_COLUMNS]


def crossplay(frame: Any) -> Any:
    """Per (policy, opponent, game, framing): matches, mean payoff per round, cooperation rate."""
    import pandas as pd

    df = _prepare(frame)
    if df.empty:
        return pd.DataFrame(columns=CROSSPLAY_COLUMNS)
    df["opponent"] = df["opponents"].str.split(",").str[0]
    g = df.groupby(["policy", "opponent", "game", "framing"])
    out = pd.DataFrame({
        "matches": g["episode_id"].nunique(),
        "mean_payoff_per_round": g["reward"].mean(),
        "cooperation_rate": g["cooperated"].mean(),
    }).reset_index()
    return out.sort_values(["game", "framing", "policy", "opponent"])[CROSSPLAY_COLUMNS]


def write_summaries(root: Path, frame: Any) -> dict[str, Path]:
    """Write standings.csv and crossplay.csv (atomically) and return their paths."""
    import os

    paths = {}
    for name, table in (("standings", standings(frame)), ("crossplay", crossplay(frame))):
        path = root / f"{name}.csv"
        tmp = root / f".{name}.csv.tmp"
        table.to_csv(tmp, index=False, float_format="%.10g")
        os.replace(tmp, path)
        paths[name] = path
    return paths
