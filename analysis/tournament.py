"""Tournament analysis: the run's summary tables (standings, cross-play, per composition, per seat), the cross-play
payoff matrix, and the evolutionary outcome on it (pairwise Moran fixation probabilities and replicator dynamics;
numpy only). Standings per game with bootstrap CIs over matches: analysis.standings.

Cooperation is defined per game kind: in 2x2 games the share of rounds played the cooperative (first) action, C;
in donation games the share of the endowment given (contribution / endowment); NaN for other games."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tomarena.analysis.columns import groups
from tomarena.envs.games import get_game
from tomarena.errors import ConfigError
from tomarena.options import split_list

STANDINGS_COLUMNS = ["policy", "games_played", "rounds_played", "mean_payoff_per_round", "cooperation_rate"]
CROSSPLAY_COLUMNS = ["policy", "opponent", "game", "framing", "matches", "mean_payoff_per_round", "cooperation_rate"]
COMPOSITION_COLUMNS = ["game", "framing", "composition", "policy", "seats", "matches", "rounds_played",
                       "mean_payoff_per_round", "cooperation_rate"]
SEAT_COLUMNS = ["game", "agent", "policy", "matches", "rounds_played", "mean_payoff_per_round", "cooperation_rate"]


def _tournament_rows(frame: Any) -> Any:
    """The rows of tournament decisions with a reward (the frame itself when that is every row: no copy)."""
    if not len(frame):
        return frame
    keep = (frame["kind"] == "tournament").to_numpy() & frame["reward"].notna().to_numpy()
    return frame if keep.all() else frame[keep]


def cooperation(frame: Any) -> Any:
    """Per row, how cooperative the executed action was: 1/0 for the cooperative action (C) or not in 2x2 games,
    contribution / endowment in donation games, NaN in other games."""
    import pandas as pd

    out = np.full(len(frame), np.nan)
    action = frame["action"]
    for game, rows in frame.groupby("game", observed=True).indices.items():  # positions: no copy of the rows
        spec = get_game(str(game))
        if spec.kind == "donation":
            out[rows] = action.iloc[rows].astype(float) / spec.endowment  # type: ignore[attr-defined]
        elif spec.kind == "matrix_2x2":
            out[rows] = (action.iloc[rows] == spec.cooperative_action).astype(float)
    return pd.Series(out, index=frame.index)


def group_label(policies: list[str]) -> str:
    """A group of players as counts of sorted labels, e.g. `3x classic/a + 1x classic/b`."""
    counts: dict[str, int] = {}
    for p in sorted(policies):
        counts[p] = counts.get(p, 0) + 1
    return " + ".join(f"{k}x {p}" for p, k in counts.items())


def _groups(policy: str, opponents: str) -> tuple[str, str, int]:
    """(opponent label, composition label, seats held) of one player given its co-players' labels."""
    others = split_list(str(opponents)) or [""]  # labels may hold commas (classic/memory_one?p=1,0,1,0)
    opponent = others[0] if len(others) == 1 else group_label(others)
    return opponent, group_label([policy, *others]), 1 + others.count(policy)


#: the columns of a prepared frame: one row per seat of an episode (a "seat result")
SEAT_RESULT_COLUMNS = ["episode_id", "agent", "policy", "opponents", "game", "framing", "rounds", "reward_sum",
                       "coop_sum", "coop_n", "opponent", "composition", "seats"]


def prepare(frame: Any) -> Any:
    """One row per seat of each tournament episode: its labels, rounds played, summed reward and summed
    cooperation (`coop_n` rounds where cooperation is defined), with opponent, composition and seats. Every table
    function accepts trace rows or this frame, so several tables of one run reduce the rows once; the reduction
    works on integer codes (a few seat results per episode for millions of rows)."""
    import pandas as pd

    if "reward_sum" in frame.columns:
        return frame
    df = _tournament_rows(frame)
    if df.empty:
        return pd.DataFrame(columns=SEAT_RESULT_COLUMNS)
    coop = cooperation(df).to_numpy(float)
    ec, _ = pd.factorize(df["episode_id"])
    ac, agents = pd.factorize(df["agent"])
    inverse, groups = pd.factorize(ec * len(agents) + ac, sort=True)  # seats in np.unique's order, without its sort
    del ec, ac
    first = np.full(len(groups), len(inverse))
    np.minimum.at(first, inverse, np.arange(len(inverse)))  # each seat's first row
    defined = ~np.isnan(coop)
    out = pd.DataFrame({c: df[c].iloc[first].astype(str).to_numpy() for c in SEAT_RESULT_COLUMNS[:6]})
    out["rounds"] = np.bincount(inverse, minlength=len(groups))
    out["reward_sum"] = np.bincount(inverse, weights=df["reward"].to_numpy(float), minlength=len(groups))
    out["coop_sum"] = np.bincount(inverse, weights=np.where(defined, coop, 0.0), minlength=len(groups))
    out["coop_n"] = np.bincount(inverse, weights=defined.astype(float), minlength=len(groups))
    derived = {pair: _groups(*pair) for pair in set(zip(out["policy"], out["opponents"]))}
    for i, name in enumerate(("opponent", "composition", "seats")):
        out[name] = [derived[pair][i] for pair in zip(out["policy"], out["opponents"])]
    return out


#: the sums of a seat result (the other columns say who played where)
SEAT_SUMS = ["rounds", "reward_sum", "coop_sum", "coop_n"]


def compact(seats: Any) -> Any:
    """Seat results with every set of episodes that differ only in their id and sums merged into one row per seat:
    sums added, `episodes` saying how many episodes the merged one stands for (its `episode_id` is a stand-in). The
    summary tables of the result equal those of `seats` (`_aggregate` counts episodes by `episodes`), and its
    length depends on the run's design, not on its repetitions. Ids of `seats` must name distinct episodes."""
    import pandas as pd

    if seats.empty:
        return seats
    df = seats.assign(episodes=seats["episodes"].fillna(1) if "episodes" in seats else 1)
    labels = [c for c in SEAT_RESULT_COLUMNS if c != "episode_id" and c not in SEAT_SUMS]
    kind = df.groupby(labels, sort=False, dropna=False).ngroup().to_numpy()  # what a seat is
    episode, _ = pd.factorize(df["episode_id"])
    order = np.lexsort((kind, episode))
    slot = np.arange(len(df)) - np.searchsorted(episode[order], episode[order])  # seat index within its episode
    table = np.full((episode.max() + 1, slot.max() + 1), -1, dtype=np.int64)
    table[episode[order], slot] = kind[order]
    _, cls = np.unique(table, axis=0, return_inverse=True)  # what an episode is: the kinds of its seats
    grouped = df.assign(episode_id=np.char.add("~", cls.reshape(-1)[episode].astype(str))).groupby(
        ["episode_id", *labels], sort=False, dropna=False)
    return grouped[[*SEAT_SUMS, "episodes"]].sum().reset_index()[[*SEAT_RESULT_COLUMNS, "episodes"]]


def _aggregate(df: Any, keys: list[str], columns: list[str], matches: str) -> Any:
    import pandas as pd

    if df.empty:
        return pd.DataFrame(columns=columns)
    g = df.groupby(keys, sort=True)
    sums = g[SEAT_SUMS].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        coop = np.where(sums["coop_n"] > 0, sums["coop_sum"] / sums["coop_n"], np.nan)
    if "episodes" in df:  # compacted seat results: an episode id stands for `episodes` episodes
        firsts = df.drop_duplicates([*keys, "episode_id"])
        played = firsts["episodes"].fillna(1).groupby([firsts[k] for k in keys], sort=True).sum().astype(int)
    else:
        played = g["episode_id"].nunique()
    out = pd.DataFrame({matches: played, "rounds_played": sums["rounds"].astype(int),
                        "mean_payoff_per_round": sums["reward_sum"] / sums["rounds"], "cooperation_rate": coop})
    return out.reset_index()


def standings(frame: Any) -> Any:
    """Per policy, pooled over games, framings, compositions and seats: episodes, seat-rounds, mean payoff per
    round and cooperation rate; best first."""
    out = _aggregate(prepare(frame), ["policy"], STANDINGS_COLUMNS, "games_played")
    if out.empty:
        return out
    return out.sort_values(["mean_payoff_per_round", "policy"], ascending=[False, True],
                           ignore_index=True)[STANDINGS_COLUMNS]


def crossplay(frame: Any) -> Any:
    """Per (policy, opponent, game, framing): matches, mean payoff per round, cooperation rate; in n-player
    games the opponent is the group of the other seats (`group_label`)."""
    out = _aggregate(prepare(frame), ["policy", "opponent", "game", "framing"], CROSSPLAY_COLUMNS, "matches")
    return out.sort_values(["game", "framing", "policy", "opponent"], ignore_index=True)[CROSSPLAY_COLUMNS]


def composition_table(frame: Any) -> Any:
    """Per (game, framing, composition of the seats, policy): its number of seats there, matches, seat-rounds,
    mean payoff per round and cooperation rate."""
    df = prepare(frame)
    out = _aggregate(df, ["game", "framing", "composition", "policy"], COMPOSITION_COLUMNS, "matches")
    if len(out):
        seats = df.groupby(["game", "framing", "composition", "policy"], sort=True)["seats"].first()
        out["seats"] = seats.to_numpy()
    return out[COMPOSITION_COLUMNS]


def seat_table(frame: Any) -> Any:
    """Per (game, seat, policy): matches, rounds, mean payoff per round and cooperation rate, to check that no
    seat is favoured."""
    out = _aggregate(prepare(frame), ["game", "agent", "policy"], SEAT_COLUMNS, "matches")
    return out[SEAT_COLUMNS]


def crossplay_matrices(frame: Any) -> dict[str, Any]:
    """Per game: matrix (rows = policy, columns = opponent) of the policy's mean payoff per round in two-player
    matches, framings pooled."""
    df = _tournament_rows(frame[[c for c in ("kind", "game", "policy", "opponents", "reward") if c in frame.columns]])
    several = df["opponents"].str.contains(",", regex=False).to_numpy(dtype=bool) if len(df) else []
    df = df[~several] if np.any(several) else df  # copies these columns only, and only when some go
    out = {}
    for (game,), g in groups(df, ["game"], ["policy", "opponents", "reward"]):
        m = g.groupby(["policy", "opponents"])["reward"].mean().unstack("opponents")
        m.index.name, m.columns.name = "policy", "opponent"
        out[str(game)] = m
    return out


def _complete(matrix: Any) -> tuple[list[str], np.ndarray]:
    labels = sorted(set(matrix.index) & set(matrix.columns))
    a = matrix.loc[labels, labels].to_numpy(dtype=float)
    if len(labels) < 2 or not np.all(np.isfinite(a)):
        raise ConfigError(f"evolutionary analysis needs a complete square payoff matrix of >= 2 strategies; "
                          f"got strategies {labels} with missing pairs")
    return labels, a


def moran_fixation(a: np.ndarray, mutant: int, resident: int, n: int = 10, w: float = 1.0) -> float:
    """Fixation probability of one `mutant` in a population of n-1 `resident`s (frequency-dependent Moran
    process, fitness exp(w * mean payoff against the others)); 1/n for a neutral mutant."""
    if n < 2:
        raise ConfigError(f"Moran population size must be >= 2, got {n}")
    aa, ab, ba, bb = a[mutant, mutant], a[mutant, resident], a[resident, mutant], a[resident, resident]
    total, prod = 1.0, 1.0
    for i in range(1, n):
        f = math.exp(w * (aa * (i - 1) + ab * (n - i)) / (n - 1))
        g = math.exp(w * (ba * i + bb * (n - i - 1)) / (n - 1))
        prod *= g / f
        total += prod
    return 1.0 / total


def moran_table(matrix: Any, n: int = 10, w: float = 1.0) -> Any:
    """Pairwise fixation probabilities (row invades column) on a cross-play matrix; compare with neutral 1/n."""
    import pandas as pd

    labels, a = _complete(matrix)
    rho = [[moran_fixation(a, i, j, n, w) if i != j else math.nan for j in range(len(labels))]
           for i in range(len(labels))]
    return pd.DataFrame(rho, index=pd.Index(labels, name="mutant"), columns=pd.Index(labels, name="resident"))


def replicator(matrix: Any, *, steps: int = 5000, x0: np.ndarray | None = None) -> dict[str, float]:
    """Final population shares of discrete-time replicator dynamics on the cross-play matrix (payoffs shifted
    positive), from the uniform mix unless x0 is given."""
    labels, a = _complete(matrix)
    a = a - a.min() + 1.0
    x = np.full(len(labels), 1.0 / len(labels)) if x0 is None else np.asarray(x0, dtype=float)
    for _ in range(steps):
        f = a @ x
        x = x * f / float(x @ f)
    return {lab: float(v) for lab, v in zip(labels, x, strict=True)}
