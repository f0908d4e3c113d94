"""Repeated play judged as repeated play: one-shot rows, cooperation by round and memory-one fingerprints with
intervals over matches, fingerprint distances, and the finite-horizon SPE / Nash-reversion delta* beside a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows, sweep_rows, write_run
from tomarena.analysis.load import load_run
from tomarena.analysis.repeated import (
    cooperation_by_round,
    fingerprint_distance,
    fingerprint_distances,
    fingerprints,
    finite_horizon_spe,
    nash_reversion_threshold,
    one_shot_rows,
    repeated_tables,
    repeated_theory,
)
from tomarena.analysis.stats import cluster_bootstrap_ci
from tomarena.envs import GAMES
from tomarena.errors import ConfigError

SCRIPT = [0, 1, 1, 0, 1, 0, 0, 1]  # the scripted co-player: every joint outcome occurs against tit-for-tat


def _tft(opponent: list[int]) -> list[int]:
    return [0, *opponent[:-1]]


def _tft_matches(label: str = "tft", reps: int = 3) -> list[dict]:
    return [r for i in range(reps) for r in match_rows(label, "script", _tft(SCRIPT), SCRIPT, rep=i, exact=False)]


def test_one_shot_rows_keep_sweeps_and_horizon_one_matches() -> None:
    frame = pd.DataFrame(sweep_rows("m", "ir", "prisoners_dilemma", 2, 1) + match_rows("a", "b", [0], [1])
                         + match_rows("a", "b", [0, 0], [1, 1], rep=1))
    kept = one_shot_rows(frame)
    assert len(kept) == 4 and set(kept["horizon"]) == {1}
    assert one_shot_rows(pd.DataFrame(match_rows("a", "b", [0, 0], [1, 1]))).empty


def test_fingerprint_of_tit_for_tat_against_a_scripted_opponent_is_exact() -> None:
    fp = fingerprints(pd.DataFrame(_tft_matches()), n_boot=200)
    tft = fp[fp["model"] == "tft"].set_index("state")
    assert tft["p_cooperate"].to_dict() == {"start": 1.0, "CC": 1.0, "CD": 0.0, "DC": 1.0, "DD": 0.0}
    assert (tft["ci_low"] == tft["p_cooperate"]).all() and (tft["ci_high"] == tft["p_cooperate"]).all()
    assert tft.loc["start", "n"] == 3 and tft.loc["start", "n_matches"] == 3
    # tft's state sequence against SCRIPT: CC CD DD DC CD DC CC -> CD twice per match
    assert tft.loc["CD", "n"] == 6 and tft.loc["CC", "n"] == 6
    assert set(fp["game"]) == {"prisoners_dilemma"}


def test_fingerprint_intervals_cover_the_truth_for_stochastic_play() -> None:
    """A memory-one strategy against a coin flipper over 300 matches of 20 rounds: each match-bootstrap CI
    covers the true probability, and is narrow."""
    truth = {"start": 0.6, "CC": 0.9, "CD": 0.2, "DC": 0.7, "DD": 0.4}
    rng, rows = np.random.default_rng(3), []
    for rep in range(300):
        mine, other = [int(rng.random() >= truth["start"])], [int(rng.random() >= 0.5)]
        for _ in range(19):
            state = "CD"[mine[-1]] + "CD"[other[-1]]
            mine.append(int(rng.random() >= truth[state]))
            other.append(int(rng.random() >= 0.5))
        rows += match_rows("m1", "coin", mine, other, rep=rep, exact=False)
    fp = fingerprints(pd.DataFrame(rows), n_boot=500).set_index(["model", "state"]).loc["m1"]
    for state, p in truth.items():
        assert fp.loc[state, "ci_low"] <= p <= fp.loc[state, "ci_high"], state
        assert fp.loc[state, "ci_high"] - fp.loc[state, "ci_low"] < 0.15
    assert fp.loc["start", "n_matches"] == 300


def test_cooperation_by_round_with_match_intervals() -> None:
    rows = match_rows("tft", "alld", [0, 1, 1], [1, 1, 1]) + match_rows("tft", "allc", [0, 0, 0], [0, 0, 0], rep=1)
    t = cooperation_by_round(pd.DataFrame(rows), n_boot=300)
    tft = t[t["model"] == "tft"].set_index("round")
    assert list(tft["p_cooperate"]) == [1.0, 0.5, 0.5] and list(tft["n_matches"]) == [2, 2, 2]
    assert (tft.loc[0, "ci_low"], tft.loc[0, "ci_high"]) == (1.0, 1.0)
    assert (tft.loc[1, "ci_low"], tft.loc[1, "ci_high"]) == (0.0, 1.0)  # two matches, one of each
    alld = t[t["model"] == "alld"]
    assert (alld["ci_low"] == 0).all() and (alld["ci_high"] == 0).all()


def test_fingerprint_distance_identical_policies_and_known_gap() -> None:
    frame = pd.DataFrame(_tft_matches("tft") + _tft_matches("tft_copy")
                         + match_rows("alld", "script", [1] * len(SCRIPT), SCRIPT, rep=9, exact=False))
    same = fingerprint_distance(frame, "tft", "tft_copy", "prisoners_dilemma", n_boot=200)
    assert same == {"distance": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n_states": 4, "n_matches": 6}
    assert fingerprint_distance(frame, "tft", "tft", "prisoners_dilemma", n_boot=50)["distance"] == 0.0
    # alld meets DC and DD only; tft cooperates after DC (1) and defects after DD (0): mean |diff| = 1/2
    gap = fingerprint_distance(frame, "tft", "alld", "prisoners_dilemma", n_boot=200)
    assert gap["distance"] == 0.5 and gap["n_states"] == 2 and (gap["ci_low"], gap["ci_high"]) == (0.5, 0.5)
    euclid = fingerprint_distance(frame, "tft", "alld", "prisoners_dilemma", metric="euclidean", n_boot=50)
    assert euclid["distance"] == pytest.approx(1.0)
    assert math.isnan(fingerprint_distance(frame, "tft", "nobody", "prisoners_dilemma")["distance"])
    with pytest.raises(ConfigError, match="metric"):
        fingerprint_distance(frame, "tft", "alld", "prisoners_dilemma", metric="cosine")
    table = fingerprint_distances(frame, n_boot=50).set_index(["policy_a", "policy_b"])
    assert table.loc[("tft", "tft_copy"), "distance"] == 0.0 and table.loc[("alld", "tft"), "distance"] == 0.5


def test_finite_horizon_spe_and_nash_reversion_threshold() -> None:
    pd_game = GAMES.get("prisoners_dilemma")  # R=5, S=2, T=10, P=3
    assert finite_horizon_spe(pd_game) == {"stage_equilibria": "(D,D)", "spe_p_cooperate": 0.0,
                                           "spe_prediction": "all-D: (D,D) every round"}
    assert nash_reversion_threshold(pd_game) == {"reversion_equilibrium": "(D,D)", "v_nash": 3.0,
                                                 "delta_star": pytest.approx(5 / 7)}
    stag = GAMES.get("stag_hunt")
    spe = finite_horizon_spe(stag)
    assert math.isnan(spe["spe_p_cooperate"]) and "any sequence of them is subgame perfect" in spe["spe_prediction"]
    assert spe["stage_equilibria"].startswith("(C,C); (D,D); mixed")
    assert nash_reversion_threshold(stag)["delta_star"] == 0.0  # C is a best reply to C
    snow = nash_reversion_threshold(GAMES.get("snowdrift"))  # worst equilibrium for the deviator: (C,D), S = 3
    assert snow["reversion_equilibrium"] == "(C,D)" and snow["delta_star"] == pytest.approx(5 / 7)
    assert finite_horizon_spe(GAMES.get("prisoners_delight"))["spe_prediction"] == "all-C: (C,C) every round"
    with pytest.raises(ConfigError, match="not a symmetric 2x2"):
        nash_reversion_threshold(GAMES.get("donation"))


def _flag(value: object) -> bool | None:
    return None if value is None or value is pd.NA else bool(value)


def _uncertain(rows: list[dict]) -> list[dict]:
    return [{**r, "horizon": None} for r in rows]


def test_repeated_theory_finite_given_manifest_and_estimated_delta(tmp_path: Path) -> None:
    finite = pd.DataFrame(match_rows("tft", "alld", [0, 1, 1], [1, 1, 1]))
    t = repeated_theory(finite, n_boot=100).iloc[0]
    assert t["horizon"] == 3 and t["spe_prediction"] == "all-D: (D,D) every round" and math.isnan(t["delta"])
    assert t["delta_star"] == pytest.approx(5 / 7) and _flag(t["cooperation_sustainable"]) is False
    assert t["p_cooperate"] == pytest.approx(1 / 6) and t["p_cooperate_last_round"] == 0.0
    assert t["mutual_cooperation"] == 0.0 and t["n_matches"] == 1

    rows = _uncertain(match_rows("tft", "tft", [0, 0, 0, 0], [0, 0, 0, 0]) + match_rows("tft", "tft", [0], [0], rep=1))
    given = repeated_theory(pd.DataFrame(rows), {"run": 0.9}, n_boot=100).iloc[0]
    assert (given["delta"], given["delta_source"], _flag(given["cooperation_sustainable"])) == (0.9, "given", True)
    assert math.isnan(given["horizon"]) and given["mutual_cooperation"] == 1.0
    estimated = repeated_theory(pd.DataFrame(rows), n_boot=100).iloc[0]  # 2 matches, 5 rounds: 1 - 2/5
    assert estimated["delta_source"] == "estimated" and estimated["delta"] == pytest.approx(0.6)
    assert _flag(estimated["cooperation_sustainable"]) is False

    run = write_run(tmp_path / "r", rows, kind="tournament")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"] = {"continuation": 0.75}
    (run / "manifest.json").write_text(json.dumps(manifest))
    loaded = repeated_theory(load_run(run), n_boot=100).iloc[0]
    assert (loaded["delta"], loaded["delta_source"], _flag(loaded["cooperation_sustainable"])) == (0.75, "manifest",
                                                                                               True)


def test_repeated_tables_shapes_and_empty_for_one_shot_runs() -> None:
    tables = repeated_tables(pd.DataFrame(_tft_matches()), n_boot=50)
    assert list(tables) == ["cooperation_by_round", "fingerprints", "fingerprint_distances", "repeated_theory"]
    assert all(len(t) for t in tables.values())
    empty = repeated_tables(pd.DataFrame(sweep_rows("m", "ir", "prisoners_dilemma", 3, 1)), n_boot=50)
    assert all(t.empty for t in empty.values())
    assert "ci_low" in empty["fingerprints"] and "delta_star" in empty["repeated_theory"]


def test_cluster_bootstrap_ci_collapses_and_checks_shapes() -> None:
    assert cluster_bootstrap_ci([2.0, 3.0, 0.0], [2.0, 3.0, 0.0]) == (1.0, 1.0)
    lo, hi = cluster_bootstrap_ci([[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]], n_boot=200)
    assert 0.0 <= lo[0] <= 0.5 <= hi[0] <= 1.0 and math.isnan(lo[1])  # second cell never observed
    assert all(math.isnan(x) for x in cluster_bootstrap_ci([], []))
    with pytest.raises(ConfigError, match="shape"):
        cluster_bootstrap_ci([1.0, 2.0], [1.0])
