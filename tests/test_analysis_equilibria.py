"""Equilibrium comparison: Nash distances with explicit selection, logit-QRE lambda fits, fingerprints, rounds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows
from tomarena.analysis.equilibria import (
    cooperation_over_rounds,
    equilibrium_points,
    fingerprints,
    fit_qre_lambda,
    nash_distance,
    nash_table,
    qre_fixed_points,
    qre_p,
)
from tomarena.envs import GAMES, symmetric_game
from tomarena.errors import ConfigError


def test_snowdrift_nearest_and_symmetric_equilibria() -> None:
    g = GAMES.get("snowdrift")  # mixed equilibrium at p(C) = 1/6
    d = nash_distance(g, 0.5)
    assert d["nearest_equilibrium"].startswith("mixed") and d["distance_nearest"] == pytest.approx(1 / 3)
    d = nash_distance(g, 0.9)
    assert d["nearest_equilibrium"] == "(C,D)" and d["distance_nearest"] == pytest.approx(0.1)
    assert d["symmetric_equilibrium"].startswith("mixed") and d["distance_symmetric"] == pytest.approx(0.9 - 1 / 6)
    assert math.isnan(d["distance_payoff_dominant"])


def test_stag_hunt_selection_is_explicit() -> None:
    study = {e["label"]: e for e in equilibrium_points(GAMES.get("stag_hunt"))}
    assert study["(C,C)"]["payoff_dominant"] and study["(C,C)"]["risk_dominant"]
    classic = symmetric_game(4, 0, 3, 2, kind="stag_hunt")  # (D,D) risk-dominant, mixed p(C) = 2/3
    d = nash_distance(classic, 0.4)
    assert d["distance_payoff_dominant"] == pytest.approx(0.6)
    assert d["distance_risk_dominant"] == pytest.approx(0.4)
    assert d["distance_nearest"] == pytest.approx(2 / 3 - 0.4)


def test_prisoners_dilemma_distance_and_non_2x2_rejected() -> None:
    d = nash_distance(GAMES.get("prisoners_dilemma"), 0.25)
    assert d["nearest_equilibrium"] == "(D,D)" and d["distance_nearest"] == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="not a symmetric 2x2"):
        nash_distance(GAMES.get("donation"), 0.5)


def test_nash_table_skips_unknown_games() -> None:
    props = pd.DataFrame([("m", "ir", "prisoners_dilemma", 0.2), ("m", "ir", "mystery", 0.2)],
                         columns=["model", "framing", "game", "p_cooperate"])
    t = nash_table(props)
    assert list(t["game"]) == ["prisoners_dilemma"] and t["distance_nearest"].iloc[0] == pytest.approx(0.2)


@pytest.mark.parametrize(("game", "lam"), [("prisoners_dilemma", 0.3), ("snowdrift", 0.8),
                                           ("prisoners_dilemma_doubled", 0.15)])
def test_qre_lambda_recovers_known_lambda(game: str, lam: float) -> None:
    g = GAMES.get(game)
    p = qre_p(g, lam)
    fit = fit_qre_lambda(g, p)
    assert fit["lambda"] == pytest.approx(lam, rel=1e-6) and not fit["at_bound"]


def test_qre_stag_hunt_has_three_branches_each_recovered() -> None:
    g = GAMES.get("stag_hunt")
    pts = qre_fixed_points(g, 5.0)
    assert len(pts) == 3
    for p in pts:
        assert fit_qre_lambda(g, p)["lambda"] == pytest.approx(5.0, rel=1e-6)


def test_qre_limits() -> None:
    pd_game = GAMES.get("prisoners_dilemma")
    assert qre_fixed_points(pd_game, 0.0) == [0.5]
    assert fit_qre_lambda(pd_game, 0.9)["lambda"] == pytest.approx(0.0, abs=1e-3)  # against the incentive
    assert fit_qre_lambda(pd_game, 0.0)["at_bound"]  # pure defection needs lambda -> infinity
    with pytest.raises(ConfigError, match="1.5"):
        fit_qre_lambda(pd_game, 1.5)


def _tft_frame() -> pd.DataFrame:
    rows = match_rows("tft", "alld", [0, 1, 1], [1, 1, 1]) + match_rows("tft", "allc", [0, 0, 0], [0, 0, 0], rep=1)
    return pd.DataFrame(rows)


def test_fingerprint_of_tit_for_tat() -> None:
    fp = fingerprints(_tft_frame())
    tft = fp[fp["model"] == "tft"].set_index("state")
    assert tft.loc["CC", "p_cooperate"] == 1.0 and tft.loc["CC", "n"] == 2
    assert tft.loc["CD", "p_cooperate"] == 0.0 and tft.loc["DD", "p_cooperate"] == 0.0
    assert "DC" not in tft.index
    alld = fp[fp["model"] == "alld"].set_index("state")
    assert alld.loc["DC", "p_cooperate"] == 0.0 and alld.loc["DD", "n"] == 1


def test_cooperation_over_rounds() -> None:
    t = cooperation_over_rounds(_tft_frame())
    tft = t[t["model"] == "tft"].set_index("round")
    assert list(tft["p_cooperate"]) == [1.0, 0.5, 0.5]
    assert list(tft["method"]) == ["exact"] * 3
