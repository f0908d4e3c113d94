"""Equilibrium comparison: Nash distances with explicit selection, logit-QRE lambda per cell (honest verdicts) and
jointly per model by maximum likelihood, one-shot rows only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows, sweep_rows
from tomarena.analysis.equilibria import (
    NO_LAMBDA,
    equilibrium_points,
    fit_qre_joint,
    fit_qre_lambda,
    nash_distance,
    nash_table,
    principal_interval,
    principal_qre_p,
    qre_cells,
    qre_fixed_points,
    qre_loglik,
    qre_model_table,
    qre_p,
    qre_table,
)
from tomarena.analysis.propensity import propensity_table
from tomarena.analysis.repeated import one_shot_rows
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
    # the principal branch (from 1/2 at lambda 0) climbs to the risk-dominant (C,C); the two D-side ones are "other"
    assert [fit_qre_lambda(g, p)["branch"] for p in pts] == ["other", "other", "principal"]
    assert principal_qre_p(g, 5.0) == pytest.approx(pts[2], abs=1e-12)


def test_qre_limits() -> None:
    pd_game = GAMES.get("prisoners_dilemma")
    assert qre_fixed_points(pd_game, 0.0) == [0.5]
    against = fit_qre_lambda(pd_game, 0.9)  # against the incentive: no lambda >= 0, never "lambda 0 = random"
    assert math.isnan(against["lambda"]) and against["verdict"] == NO_LAMBDA and against["branch"] == ""
    assert fit_qre_lambda(pd_game, 0.5) == {"lambda": 0.0, "p_qre": 0.5, "at_bound": False, "branch": "principal",
                                            "verdict": "uniform (λ = 0)"}
    assert fit_qre_lambda(pd_game, 0.0)["at_bound"]  # pure defection needs lambda -> infinity
    assert fit_qre_lambda(pd_game, 1.0)["verdict"] == NO_LAMBDA
    with pytest.raises(ConfigError, match="1.5"):
        fit_qre_lambda(pd_game, 1.5)


def test_principal_branch_reach_per_study_game() -> None:
    """The p(C) range lambda in [0, inf) covers: PD (0, 1/2], Snowdrift down to its mixed equilibrium 1/6,
    Stag Hunt and Prisoner's Delight [1/2, 1)."""
    reach = {g: principal_interval(GAMES.get(g)) for g in ("prisoners_dilemma", "snowdrift", "stag_hunt",
                                                           "prisoners_delight")}
    assert reach == {"prisoners_dilemma": (0.0, 0.5), "snowdrift": (pytest.approx(1 / 6), 0.5),
                     "stag_hunt": (0.5, 1.0), "prisoners_delight": (0.5, 1.0)}
    snow = GAMES.get("snowdrift")
    assert principal_qre_p(snow, 2000.0) == pytest.approx(1 / 6, abs=2e-4)
    assert fit_qre_lambda(snow, 0.1)["verdict"] == NO_LAMBDA  # below the mixed equilibrium: no symmetric QRE


def test_study_pd_cell_above_half_is_unexplained_not_random() -> None:
    """LLaMa-2-70b friends x PD, P(C) = 0.82 (tit-for-tat): the PD's QRE never exceeds 1/2, so no lambda >= 0."""
    props = pd.DataFrame([("llama-2-70b", "friendsharing", "prisoners_dilemma", 0.82),
                          ("llama-2-70b", "friendsharing", "snowdrift", 0.3)],
                         columns=["model", "framing", "game", "p_cooperate"])
    t = qre_table(props).set_index("game")
    assert t.loc["prisoners_dilemma", "verdict"] == NO_LAMBDA and math.isnan(t.loc["prisoners_dilemma", "lambda"])
    assert t.loc["snowdrift", "verdict"] == "fitted" and t.loc["snowdrift", "branch"] == "principal"
    assert t.loc["snowdrift", "lambda"] == pytest.approx(math.log(0.3 / 0.7) / (0.3 * (5 - 10) + 0.7 * (3 - 2)))
    model = qre_model_table(props).iloc[0]
    assert model["n_cells"] == 2 and model["n_unexplained"] == 1 and model["n_off_principal"] == 1


STUDY = ("prisoners_dilemma", "snowdrift", "stag_hunt", "prisoners_delight")


def test_joint_fit_recovers_lambda_from_exact_cells() -> None:
    """Exact cells (fractional counts p, 1 - p with weight 1) at the QRE of one lambda: the MLE is that lambda."""
    lam = 0.4
    cells = [(GAMES.get(g), principal_qre_p(GAMES.get(g), lam), 1.0) for g in STUDY]
    fit = fit_qre_joint(cells)
    assert fit["lambda"] == pytest.approx(lam, abs=1e-6) and not fit["at_bound"]
    assert fit["loglik"] == pytest.approx(fit["loglik_saturated"], abs=1e-9)  # every cell fitted exactly
    assert fit["ci_low"] < lam < fit["ci_high"]


def test_joint_fit_recovers_lambda_from_sampled_counts() -> None:
    """Counts simulated at lambda = 0.25 (4 games x 5 framings x 2000 answers): the MLE is close and its
    profile-likelihood CI covers the truth; lambda beats the uniform and constant models."""
    lam, rng = 0.25, np.random.default_rng(7)
    rows = []
    for g in STUDY:
        q = principal_qre_p(GAMES.get(g), lam)
        rows += [("m", f"f{i}", g, k / 2000, k, 2000, "counts") for i, k in enumerate(rng.binomial(2000, q, size=5))]
    props = pd.DataFrame(rows, columns=["model", "framing", "game", "p_cooperate", "n_cooperate", "n_valid",
                                        "method"])
    fit = qre_model_table(props).iloc[0]
    assert fit["lambda"] == pytest.approx(lam, abs=0.01) and fit["ci_low"] <= lam <= fit["ci_high"]
    assert fit["ci_high"] - fit["ci_low"] < 0.02 and fit["n_obs"] == 40000 and fit["weights"] == "counts"
    assert fit["loglik"] > fit["loglik_constant"] > fit["loglik_uniform"] and fit["n_unexplained"] == 0


def test_uniform_constant_and_saturated_logliks_by_hand() -> None:
    """PD 3 of 4 and Snowdrift 2 of 4: uniform 8 log 1/2, constant p = 5/8, saturated per cell; lambda 0 = uniform."""
    pd_game, snow = GAMES.get("prisoners_dilemma"), GAMES.get("snowdrift")
    cells = [(pd_game, 3.0, 4.0), (snow, 2.0, 4.0)]
    fit = fit_qre_joint(cells)
    assert fit["loglik_uniform"] == pytest.approx(8 * math.log(0.5))
    assert fit["p_constant"] == pytest.approx(5 / 8)
    assert fit["loglik_constant"] == pytest.approx(5 * math.log(5 / 8) + 3 * math.log(3 / 8))
    assert fit["loglik_saturated"] == pytest.approx(3 * math.log(0.75) + math.log(0.25) + 4 * math.log(0.5))
    assert qre_loglik(cells, 0.0) == pytest.approx(8 * math.log(0.5))
    assert fit["lambda"] == 0.0 and fit["ci_low"] == 0.0  # both cells lean above the QRE: best at random play
    q = principal_qre_p(pd_game, 0.2)
    assert qre_loglik([(pd_game, 3.0, 4.0)], 0.2) == pytest.approx(3 * math.log(q) + math.log(1 - q))


def test_qre_cells_weights_exact_and_counted_cells() -> None:
    props = pd.DataFrame([("m", "a", "prisoners_dilemma", 0.3, 3, 10, "exact"),
                          ("m", "b", "prisoners_dilemma", 0.25, 1, 4, "counts"),
                          ("m", "c", "mystery", 0.5, 1, 2, "counts")],
                         columns=["model", "framing", "game", "p_cooperate", "n_cooperate", "n_valid", "method"])
    one = qre_cells(props)
    assert list(zip(one["k"], one["n"], one["weights"], strict=True)) == [(0.3, 1.0, "exact"), (1.0, 4.0, "counts")]
    rows = qre_cells(props, exact_weight="rows")
    assert (rows["k"].iloc[0], rows["n"].iloc[0]) == (pytest.approx(3.0), 10.0)
    assert qre_model_table(props).iloc[0]["weights"] == "mixed"
    study_shape = props.rename(columns={"n_valid": "n_total"}).iloc[[1]]  # the study's shipped counts
    assert list(qre_cells(study_shape)[["k", "n", "weights"]].iloc[0]) == [1.0, 4.0, "counts"]
    with pytest.raises(ConfigError, match="exact_weight"):
        qre_cells(props, exact_weight="all")
    with pytest.raises(ConfigError, match="at least one cell"):
        fit_qre_joint([])


def test_stage_game_tables_read_one_shot_rows_only() -> None:
    """A run of repeated rounds only gets no Nash distance; one-shot sweep rows (and horizon-1 matches) do."""
    repeated = pd.DataFrame(match_rows("tft", "alld", [0, 1, 1], [1, 1, 1]))
    assert nash_table(propensity_table(one_shot_rows(repeated))).empty
    assert qre_model_table(propensity_table(one_shot_rows(repeated))).empty
    mixed = pd.concat([repeated, pd.DataFrame(sweep_rows("m", "ir", "prisoners_dilemma", 4, 1)),
                       pd.DataFrame(match_rows("x", "y", [0], [1], rep=5))], ignore_index=True)
    props = propensity_table(one_shot_rows(mixed))
    assert sorted(props["model"]) == ["m", "x", "y"]
    assert nash_table(props).set_index("model").loc["m", "distance_nearest"] == pytest.approx(0.25)
