"""Akata et al.'s findings recomputed (issue 23 item 3): score per Robinson-Goforth family against the best achievable,
forgiveness in the Prisoner's Dilemma family and coordination in the Battle-of-the-Sexes-like games, on hand-made
matches with values worked out by hand, and on the real recordings of three games against a plain-Python count."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows
from tomarena.analysis.load import load_runs
from tomarena.analysis.rg_findings import (
    BOS_COLUMNS,
    FORGIVENESS_COLUMNS,
    bos_coordination,
    bos_games,
    family_scores,
    findings_text,
    pd_forgiveness,
    rg_rows,
)
from tomarena.arena.recorded import import_recordings, policy_label
from tomarena.envs.rg144 import recordings, rg144_games

PD, BATTLE = "rg144/67", "rg144/23"  # Prisoners' Dilemma (R 3, S 1, T 4, P 2); Battle (row prefers B/A, column A/B)


def _frame() -> pd.DataFrame:
    rows = match_rows("x", "y", [0, 0, 1, 1], [0, 1, 0, 0], game=PD, rep=0)  # y defects in round 1, x never forgives
    rows += match_rows("x", "z", [0, 0, 0, 0], [0, 0, 0, 0], game=PD, rep=1)
    rows += match_rows("y", "z", [0, 0, 0, 0], [0, 0, 0, 1], game=PD, rep=2)  # z defects in the last round
    rows += match_rows("p", "q", [1, 0, 0, 1], [0, 1, 0, 1], game=BATTLE, rep=0)  # on (B,A), then (A,B), then off
    rows += match_rows("q", "p", [1, 1], [0, 0], game=BATTLE, rep=1)  # twice on the row seat's (q's) favourite
    rows += match_rows("x", "y", [0], [0], game="prisoners_dilemma", rep=3)  # not a Robinson-Goforth game
    return pd.DataFrame(rows)


def test_rg_rows_pair_each_decision_with_the_partner_and_the_table() -> None:
    frame = _frame()
    lone = frame[(frame["game"] == PD) & (frame["round"] == 0) & (frame["match_key"].str.startswith("x,z"))]
    rows = rg_rows(frame.drop(index=lone.index[1:]))  # round 0 of x vs z keeps one seat only: dropped
    assert len(rows) == 12 + 11 - 1 + 8 + 4
    assert set(rows["game"]) == {PD, BATTLE} and set(rows["family"]) == {"PD Family", "Biased"}
    xy = rows[(rows["policy"] == "y") & (rows["partner"] == "x")].sort_values("round")
    assert xy[["seat", "action", "partner_action", "reward", "seat_max", "best_reply"]].values.tolist() == [
        [1, 0, 0, 3, 4, 4], [1, 1, 0, 4, 4, 4], [1, 0, 1, 1, 4, 2], [1, 0, 1, 1, 4, 2]]


def test_family_scores_against_the_seat_maximum_and_the_best_reply() -> None:
    sc = family_scores(rg_rows(_frame())).set_index(["policy", "family"])
    assert sc.index.get_level_values("policy").unique().tolist() == ["p", "q", "x", "y", "z"]
    assert sc.loc["x"].index.tolist() == ["PD Family", "all"]
    # x: 3 + 1 + 4 + 4 against y, then 3 x 4 against z; the seat's maximum is 4 every round
    x = sc.loc[("x", "PD Family")]
    assert x[["games", "decisions", "mean_payoff", "mean_seat_max"]].tolist() == [1, 8, 3.0, 4.0]
    assert x["score_vs_max"] == 24 / 32
    # best replies to y's A, B, A, A: 4, 2, 4, 4; to z's A x 4: 4 each
    assert x["score_vs_best_reply"] == pytest.approx(24 / 30)
    p = sc.loc[("p", "Biased")]  # row 4, 3, 3, 1; column 3, 3 (row B against column A twice)
    assert p[["decisions", "score_vs_max"]].tolist() == [6, pytest.approx(17 / 24)]
    assert p["score_vs_best_reply"] == pytest.approx(17 / (4 + 3 + 4 + 3 + 3 + 3))
    assert sc.loc[("p", "all"), "score_vs_max"] == sc.loc[("p", "Biased"), "score_vs_max"]


def test_pd_forgiveness_before_and_after_the_partners_first_defection() -> None:
    got = pd_forgiveness(rg_rows(_frame()))
    assert list(got.columns) == FORGIVENESS_COLUMNS and got["policy"].tolist() == ["x", "y", "z"]
    x, y, z = (r._asdict() for r in got.itertuples(index=False))
    assert x == {"policy": "x", "matches": 2, "matches_partner_defected": 1, "n_before": 2, "p_option1_before": 1.0,
                 "n_after": 2, "p_option1_after": 0.0, "matches_with_rounds_after": 1, "never_again": 1.0,
                 "n_no_defection": 4, "p_option1_no_defection": 1.0}
    # y: before x's defection in round 2 it played A, B, A; after it, A; z's defection in the last round of the
    # other match leaves no round after it (4 rounds before, none after)
    assert {k: y[k] for k in FORGIVENESS_COLUMNS[1:9]} == {
        "matches": 2, "matches_partner_defected": 2, "n_before": 7, "p_option1_before": pytest.approx(6 / 7),
        "n_after": 1, "p_option1_after": 1.0, "matches_with_rounds_after": 1, "never_again": 0.0}
    assert y["n_no_defection"] == 0 and math.isnan(y["p_option1_no_defection"])
    assert z["matches_partner_defected"] == 0 and z["n_before"] == 0 and math.isnan(z["p_option1_before"])
    assert math.isnan(z["never_again"]) and z["n_no_defection"] == 8 and z["p_option1_no_defection"] == 7 / 8


def test_bos_coordination_counts_rounds_on_either_equilibrium() -> None:
    rows = rg_rows(_frame())
    got = bos_coordination(rows)
    assert list(got.columns) == BOS_COLUMNS
    assert got.values.tolist() == [["p", "all", 1, 6, 4 / 6, 1 / 6, 3 / 6], ["q", "all", 1, 6, 4 / 6, 3 / 6, 1 / 6]]
    pairs = bos_coordination(rows, by_partner=True)
    assert pairs[["policy", "partner", "decisions"]].values.tolist() == [["p", "q", 6], ["q", "p", 6]]
    assert bos_coordination(rows[rows["game"] == PD]).empty


def test_the_game_classes_match_the_shipped_tables() -> None:
    assert sorted(bos_games(), key=lambda g: int(g.split("/")[1])) == [
        f"rg144/{n}" for n in (10, 11, 22, 23, 24, 34, 35, 36)]
    assert bos_games()[BATTLE] == ((1, 0), (0, 1))
    pd_family = [g for g in rg144_games() if g.family == "PD Family"]
    assert len(pd_family) == 7
    for g in pd_family:  # option 1 is the cooperative option: mutual A beats the unique equilibrium for both seats
        assert g.pure_equilibria() == [(1, 1)]
        assert all(a > b for a, b in zip(g.payoff((0, 0)), g.payoff((1, 1)), strict=True))


def test_findings_text_names_the_best_per_family_and_the_rates() -> None:
    rows = rg_rows(_frame())
    text = findings_text(family_scores(rows), pd_forgiveness(rows), bos_coordination(rows))
    # q: 3 + 4 + 2 + 1 as the column seat, 4 + 4 as the row seat (18 / 24); z: 12 against x, 13 against y (25 / 32)
    assert text.startswith("Best score relative to the seat's maximum, per family: Biased q 0.750; PD Family z "
                           "0.781.")
    assert "x 100% -> 0% (100% of 1 matches); y 86% -> 100% (0% of 1 matches); z n/a -> n/a (n/a of 0 matches)" \
        in text
    assert text.endswith("Battle-of-the-Sexes-like games (1), rounds ending on a pure equilibrium: p 67% (n=6); "
                         "q 67% (n=6).")
    assert findings_text(family_scores(rows.iloc[:0]), pd_forgiveness(rows.iloc[:0]),
                         bos_coordination(rows.iloc[:0])) == ""


def _reference(games: set[int]) -> tuple[dict, dict]:
    """From the shipped recordings, by plain loops: per model (option 1 after the partner's first defection in the
    PD family: [chosen, rounds]) and (Battle-like decisions on an equilibrium: [hits, decisions])."""
    pd_ids = {g.number for g in rg144_games() if g.family == "PD Family"}
    bos = {int(k.split("/")[1]): v for k, v in bos_games().items()}
    after: dict[str, list[int]] = {}
    coord: dict[str, list[int]] = {}
    for m in recordings():
        if m.game not in games:
            continue
        for seat in (0, 1):
            model = policy_label(m.models[seat])
            if m.game in pd_ids:
                first = next((t for t, a in enumerate(m.actions) if a[1 - seat] == 1), None)
                acc = after.setdefault(model, [0, 0])
                for t in range(len(m.actions)) if first is not None else ():
                    if t > first:
                        acc[0] += m.actions[t][seat] == 0
                        acc[1] += 1
            if m.game in bos:
                acc = coord.setdefault(model, [0, 0])
                for joint in m.actions:
                    acc[0] += joint in bos[m.game]
                    acc[1] += 1
    return after, coord


def test_the_real_recordings_of_three_games(tmp_path: Path) -> None:
    games = {1, 23, 67}  # Hegemony (Unfair), Battle (Biased), Prisoners' Dilemma (PD Family)
    rows = rg_rows(load_runs([import_recordings(tmp_path / "akata", games=games)]))
    assert len(rows) == 3 * 25 * 20
    after, coord = _reference(games)
    forgive = pd_forgiveness(rows).set_index("policy")
    bos = bos_coordination(rows).set_index("policy")
    scores = family_scores(rows).set_index(["policy", "family"])
    for model, (hits, n) in after.items():
        assert forgive.loc[model, "n_after"] == n
        assert forgive.loc[model, "p_option1_after"] == pytest.approx(hits / n)
    for model, (hits, n) in coord.items():
        assert bos.loc[model, ["decisions", "p_equilibrium"]].tolist() == [n, pytest.approx(hits / n)]
    assert forgive.loc["akata/gpt-4", "matches"] == 10 and bos.loc["akata/gpt-4", "games"] == 1
    assert scores.loc[("akata/gpt-4", "all"), "decisions"] == 300
    assert set(scores.index.get_level_values("family")) == {"Unfair", "Biased", "PD Family", "all"}
