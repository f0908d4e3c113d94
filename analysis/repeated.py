"""Repeated play judged as repeated play: cooperation by round and memory-one fingerprints with intervals that
resample whole matches (decisions of one match are not independent), distances between fingerprints, and the
repeated-game prediction for the run's horizon: subgame-perfect play by backward induction for a known finite
horizon, and the Nash-reversion (grim-trigger) threshold delta* under a continuation probability delta.

Stage-game concepts (Nash distance, logit-QRE lambda) belong to one-shot rows only: `one_shot_rows`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tomarena.analysis.columns import groups, run_column, str_categorical
from tomarena.analysis.load import read_manifest
from tomarena.analysis.propensity import INVALID_STATUSES, binary_mask
from tomarena.analysis.stats import cluster_bootstrap_ci
from tomarena.envs.games import get_game
from tomarena.errors import ConfigError, TomarenaError

STATES = ("CC", "CD", "DC", "DD")  # own previous action first, then the co-player's
START = "start"  # round 1: no previous outcome
ROUND_COLUMNS = ["model", "game", "round", "p_cooperate", "n", "n_matches", "ci_low", "ci_high"]
FINGERPRINT_COLUMNS = ["model", "game", "state", "p_cooperate", "n", "n_matches", "ci_low", "ci_high"]
DISTANCE_COLUMNS = ["game", "policy_a", "policy_b", "distance", "ci_low", "ci_high", "n_states", "n_matches"]
THEORY_COLUMNS = ["run", "game", "horizon", "delta", "delta_source", "stage_equilibria", "spe_prediction",
                  "spe_p_cooperate", "reversion_equilibrium", "v_nash", "delta_star", "cooperation_sustainable",
                  "p_cooperate", "ci_low", "ci_high", "p_cooperate_last_round", "mutual_cooperation", "n_matches"]


def one_shot_rows(frame: Any) -> Any:
    """The rows a stage-game concept (Nash distance, QRE lambda) may judge: one-shot sweep rows and matches with a
    known horizon of one round; repeated rounds never count (a run of repeated play only gives no rows)."""
    if not len(frame):
        return frame
    one_round = (frame["kind"] == "tournament") & (frame["horizon"].astype("Float64") == 1).fillna(False)
    return frame[(frame["kind"] == "sweep") | one_round]


def repeated_rows(frame: Any) -> Any:
    """Tournament rows of matches that are not one-shot (a horizon above one round, or an uncertain end)."""
    if not len(frame):
        return frame
    return frame[_repeated_mask(frame)]


def _repeated_mask(frame: Any) -> Any:
    """`repeated_rows` as a boolean Series over the frame's rows."""
    one_round = (frame["horizon"].astype("Float64") == 1).fillna(False)
    return (frame["kind"] == "tournament") & ~one_round


def _run_key(df: Any) -> Any:
    """The run a row came from: its run directory when loaded from disk, else its run id."""
    return as_str(df[run_column(df)])


def as_str(column: Any) -> Any:
    """column.astype(str), for a categorical by taking its few category strings by code (the same values and
    dtype, without a Python object per row: astype(str) on 12 M rows peaks at about 1.8 GB, this at 0.5 GB)."""
    import pandas as pd

    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype(str)
    codes = column.cat.codes.to_numpy()
    if (codes < 0).any():
        return column.astype(str)
    return pd.Series(column.cat.categories.astype(str).take(codes), index=column.index, name=column.name)


#: decisions per block of whole matches in which memory_one_rows finds states (bounds its scratch arrays: 12 M
#: decisions in one pass peaked at about 2 GB above the frame)
STATE_BLOCK = 1_000_000


def memory_one_rows(frame: Any) -> Any:
    """One row per valid decision of two-player repeated C/D play: model, game, run, cluster (the match, unique
    across runs), round, state (START in round 1, else own + co-player's executed previous actions), coop (exact
    p_cooperate when known, else whether the intended action was C) and the executed action. model, game, run and
    state are categoricals of their str values (sorted categories), never a Python object per row; cluster and round
    are int32, the action (0 or 1) int8: 12 M rows take 0.25 GB."""
    import pandas as pd

    cols = ["model", "game", "run", "cluster", "round", "state", "coop", "action"]
    if not len(frame):
        return pd.DataFrame(columns=cols)
    kept = np.flatnonzero(np.asarray(_repeated_mask(frame), dtype=bool) & np.asarray(binary_mask(frame), dtype=bool))
    if not len(kept):
        return pd.DataFrame(columns=cols)
    run = str_categorical(frame[run_column(frame)], kept)
    episode, _ = pd.factorize(frame["episode_id"].array.take(kept), use_na_sentinel=False)
    match, _ = pd.factorize(run.codes.astype(np.int64) * (int(episode.max()) + 1) + episode)  # in order of appearance
    del episode
    state = _states(frame, kept, match)
    pos = np.flatnonzero(state >= 0)  # the decisions kept, as positions in `kept`
    rows, run, cluster, state = kept[pos], run[pos], match[pos], state[pos]
    del kept, match, pos
    p = frame["p_cooperate"].array.take(rows).to_numpy(dtype=float, na_value=np.nan)
    coop = np.where(np.isnan(p), (frame["intended_action"].to_numpy()[rows] == 0) * 1.0, p)
    del p
    return pd.DataFrame({
        "model": str_categorical(frame["policy"], rows), "game": str_categorical(frame["game"], rows), "run": run,
        "cluster": cluster.astype(np.int32), "round": frame["round"].to_numpy()[rows].astype(np.int32),
        "state": pd.Categorical.from_codes(state, [START, *STATES]).reorder_categories(sorted([START, *STATES])),
        "coop": coop, "action": frame["action"].to_numpy()[rows].astype(np.int8)}, copy=False)


def _states(frame: Any, kept: np.ndarray, match: np.ndarray) -> np.ndarray:
    """Per decision at the positions `kept` of the frame (match codes `match`): its state as a code into START,
    *STATES, or -1 where memory_one_rows leaves it out (its round lacks the other seat's decision, its previous round
    is missing, or its answer is invalid); found per block of about STATE_BLOCK decisions of whole matches."""
    import pandas as pd

    out = np.full(len(kept), -1, dtype=np.int8)
    invalid = np.asarray(frame["parse_status"].isin(INVALID_STATUSES), dtype=bool)
    rounds, actions, agents = frame["round"].to_numpy(), frame["action"].to_numpy(), frame["agent"].array
    for sel in _match_blocks(match):
        rows = kept[sel]
        cur = _previous_round(pd.DataFrame({"cluster": match[sel], "round": rounds[rows], "agent": agents.take(rows),
                                            "action": actions[rows], "row": sel}))
        row, start = cur["row"].to_numpy(), (cur["round"] == 0).to_numpy()
        own, other = cur["own_prev"].to_numpy(), (cur["pair_sum"] - cur["own_prev"]).to_numpy()
        ok = (start | ~np.isnan(own)) & ~invalid[kept[row]]
        out[row[ok]] = np.where(start, 0, 1 + 2 * (own != 0) + (other != 0))[ok]
    return out


def _match_blocks(match: np.ndarray) -> Iterator[np.ndarray]:
    """The positions of `match` (integer match codes), in blocks of whole matches of about STATE_BLOCK rows each
    (ascending positions within a block)."""
    low, high = int(match.min()), int(match.max()) + 1
    step = max(1, (high - low) * STATE_BLOCK // len(match))
    for first in range(low, high, step):
        yield np.flatnonzero((match >= first) & (match < first + step))


def _previous_round(df: Any) -> Any:
    """The rows of `df` (cluster, round, agent, action, ...) whose (cluster, round) has exactly two rows, with
    own_prev (the agent's action in the round before) and pair_sum (both actions of the round before), NaN where
    that round is missing: what merging with the previous round gives, by sorted integer keys and binary search
    (a 12 M-row run's merges peaked at several GB)."""
    import pandas as pd

    cluster, rnd = df["cluster"].to_numpy(dtype=np.int64), df["round"].to_numpy(dtype=np.int64)
    span = int(rnd.max()) + 2
    if rnd.min() < 0 or (int(cluster.max()) + 1) * span * 4 >= 2**62:
        return _previous_round_merge(df)
    cell = cluster * span + rnd  # (cluster, round) as one integer; cell - 1 is the round before in the same match
    _, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    two = counts[inverse] == 2
    df, cell = df[two], cell[two]
    if df.empty:
        return _previous_round_merge(df)
    agent = pd.factorize(df["agent"])[0].astype(np.int64)
    n_agents = int(agent.max()) + 1
    key = cell * n_agents + agent
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    if (np.diff(sorted_key) == 0).any():  # one agent twice in a round: the merge keeps every pairing
        return _previous_round_merge(df)
    action = df["action"].to_numpy(dtype=np.float64)
    own_prev = _lookup(sorted_key, action[order], key - n_agents)
    cells, inverse = np.unique(cell, return_inverse=True)
    pair_sum = _lookup(cells, np.bincount(inverse, weights=action, minlength=len(cells)), cell - 1)
    return df.assign(own_prev=own_prev, pair_sum=pair_sum).reset_index(drop=True)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == wanted (keys sorted, unique and not empty), NaN where `wanted` is not a key."""
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[pos] == wanted, values[pos], np.nan)


def _previous_round_merge(df: Any) -> Any:
    """_previous_round by merges (the general form, for keys the integer packing cannot take)."""
    df = df[df.groupby(["cluster", "round"])["agent"].transform("size") == 2]
    prev = df[["cluster", "round", "agent", "action"]].assign(round=df["round"] + 1)
    opp = prev.groupby(["cluster", "round"])["action"].sum().rename("pair_sum").reset_index()
    cur = df.merge(prev.rename(columns={"action": "own_prev"}), on=["cluster", "round", "agent"], how="left")
    return cur.merge(opp, on=["cluster", "round"], how="left")


def _cluster_cells(rows: Any, cell: str, cells: list[Any]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-cluster sums and counts of coop over `cells` (clusters x cells), and the number of clusters."""
    import pandas as pd

    codes, uniq = pd.factorize(rows["cluster"])
    col = pd.Categorical(rows[cell], categories=cells).codes
    sums, counts = np.zeros((len(uniq), len(cells))), np.zeros((len(uniq), len(cells)))
    np.add.at(sums, (codes, col), rows["coop"].to_numpy(dtype=float))
    np.add.at(counts, (codes, col), 1.0)
    return sums, counts, len(uniq)


def _ratio_table(rows: Any, cell: str, cells: list[Any], n_boot: int, seed: int, level: float) -> list[dict]:
    """Per cell: the pooled ratio p(C), its n, the matches it comes from and a cluster-bootstrap CI."""
    sums, counts, _ = _cluster_cells(rows, cell, cells)
    lo, hi = cluster_bootstrap_ci(sums, counts, n_boot=n_boot, seed=seed, level=level)
    out = []
    for j, c in enumerate(cells):
        n = counts[:, j].sum()
        if n == 0:
            continue
        out.append({cell: c, "p_cooperate": sums[:, j].sum() / n, "n": int(n),
                    "n_matches": int((counts[:, j] > 0).sum()), "ci_low": float(lo[j]), "ci_high": float(hi[j])})
    return out


def _per_model_game(m1: Any, cell: str, cells: list[Any] | None, columns: list[str], n_boot: int, seed: int,
                    level: float) -> Any:
    """A `_ratio_table` over `cell` (its values, or those present) for every model x game of memory-one rows."""
    import pandas as pd

    rows = []
    for (model, game), g in groups(m1, ["model", "game"], ["cluster", cell, "coop"]):
        values = cells if cells is not None else sorted(int(r) for r in g[cell].unique())
        rows += [{"model": model, "game": game, **r} for r in _ratio_table(g, cell, values, n_boot, seed, level)]
    return pd.DataFrame(rows, columns=columns)


def cooperation_by_round(frame: Any, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Any:
    """p(C) per model x game x round of repeated two-player play (framings pooled; exact p_cooperate when known),
    with percentile CIs from a bootstrap over matches (each match resampled whole, all its rounds together)."""
    return _per_model_game(memory_one_rows(frame), "round", None, ROUND_COLUMNS, n_boot, seed, level)


def fingerprints(frame: Any, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Any:
    """Memory-one fingerprints per model x game: P(C) in round 1 (state 'start') and P(C | previous CC, CD, DC,
    DD; own action first), n decisions and n_matches, with percentile CIs from a bootstrap over matches; a state
    the model never met has no row."""
    return _per_model_game(memory_one_rows(frame), "state", [START, *STATES], FINGERPRINT_COLUMNS, n_boot, seed,
                           level)


def _distance(diff: np.ndarray, metric: str) -> np.ndarray:
    """Distance over the last axis of fingerprint differences: mean |d| or the Euclidean norm."""
    return np.mean(np.abs(diff), axis=-1) if metric == "mean_abs" else np.sqrt(np.sum(diff**2, axis=-1))


def fingerprint_distance(frame: Any, a: str, b: str, game: str, *, metric: str = "mean_abs", n_boot: int = 2000,
                         seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Distance between two policies' memory-one fingerprints in one game over the states both visited:
    metric 'mean_abs' = mean |P_a(C|s) - P_b(C|s)| over those of CC, CD, DC, DD (0..1), 'euclidean' = the L2 norm;
    CI from a bootstrap over the matches of either policy (resamples missing a state are skipped)."""
    if metric not in ("mean_abs", "euclidean"):
        raise ConfigError(f"fingerprint metric must be 'mean_abs' or 'euclidean', got {metric!r}")
    return _fingerprint_distance(memory_one_rows(frame), a, b, game, metric, n_boot, seed, level)


def _fingerprint_distance(m1: Any, a: str, b: str, game: str, metric: str, n_boot: int, seed: int,
                          level: float) -> dict[str, Any]:
    """`fingerprint_distance` on memory-one rows already built (one build for every pair of a report)."""
    parts = _state_parts(m1[m1["game"] == game])
    return _parts_distance(parts.get(a), parts.get(b), metric, n_boot, seed, level)


def _state_parts(m1: Any) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per model, its memory-one rows after round 1 as arrays: (cluster, state code 0..3 in STATES order, coop)."""
    import pandas as pd

    models, names = pd.factorize(m1["model"])
    return _split_parts(models, names, np.ones(len(m1), dtype=bool), *_state_arrays(m1))


def _state_arrays(m1: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Over all memory-one rows: whether the row is after round 1 (its state one of STATES), the state code (0..3
    in STATES order, -1 at the start), cluster and coop, as arrays (no str column copied)."""
    import pandas as pd

    codes = np.asarray(pd.Categorical(m1["state"], categories=list(STATES)).codes)
    return codes >= 0, codes, m1["cluster"].to_numpy(), m1["coop"].to_numpy(dtype=float)


def _split_parts(models: np.ndarray, names: Any, sel: np.ndarray, after: np.ndarray, codes: np.ndarray,
                 clusters: np.ndarray, coop: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`_state_parts` of the rows in `sel`, from model codes into `names` and the `_state_arrays`."""
    keep = np.flatnonzero(sel & after)
    kept = models[keep]
    out = {}
    for i in np.unique(kept):  # in any order: the parts are looked up by name
        idx = keep[kept == i]
        out[str(names[i])] = (clusters[idx], codes[idx], coop[idx])
    return out


def _parts_distance(pa: tuple[np.ndarray, ...] | None, pb: tuple[np.ndarray, ...] | None, metric: str,
                    n_boot: int, seed: int, level: float) -> dict[str, Any]:
    """The fingerprint distance of two policies' `_state_parts` (cells: a's states 0..3, b's 4..7; clusters in order
    of first appearance, a's rows first), with its cluster-bootstrap CI."""
    import pandas as pd

    empty = {"distance": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_states": 0, "n_matches": 0}
    if pa is None or pb is None or not len(pa[0]) or not len(pb[0]):
        return empty
    codes_a, clusters_a = pd.factorize(pa[0])
    codes_b = pd.factorize(np.concatenate([clusters_a, pb[0]]))[0][len(clusters_a):]  # the same codes, a's first
    n_clusters = max(len(clusters_a), int(codes_b.max()) + 1)
    sums, counts = np.zeros((n_clusters, 2 * len(STATES))), np.zeros((n_clusters, 2 * len(STATES)))
    for codes, cell, coop in ((codes_a, pa[1].astype(int), pa[2]), (codes_b, pb[1].astype(int) + len(STATES), pb[2])):
        np.add.at(sums, (codes, cell), coop)
        np.add.at(counts, (codes, cell), 1.0)
    shape = (n_clusters, 2, len(STATES))
    sums, counts = sums.reshape(shape), counts.reshape(shape)
    seen = (counts.sum(axis=0) > 0).all(axis=0)
    if not seen.any():
        return {**empty, "n_matches": n_clusters}
    point = sums.sum(axis=0)[:, seen] / counts.sum(axis=0)[:, seen]

    def stat(r: np.ndarray) -> np.ndarray:
        return _distance(r[:, 0, seen] - r[:, 1, seen], metric)

    lo, hi = cluster_bootstrap_ci(sums, counts, stat, n_boot=n_boot, seed=seed, level=level)
    return {"distance": float(_distance(point[0] - point[1], metric)), "ci_low": lo, "ci_high": hi,
            "n_states": int(seen.sum()), "n_matches": n_clusters}


def fingerprint_distances(frame: Any, *, metric: str = "mean_abs", n_boot: int = 2000, seed: int = 0) -> Any:
    """`fingerprint_distance` for every pair of policies that played each game (the teacher-student pair among
    them), one row per game x unordered pair."""
    if metric not in ("mean_abs", "euclidean"):
        raise ConfigError(f"fingerprint metric must be 'mean_abs' or 'euclidean', got {metric!r}")
    return _distances(memory_one_rows(frame), metric, n_boot, seed)


def _distances(m1: Any, metric: str, n_boot: int, seed: int) -> Any:
    """`fingerprint_distances` on memory-one rows already built."""
    import pandas as pd

    rows = []
    if not len(m1):
        return pd.DataFrame(rows, columns=DISTANCE_COLUMNS)
    games, game_names = m1["game"].cat.codes.to_numpy(), m1["game"].cat.categories
    models, names = m1["model"].cat.codes.to_numpy(), m1["model"].cat.categories
    arrays = _state_arrays(m1)  # one set of arrays for every game, no per-game copy of the rows
    for gi in sorted(range(len(game_names)), key=lambda i: game_names[i]):
        game, sel = game_names[gi], games == gi
        parts = _split_parts(models, names, sel, *arrays)  # each model's rows split once per game, not once per pair
        for a, b in itertools.combinations(sorted(str(names[i]) for i in np.unique(models[sel])), 2):
            d = _parts_distance(parts.get(a), parts.get(b), metric, n_boot, seed, 0.95)
            rows.append({"game": game, "policy_a": a, "policy_b": b, **d})
    return pd.DataFrame(rows, columns=DISTANCE_COLUMNS)


def _stage_equilibria(game: Any) -> list[tuple[str, float, float]]:
    """Each stage Nash equilibrium as (label, row player's p(C), row player's expected payoff)."""
    out = []
    for eq in game.nash_equilibria():
        x, y = (np.asarray(s, dtype=float) for s in eq.strategies)
        out.append((eq.label(game.action_labels), float(x[0]), float(x @ game.row_matrix @ y)))
    return out


def finite_horizon_spe(game: Any) -> dict[str, Any]:
    """Subgame-perfect play of the finitely repeated game with a known horizon, by backward induction on the stage
    game: with a unique stage equilibrium, that equilibrium every round (all-D in the PD); with several, every
    sequence of stage equilibria is subgame perfect (and history-dependent ones may exist), so no single p(C)."""
    eqs = _stage_equilibria(game)
    labels = "; ".join(e[0] for e in eqs)
    if len(eqs) == 1:
        label, p, _ = eqs[0]
        name = {0.0: "all-D: ", 1.0: "all-C: "}.get(p, "")
        return {"stage_equilibria": labels, "spe_prediction": f"{name}{label} every round", "spe_p_cooperate": p}
    return {"stage_equilibria": labels, "spe_p_cooperate": math.nan,
            "spe_prediction": f"several stage equilibria ({labels}): any sequence of them is subgame perfect"}


def nash_reversion_threshold(game: Any) -> dict[str, Any]:
    """delta* of a symmetric 2x2 game: mutual C is a subgame-perfect outcome under continuation probability delta,
    sustained by grim reversion to the stage equilibrium worst for the deviator (payoff v_N), iff delta >=
    (T - R) / (T - v_N); 0 when C is already a best reply to C (R >= T); inf when R <= v_N (nothing to protect)."""
    v = getattr(game, "rstp", None)
    if v is None:
        raise ConfigError(f"game {getattr(game, 'id', game)!r} is not a symmetric 2x2 game; delta* needs R, S, T, P")
    label, _, v_n = min(_stage_equilibria(game), key=lambda e: e[2])
    t, r = float(v["T"]), float(v["R"])
    star = 0.0 if r >= t else (math.inf if r <= v_n else (t - r) / (t - v_n))
    return {"reversion_equilibrium": label, "v_nash": v_n, "delta_star": star}


def _continuation(run: str, games: Any, given: Mapping[str, float] | None, on_disk: bool) -> tuple[float, str]:
    """The run's continuation probability: given, else (`on_disk`: run is a run directory) its manifest's config,
    else estimated from match lengths (geometric: 1 - matches / rounds played, ignoring the max_rounds cap)."""
    if given is not None and run in given:
        return float(given[run]), "given"
    try:
        value = (read_manifest(run).get("config") or {}).get("continuation") if on_disk else None
        if value is not None:
            return float(value), "manifest"
    except TomarenaError:
        pass
    lengths = games.groupby("cluster")["round"].max() + 1
    return (1.0 - len(lengths) / float(lengths.sum()), "estimated") if len(lengths) else (math.nan, "")


def _observed(g: Any, horizon: float, n_boot: int, seed: int) -> dict[str, Any]:
    """Observed cooperation of one run x game: p(C) with a match-bootstrap CI, in the last round of a known
    horizon, and the share of rounds (both decisions valid) in which both executed C."""
    g = g.assign(all_rows=0)
    (cell,) = _ratio_table(g, "all_rows", [0], n_boot, seed, 0.95)
    last = g[g["round"] == horizon - 1]["coop"].mean() if math.isfinite(horizon) else math.nan
    n_pairs = n_mutual = 0  # rounds with both decisions valid, and of them those where both executed C
    for rows in _match_blocks(g["cluster"].to_numpy()):
        pairs = g.iloc[rows].groupby(["cluster", "round"])["action"].agg(["sum", "size"])
        pairs = pairs[pairs["size"] == 2]
        n_pairs, n_mutual = n_pairs + len(pairs), n_mutual + int((pairs["sum"] == 0).sum())
    mutual = n_mutual / n_pairs if n_pairs else math.nan
    return {"p_cooperate": cell["p_cooperate"], "ci_low": cell["ci_low"], "ci_high": cell["ci_high"],
            "p_cooperate_last_round": float(last), "mutual_cooperation": mutual, "n_matches": cell["n_matches"]}


def _sustainable(finite: bool, delta: float, delta_star: float, spe_p: float) -> bool | None:
    """Whether mutual C is a subgame-perfect outcome: always when C is a best reply to C (delta* = 0); with a
    known horizon never when the stage equilibrium is unique and not mutual C; under continuation iff delta >=
    delta*; None when undetermined (several stage equilibria, or delta unknown)."""
    if delta_star == 0.0:
        return True
    if finite:
        return False if math.isfinite(spe_p) else None
    return bool(delta >= delta_star) if math.isfinite(delta) else None


def repeated_theory(frame: Any, continuation: Mapping[str, float] | None = None, *, n_boot: int = 2000,
                    seed: int = 0) -> Any:
    """Per run x game x horizon of repeated symmetric 2x2 play: the stage equilibria, the finite-horizon SPE
    prediction, delta* beside the run's delta (continuation: {run dir or id: delta}, else the manifest, else
    estimated), whether mutual C is sustainable, and the observed cooperation (mutual: share of CC outcomes)."""
    return _theory(frame, memory_one_rows(frame), continuation, n_boot, seed)


def _distinct_repeated(frame: Any, columns: list[str]) -> Any:
    """The distinct values of `columns` (those the frame has) over its repeated rows, deduplicated per block of
    STATE_BLOCK rows first (one pass over 12 M rows hashed every column at once: about 0.5 GB)."""
    import pandas as pd

    read = frame[[c for c in columns if c in frame.columns]]
    mask = np.asarray(_repeated_mask(frame), dtype=bool)
    blocks = [read.iloc[i:i + STATE_BLOCK][mask[i:i + STATE_BLOCK]].drop_duplicates()
              for i in range(0, len(read), STATE_BLOCK)]
    return pd.concat(blocks).drop_duplicates()


def _theory(frame: Any, m1: Any, continuation: Mapping[str, float] | None, n_boot: int, seed: int) -> Any:
    """`repeated_theory` with the memory-one rows already built."""
    import pandas as pd

    rep = _distinct_repeated(frame, ["run_dir", "run_id", "game", "horizon"]) if len(frame) else frame
    horizons = rep.assign(run=_run_key(rep), game=as_str(rep["game"]))[["run", "game", "horizon"]]
    rows = []
    for (run, game_id), g in groups(m1, ["run", "game"], ["cluster", "round", "coop", "action"]):
        try:
            game = get_game(game_id)
            reversion = nash_reversion_threshold(game)
        except TomarenaError:
            continue
        h = horizons[(horizons["run"] == run) & (horizons["game"] == game_id)]["horizon"].dropna().unique()
        horizon = float(h[0]) if len(h) == 1 else math.nan
        delta, source = (math.nan, "") if len(h) else _continuation(run, g, continuation, "run_dir" in frame)
        spe = finite_horizon_spe(game)
        sustainable = _sustainable(bool(len(h)), delta, reversion["delta_star"], spe["spe_p_cooperate"])
        rows.append({"run": run, "game": game_id, "horizon": horizon, "delta": delta, "delta_source": source, **spe,
                     **reversion, "cooperation_sustainable": sustainable, **_observed(g, horizon, n_boot, seed)})
    return pd.DataFrame(rows, columns=THEORY_COLUMNS)


def repeated_tables(frame: Any, continuation: Mapping[str, float] | None = None, *, n_boot: int = 2000,
                    seed: int = 0, m1: Any = None) -> dict[str, Any]:
    """Every repeated-play table of the report: cooperation_by_round, fingerprints, fingerprint_distances and
    repeated_theory (empty tables when the frame has no repeated two-player C/D play). `m1`: the frame's
    memory_one_rows when already built."""
    m1 = memory_one_rows(frame) if m1 is None else m1
    return {"cooperation_by_round": _per_model_game(m1, "round", None, ROUND_COLUMNS, n_boot, seed, 0.95),
            "fingerprints": _per_model_game(m1, "state", [START, *STATES], FINGERPRINT_COLUMNS, n_boot, seed, 0.95),
            "fingerprint_distances": _distances(m1, "mean_abs", n_boot, seed),
            "repeated_theory": _theory(frame, m1, continuation, n_boot, seed)}
