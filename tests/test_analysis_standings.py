"""Standings never rank payoffs of different games or runs together (issue 25 item 7): per run x game ranks, the
winner and runner-up of each game, the headline sentence, natural game order, and replicator dynamics of many
cross-play matrices at once matching the one-game function."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows
from tomarena.analysis.evolution import replicator_many
from tomarena.analysis.standings import STANDINGS_COLUMNS, headline, natural_key, standings_by_game, winners
from tomarena.analysis.tournament import replicator
from tomarena.errors import ConfigError


def _frame() -> pd.DataFrame:
    """Run r1: a Prisoner's Dilemma (payoffs R 5, S 2, T 10, P 3) and a Stag Hunt (R 10, S 2, T 5, P 3); run r2:
    the Prisoner's Dilemma again with other players."""
    rows = []
    for rep in range(2):  # allc vs alld twice: allc gets S = 2, alld T = 10 every round
        rows += match_rows("allc", "alld", [0, 0], [1, 1], rep=rep)
    rows += match_rows("allc", "allc", [0, 0], [0, 0])  # self-play: two seats of R = 5
    rows += match_rows("allc", "alld", [0, 0, 0], [1, 0, 0], game="stag_hunt")  # allc 2, 10, 10; alld 5, 10, 10
    r1 = pd.DataFrame(rows).assign(run_dir="runs/r1")
    r2 = pd.DataFrame(match_rows("tft", "alld", [0, 1], [1, 1])).assign(run_dir="runs/r2")
    return pd.concat([r1, r2], ignore_index=True)


def test_standings_rank_within_each_run_and_game() -> None:
    st = standings_by_game(_frame(), n_boot=200)
    assert list(st.columns) == STANDINGS_COLUMNS
    assert st[["run", "game", "rank", "policy"]].values.tolist() == [
        ["runs/r1", "prisoners_dilemma", 1, "alld"], ["runs/r1", "prisoners_dilemma", 2, "allc"],
        ["runs/r1", "stag_hunt", 1, "alld"], ["runs/r1", "stag_hunt", 2, "allc"],
        ["runs/r2", "prisoners_dilemma", 1, "alld"], ["runs/r2", "prisoners_dilemma", 2, "tft"]]
    pd_r1 = st[(st["run"] == "runs/r1") & (st["game"] == "prisoners_dilemma")].set_index("policy")
    # allc: 2 matches vs alld (S = 2 each of 4 rounds) + 1 self-match (two seats, R = 5 each of 4 seat-rounds)
    assert pd_r1.loc["allc", ["matches", "rounds_played"]].tolist() == [3, 8]
    assert pd_r1.loc["allc", "mean_payoff_per_round"] == pytest.approx((2 * 4 + 5 * 4) / 8)
    assert pd_r1.loc["alld", ["matches", "rounds_played", "mean_payoff_per_round", "cooperation_rate"]].tolist() \
        == [2, 4, 10.0, 0.0]
    assert pd_r1.loc["alld", ["ci_low", "ci_high"]].tolist() == [10.0, 10.0]  # every seat the same: no spread
    sh = st[st["game"] == "stag_hunt"].set_index("policy")
    assert sh.loc["allc", "mean_payoff_per_round"] == pytest.approx(22 / 3)
    assert sh.loc["alld", "mean_payoff_per_round"] == pytest.approx(25 / 3)
    assert sh.loc["alld", "cooperation_rate"] == pytest.approx(2 / 3)
    r2 = st[st["run"] == "runs/r2"].set_index("policy")
    assert r2.loc["tft", "mean_payoff_per_round"] == 2.5 and r2.loc["tft", "cooperation_rate"] == 0.5
    assert r2.loc["alld", "mean_payoff_per_round"] == 6.5  # T = 10, then P = 3: never beside run r1's 10


def test_tied_policies_share_a_rank_and_the_winner_table_says_tied() -> None:
    rows = match_rows("a", "b", [0, 0], [0, 0]) + match_rows("c", "d", [1], [1], rep=1)
    st = standings_by_game(pd.DataFrame(rows), n_boot=50)
    assert st[["policy", "rank", "mean_payoff_per_round"]].values.tolist() == [
        ["a", 1, 5.0], ["b", 1, 5.0], ["c", 3, 3.0], ["d", 3, 3.0]]
    win = winners(st)
    assert win[["game", "policies", "winner", "winner_payoff", "runner_up", "runner_up_payoff", "margin"]] \
        .values.tolist() == [["prisoners_dilemma", 4, "a", 5.0, "b", 5.0, 0.0]]
    assert headline(win) == ("Winners (mean payoff per round in that game): prisoners_dilemma: a 5.00/round, "
                             "tied with b 5.00.")


def test_headline_names_each_game_and_its_run_then_counts_wins_beyond_the_limit() -> None:
    win = winners(standings_by_game(_frame(), n_boot=50))
    assert win[["run", "game", "winner", "runner_up"]].values.tolist() == [
        ["runs/r1", "prisoners_dilemma", "alld", "allc"], ["runs/r1", "stag_hunt", "alld", "allc"],
        ["runs/r2", "prisoners_dilemma", "alld", "tft"]]
    assert win["margin"].tolist() == pytest.approx([10 - 3.5, 25 / 3 - 22 / 3, 6.5 - 2.5])
    assert headline(win) == (
        "Winners (mean payoff per round in that game): prisoners_dilemma (runs/r1): alld 10.00/round, runner-up allc "
        "3.50; stag_hunt (runs/r1): alld 8.33/round, runner-up allc 7.33; prisoners_dilemma (runs/r2): alld "
        "6.50/round, runner-up tft 2.50.")
    assert headline(win, max_games=2) == (
        "Games won, of 3 run x game pairs: alld 3. The winner of every game, with its runner-up, is in the table "
        "'Winner per game' (winners.csv).")
    one = win[win["run"] == "runs/r1"]
    assert headline(one, max_games=1).startswith("Games won, of 2 games: alld 2.")
    assert headline(win.iloc[:0]) == ""


def test_single_policy_game_has_no_runner_up_and_no_rows_give_empty_tables() -> None:
    st = standings_by_game(pd.DataFrame(match_rows("a", "a", [0], [0])), n_boot=10)
    win = winners(st)
    assert win["runner_up"].tolist() == [""] and math.isnan(win["margin"].iloc[0])
    assert headline(win) == "Winners (mean payoff per round in that game): prisoners_dilemma: a 5.00/round."
    sweep_only = pd.DataFrame(match_rows("a", "b", [0], [0])).assign(kind="sweep")
    assert standings_by_game(sweep_only).empty and list(standings_by_game(sweep_only).columns) == STANDINGS_COLUMNS


def test_natural_key_orders_numbers_by_value() -> None:
    games = ["rg144/10", "rg144/2", "stag_hunt", "rg144/1", "prisoners_dilemma"]
    assert sorted(games, key=natural_key) == ["prisoners_dilemma", "rg144/1", "rg144/2", "rg144/10", "stag_hunt"]


def test_replicator_many_matches_the_one_game_dynamics() -> None:
    labels = ["a", "b", "c"]
    mats = {"pd": pd.DataFrame([[3.0, 0.0], [5.0, 1.0]], index=["c", "d"], columns=["c", "d"]),
            "rps": pd.DataFrame([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], index=labels, columns=labels, dtype=float),
            "coord": pd.DataFrame([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.5]], index=labels,
                                  columns=labels)}
    many = replicator_many(mats)
    assert list(many) == ["pd", "rps", "coord"]
    for game, m in mats.items():
        one = replicator(m)
        assert list(many[game]) == list(one)
        assert np.allclose(list(many[game].values()), list(one.values()), rtol=0, atol=1e-12)
    assert many["pd"]["d"] == pytest.approx(1.0)
    assert list(many["rps"].values()) == pytest.approx([1 / 3] * 3)  # the uniform mix is a rest point


def test_replicator_many_refuses_an_incomplete_matrix() -> None:
    gap = pd.DataFrame([[1.0, np.nan], [2.0, 1.0]], index=["a", "b"], columns=["a", "b"])
    with pytest.raises(ConfigError, match="replicator dynamics of g need a complete square payoff matrix"):
        replicator_many({"g": gap})
