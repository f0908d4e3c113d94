"""Standings that never rank payoffs of different games (or runs) together: per run and game, each policy's mean
payoff per round with a 95% bootstrap CI over its matches (seats), its rank there, and the tournament headline built
on them (the winner of each game with its mean payoff per round, and the runner-up).

Payoff scales differ between games (a donation round pays ~14, a 2x2 round ~5), so a pooled table ranks the games a
policy happened to play, not how well it played them; here a policy is only ever compared with the policies of the
same game in the same run. pandas/numpy only.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from tomarena.analysis.columns import run_column, str_categorical
from tomarena.analysis.tournament import SEAT_RESULT_COLUMNS, prepare

STANDINGS_COLUMNS = ["run", "game", "rank", "policy", "matches", "rounds_played", "mean_payoff_per_round", "ci_low",
                     "ci_high", "cooperation_rate"]
WINNER_COLUMNS = ["run", "game", "policies", "winner", "winner_payoff", "runner_up", "runner_up_payoff", "margin"]
#: how many games the headline names one by one; beyond it, it counts wins per policy
HEADLINE_GAMES = 12
#: bootstrap seat indices drawn at once (per chunk of replicates)
BOOT_DRAWS = 4_000_000


def natural_key(text: object) -> tuple[Any, ...]:
    """Sort key that orders the numbers inside a label by value (rg144/2 before rg144/10)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(text)) if p)


def _resampled_ratios(sums: np.ndarray, sizes: np.ndarray, rng: Any, n_boot: int) -> np.ndarray:
    """n_boot bootstrap replicates of sum(sums) / sum(sizes), resampling the seats; the seat indices are drawn
    BOOT_DRAWS at a time, the same draws as one (n_boot, seats) array (2000 x 20 000 seats: 0.3 GB per array)."""
    out = []
    step = max(1, BOOT_DRAWS // max(len(sums), 1))
    for start in range(0, n_boot, step):
        idx = rng.integers(0, len(sums), size=(min(step, n_boot - start), len(sums)))
        out.append(sums[idx].sum(axis=1) / sizes[idx].sum(axis=1))
    return np.concatenate(out) if out else np.empty(0)


def standings_by_game(frame: Any, *, n_boot: int = 2000, seed: int = 0) -> Any:
    """One row per run x game x policy of the tournament rows: rank in that game (1 = best; ties share a rank),
    matches (seats), seat-rounds, mean payoff per round with a 95% percentile bootstrap CI resampling the policy's
    seats, and cooperation rate (tournament.cooperation); runs and games in natural order, best first within each."""
    import pandas as pd

    keep = (frame["kind"] == "tournament").to_numpy() & frame["reward"].notna().to_numpy() if len(frame) else []
    if not np.any(keep):
        return pd.DataFrame(columns=STANDINGS_COLUMNS)
    rng = np.random.default_rng(seed)
    out = []
    labels = str_categorical(frame[run_column(frame)])
    read = frame[[c for c in (*SEAT_RESULT_COLUMNS[:6], "kind", "action", "reward") if c in frame.columns]]
    for code in sorted(np.unique(labels.codes[keep]), key=lambda c: natural_key(labels.categories[c])):
        run = labels.categories[code]
        rows = keep & (labels.codes == code)
        seats = prepare(read if rows.all() else read[rows])  # the run's rows of the columns read, copied only if fewer
        for (game, policy), g in sorted(seats.groupby(["game", "policy"], sort=False),
                                        key=lambda kv: (natural_key(kv[0][0]), str(kv[0][1]))):
            sums, sizes = g["reward_sum"].to_numpy(float), g["rounds"].to_numpy(float)
            lo, hi = np.quantile(_resampled_ratios(sums, sizes, rng, n_boot), [0.025, 0.975])
            coop_n = float(g["coop_n"].sum())
            out.append({"run": run, "game": str(game), "policy": str(policy), "matches": int(g["episode_id"].nunique()),
                        "rounds_played": int(sizes.sum()), "mean_payoff_per_round": float(sums.sum() / sizes.sum()),
                        "ci_low": float(lo), "ci_high": float(hi),
                        "cooperation_rate": float(g["coop_sum"].sum()) / coop_n if coop_n else math.nan})
    table = pd.DataFrame(out)
    order = {(r, g): i for i, (r, g) in enumerate(dict.fromkeys(zip(table["run"], table["game"], strict=True)))}
    table["_order"] = [order[k] for k in zip(table["run"], table["game"], strict=True)]
    table = table.sort_values(["_order", "mean_payoff_per_round", "policy"], ascending=[True, False, True],
                              ignore_index=True)
    table["rank"] = table.groupby("_order")["mean_payoff_per_round"].rank(method="min", ascending=False).astype(int)
    return table[STANDINGS_COLUMNS]


def winners(standings: Any) -> Any:
    """Per run x game of a `standings_by_game` table: the number of policies, the winner and the runner-up with
    their mean payoffs per round, and the margin between them (NaN with a single policy; 0 = a tie, the winner
    then being the first label)."""
    import pandas as pd

    out = []
    for (run, game), g in standings.groupby(["run", "game"], sort=False):
        first = g.iloc[0]
        second = g.iloc[1] if len(g) > 1 else None
        out.append({"run": run, "game": game, "policies": len(g), "winner": first["policy"],
                    "winner_payoff": float(first["mean_payoff_per_round"]),
                    "runner_up": second["policy"] if second is not None else "",
                    "runner_up_payoff": float(second["mean_payoff_per_round"]) if second is not None else math.nan,
                    "margin": float(first["mean_payoff_per_round"] - second["mean_payoff_per_round"])
                    if second is not None else math.nan})
    return pd.DataFrame(out, columns=WINNER_COLUMNS)


def _one(r: Any, several_runs: bool) -> str:
    where = f"{r.game} ({r.run})" if several_runs else str(r.game)
    text = f"{where}: {r.winner} {r.winner_payoff:.2f}/round"
    if r.runner_up:
        text += (", tied with " if r.margin == 0 else ", runner-up ") + f"{r.runner_up} {r.runner_up_payoff:.2f}"
    return text


def headline(win: Any, max_games: int = HEADLINE_GAMES) -> str:
    """The tournament in a sentence or two: every game's winner (mean payoff per round) and runner-up when there are
    at most `max_games` run x game pairs, else the number of games each policy won (ties counted for the first
    label), most first; "" for no games."""
    if win.empty:
        return ""
    several = win["run"].nunique() > 1
    if len(win) <= max_games:
        return "Winners (mean payoff per round in that game): " + "; ".join(
            _one(r, several) for r in win.itertuples(index=False)) + "."
    counts = win["winner"].value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ties = int((win["margin"] == 0).sum())
    tie_text = f" ({ties} of them tied for first; counted for the first label)" if ties else ""
    pairs = f"{len(win)} run x game pairs" if several else f"{len(win)} games"
    return (f"Games won, of {pairs}{tie_text}: "
            + ", ".join(f"{p} {n}" for p, n in ranked) + ". The winner of every game, with its runner-up, is in "
            "the table 'Winner per game' (winners.csv).")
