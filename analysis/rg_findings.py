"""The headline findings of Akata et al.'s repeated-games study recomputed from play of the 144 Robinson-Goforth games
(`rg144/<n>`; the run `tomarena import akata` writes, or any tournament on those games):

- score per game family relative to the best achievable (`family_scores`). Two yardsticks, both per decision and
  summed before dividing: `score_vs_max` = points / the most the seat could get in any cell of the game's table
  (the seat's maximum payoff: what it would earn if the partner always played into its best cell);
  `score_vs_best_reply` = points / what the seat's best reply to the partner's actual choice that round would have
  paid (hindsight best reply: 1 = it never left points on the table given what the partner did);
- forgiveness in the Prisoner's Dilemma family (`pd_forgiveness`): the rate of choosing option 1 (the cooperative
  option: in every PD-family table mutual option 1 pays both seats more than the unique equilibrium, mutual option 2)
  in rounds up to the partner's first defection (choices made before seeing it) against the rounds after it, and
  the share of matches in which the policy never chose option 1 again;
- coordination in the Battle-of-the-Sexes-like games (`bos_coordination`): the Biased-family games with exactly two
  pure equilibria that differ in both seats' actions and that the two seats rank oppositely (`bos_games`: Battle,
  Asym/Skewed/Quasi Battle and Hero, 8 games); the share of decisions whose round ended on either pure equilibrium,
  on the seat's own preferred one, and on the partner's.

The study reports that the models do well where valuing their own interest pays (the PD family), less well where
they must coordinate (Battle of the Sexes), and that GPT-4 kept defecting once its partner had defected once.
Two-player tournament rows only; option 1 is action 0. pandas/numpy only.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from tomarena.analysis.columns import run_column, str_categorical
from tomarena.envs.rg144 import FAMILIES, RGGame, rg144_games

PD_FAMILY, BIASED = "PD Family", "Biased"
COOPERATIVE = 0  # option 1
ALL = "all"  # the family label of a policy's row over every game
ROW_COLUMNS = ["run", "match", "game", "family", "policy", "partner", "seat", "round", "action", "partner_action",
               "reward", "seat_max", "best_reply"]
SCORE_COLUMNS = ["policy", "family", "games", "decisions", "mean_payoff", "mean_seat_max", "score_vs_max",
                 "score_vs_best_reply"]
FORGIVENESS_COLUMNS = ["policy", "matches", "matches_partner_defected", "n_before", "p_option1_before", "n_after",
                       "p_option1_after", "matches_with_rounds_after", "never_again", "n_no_defection",
                       "p_option1_no_defection"]
BOS_COLUMNS = ["policy", "partner", "games", "decisions", "p_equilibrium", "p_own_preferred", "p_partner_preferred"]


@functools.cache
def _payoff_arrays() -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
    """(game id -> index, payoff tables [game, row action, column action, seat], each seat's maximum payoff
    [game, seat], the seat's best-reply payoff to each partner action [game, seat, partner action])."""
    games = rg144_games()
    tables = np.asarray([g.payoffs for g in games], dtype=float)
    seat_max = tables.max(axis=(1, 2))
    best = np.stack([tables[:, :, :, 0].max(axis=1), tables[:, :, :, 1].max(axis=2)], axis=1)
    return {g.id: i for i, g in enumerate(games)}, tables, seat_max, best


def rg_rows(frame: Any) -> Any:
    """One row per decision of two-player tournament matches on rg144 games (rounds where both seats' decisions are
    in the trace): run, match (unique across runs), game, family, policy, partner, seat (0 = row player), round,
    the executed action and the partner's, the reward, the seat's maximum payoff in the table and its best-reply
    payoff to the partner's action that round."""
    import pandas as pd

    if not len(frame):
        return pd.DataFrame(columns=ROW_COLUMNS)
    index, _, seat_max, best = _payoff_arrays()
    keep = ((frame["kind"] == "tournament").to_numpy() & str_categorical(frame["game"]).isin(list(index))
            & frame["reward"].notna().to_numpy() & str_categorical(frame["agent"]).isin(["player_0", "player_1"]))
    read = [run_column(frame), "episode_id", "game", "policy", "opponents", "agent", "round", "action", "reward"]
    df = frame.loc[keep, read]  # the columns read, of the kept rows only
    if df.empty:
        return pd.DataFrame(columns=ROW_COLUMNS)
    run = df[run_column(df)].astype(str).to_numpy()
    out = pd.DataFrame({"run": run, "episode": df["episode_id"].astype(str).to_numpy(),
                        "game": df["game"].astype(str).to_numpy(), "policy": df["policy"].astype(str).to_numpy(),
                        "partner": df["opponents"].astype(str).to_numpy(),
                        "seat": (df["agent"].astype(str) == "player_1").to_numpy().astype(int),
                        "round": df["round"].to_numpy(int), "action": df["action"].to_numpy(int),
                        "reward": df["reward"].to_numpy(float)})
    out["match"] = out.groupby(["run", "episode"], sort=False).ngroup()
    pair = out.groupby(["match", "round"])["action"]
    out = out[(pair.transform("size") == 2).to_numpy()].copy()
    out["partner_action"] = out.groupby(["match", "round"])["action"].transform("sum") - out["action"]
    gi = out["game"].map(index).to_numpy(int)
    seat = out["seat"].to_numpy(int)
    out["seat_max"] = seat_max[gi, seat]
    out["best_reply"] = best[gi, seat, out["partner_action"].to_numpy(int)]
    families = {g.id: g.family for g in rg144_games()}
    out["family"] = out["game"].map(families)
    return out[ROW_COLUMNS].reset_index(drop=True)


def family_scores(rows: Any) -> Any:
    """Per policy x family (in the study's family order, then `all` = every game): games, decisions, mean payoff,
    mean seat maximum, score_vs_max = sum of points / sum of seat maxima and score_vs_best_reply = sum of points /
    sum of best-reply payoffs (see the module docstring)."""
    import pandas as pd

    if rows.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    both = pd.concat([rows, rows.assign(family=ALL)], ignore_index=True)
    g = both.groupby(["policy", "family"], sort=False)
    sums = g[["reward", "seat_max", "best_reply"]].sum()
    out = pd.DataFrame({"games": g["game"].nunique(), "decisions": g.size(), "mean_payoff": g["reward"].mean(),
                        "mean_seat_max": g["seat_max"].mean(), "score_vs_max": sums["reward"] / sums["seat_max"],
                        "score_vs_best_reply": sums["reward"] / sums["best_reply"]}).reset_index()
    order = {f: i for i, f in enumerate((*FAMILIES, ALL))}
    out = out.assign(_f=out["family"].map(order)).sort_values(["policy", "_f"], ignore_index=True)
    return out[SCORE_COLUMNS]


def pd_forgiveness(rows: Any) -> Any:
    """Per policy, over its seats in PD-family matches: matches (seats: a self-match counts twice), those whose
    partner chose option 2 at least once, the rate of option 1 in rounds up to and including the partner's first
    defection (n_before; choices made before seeing it) and after it (n_after), never_again = the share of matches
    with rounds after that defection in which the policy never chose option 1 again, and the rate of option 1 in
    matches whose partner never defected."""
    import pandas as pd

    pdr = rows[rows["family"] == PD_FAMILY] if len(rows) else rows
    if pdr.empty:
        return pd.DataFrame(columns=FORGIVENESS_COLUMNS)
    key = [pdr["match"], pdr["seat"]]
    first = pdr["round"].where(pdr["partner_action"] != COOPERATIVE).groupby(key).transform("min")
    own = (pdr["action"] == COOPERATIVE).astype(float)
    before, after, never = pdr["round"] <= first, pdr["round"] > first, first.isna()
    df = pdr.assign(own=own, before=before, after=after, never=never, defected=first.notna())
    out = []
    for policy, g in df.groupby("policy", sort=True):
        seats = g.groupby(["match", "seat"])
        later = g[g["after"]].groupby(["match", "seat"])["own"].max()
        b, a, n = g[g["before"]], g[g["after"]], g[g["never"]]
        out.append({"policy": policy, "matches": seats.ngroups,
                    "matches_partner_defected": int(seats["defected"].first().sum()),
                    "n_before": len(b), "p_option1_before": float(b["own"].mean()) if len(b) else math.nan,
                    "n_after": len(a), "p_option1_after": float(a["own"].mean()) if len(a) else math.nan,
                    "matches_with_rounds_after": len(later),
                    "never_again": float((later == 0).mean()) if len(later) else math.nan,
                    "n_no_defection": len(n), "p_option1_no_defection": float(n["own"].mean()) if len(n) else math.nan})
    return pd.DataFrame(out, columns=FORGIVENESS_COLUMNS)


def bos_equilibria(game: RGGame) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(the row seat's preferred, the column seat's preferred) pure equilibrium of a Battle-of-the-Sexes-like game:
    a Biased-family game with exactly two pure equilibria that differ in both seats' actions, which the row seat
    strictly prefers one way and the column seat the other; None for any other game."""
    eqs = game.pure_equilibria()
    if game.family != BIASED or len(eqs) != 2 or eqs[0][0] == eqs[1][0] or eqs[0][1] == eqs[1][1]:
        return None
    (r0, c0), (r1, c1) = (game.payoff(e) for e in eqs)
    if r0 > r1 and c1 > c0:
        return eqs[0], eqs[1]
    if r1 > r0 and c0 > c1:
        return eqs[1], eqs[0]
    return None


def bos_games() -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """Game id -> (row-preferred, column-preferred) equilibrium of every Battle-of-the-Sexes-like rg144 game."""
    found = {g.id: bos_equilibria(g) for g in rg144_games()}
    return {k: v for k, v in found.items() if v is not None}


def bos_coordination(rows: Any, by_partner: bool = False) -> Any:
    """Per policy (partner "all"), or per policy x partner, over its decisions in the Battle-of-the-Sexes-like games:
    games, decisions, and the shares of those decisions whose round ended on either pure equilibrium
    (p_equilibrium), on the seat's own preferred one and on the partner's preferred one."""
    import pandas as pd

    eqs = bos_games()
    b = rows[rows["game"].isin(list(eqs))] if len(rows) else rows
    if b.empty:
        return pd.DataFrame(columns=BOS_COLUMNS)
    seat0 = (b["seat"] == 0).to_numpy()
    row_a = np.where(seat0, b["action"], b["partner_action"])
    col_a = np.where(seat0, b["partner_action"], b["action"])
    pref = np.array([eqs[g] for g in b["game"]])  # [decision, row/column preferred, (row action, column action)]
    hit = [(row_a == pref[:, k, 0]) & (col_a == pref[:, k, 1]) for k in (0, 1)]
    own = np.where(seat0, hit[0], hit[1])
    other = np.where(seat0, hit[1], hit[0])
    df = b.assign(eq=(hit[0] | hit[1]).astype(float), own=own.astype(float), other=other.astype(float))
    if not by_partner:
        df = df.assign(partner=ALL)
    g = df.groupby(["policy", "partner"], sort=True)
    out = pd.DataFrame({"games": g["game"].nunique(), "decisions": g.size(), "p_equilibrium": g["eq"].mean(),
                        "p_own_preferred": g["own"].mean(), "p_partner_preferred": g["other"].mean()}).reset_index()
    return out[BOS_COLUMNS]


def findings_text(scores: Any, forgiveness: Any, bos: Any) -> str:
    """The recomputed findings in a few sentences: the best policy per family by score_vs_max, each policy's option-1
    rate before and after its partner's first PD-family defection (with never_again), and each policy's BoS
    coordination rate; "" when there is nothing to say."""
    parts = []
    fam = scores[scores["family"] != ALL] if len(scores) else scores
    if len(fam) and fam["policy"].nunique() > 1:
        ranked = fam.sort_values(["score_vs_max", "policy"], ascending=[False, True])
        best = ranked.groupby("family", sort=False).head(1)
        order = {f: i for i, f in enumerate(FAMILIES)}
        best = best.assign(_f=best["family"].map(order)).sort_values("_f")
        parts.append("Best score relative to the seat's maximum, per family: " + "; ".join(
            f"{r.family} {r.policy} {r.score_vs_max:.3f}" for r in best.itertuples(index=False)) + ".")
    if len(forgiveness):
        parts.append("PD family, option 1 before -> after the partner's first defection (never again): " + "; ".join(
            f"{r.policy} {_pct(r.p_option1_before)} -> {_pct(r.p_option1_after)} ({_pct(r.never_again)} of "
            f"{r.matches_with_rounds_after} matches)" for r in forgiveness.itertuples(index=False)) + ".")
    if len(bos):
        parts.append(f"Battle-of-the-Sexes-like games ({int(bos['games'].max())}), rounds ending on a pure "
                     "equilibrium: " + "; ".join(f"{r.policy} {_pct(r.p_equilibrium)} (n={r.decisions})"
                                                 for r in bos.itertuples(index=False)) + ".")
    return " ".join(parts)


def _pct(share: float) -> str:
    return f"{share:.0%}" if math.isfinite(share) else "n/a"
