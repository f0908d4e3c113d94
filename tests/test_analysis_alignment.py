"""Alignment metrics with hand-computed values: the study's improvement (incl. unbounded and flagged cases),
gap closure, Jensen-Shannon divergence, scenario sets, aggregation with bootstrap CIs, and headline()."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tests.test_analysis_fixtures import sweep_rows, write_run
from tomarena.analysis.alignment import (
    gap_closure,
    headline,
    improvement,
    js_divergence,
    scenario_table,
    summarize,
)
from tomarena.analysis.load import load_runs
from tomarena.errors import ConfigError


def test_improvement_hand_values() -> None:
    assert improvement(0.8, 0.7, 0.5) == pytest.approx(100 / 3)  # 33.33%
    assert improvement(0.7, 0.9, 0.8) == pytest.approx(200.0)  # overshoot past the teacher: unbounded
    assert improvement(0.8, 0.9, 0.5) == pytest.approx(-100 / 3)  # moved away from the teacher
    assert improvement(0.8, 0.5, 0.5) == pytest.approx(100.0)


def test_small_gaps_count_by_default_as_in_the_study() -> None:
    assert improvement(0.5, 0.9, 0.52) == pytest.approx(2000.0)  # |gap| 0.02: kept, the study's definition
    assert math.isnan(improvement(0.5, 0.9, 0.5))  # a zero gap is undefined, never divided
    assert math.isnan(improvement(0.5, 0.9, 0.52, min_gap=0.05))  # an explicit min_gap leaves it out
    assert improvement(0.8, 0.9, 0.85, min_gap=0.05) == pytest.approx(200.0)  # gap exactly 0.05 despite float error


def test_gap_closure_hand_values() -> None:
    assert gap_closure(0.8, 0.7, 0.5) == pytest.approx(1 / 3)
    assert gap_closure(0.8, 0.5, 0.5) == pytest.approx(1.0)
    assert gap_closure(0.7, 0.9, 0.8) == pytest.approx(0.0)  # the 200% case is no closer to the teacher
    assert math.isnan(gap_closure(0.5, 0.4, 0.5))


def test_jensen_shannon_hand_values() -> None:
    assert js_divergence(0.3, 0.3) == 0.0
    assert js_divergence(1.0, 0.0) == pytest.approx(1.0)
    assert js_divergence(0.5, 0.0) == pytest.approx(0.3112781, abs=1e-7)
    assert js_divergence(0.2, 0.7) == pytest.approx(js_divergence(0.7, 0.2))


def test_scenario_table_rows_carry_their_set() -> None:
    rows = [{"model": m, "framing": f, "game": g, "p_cooperate": p, "n_valid": 10, "method": "sampled"}
            for m, p in (("b", 0.2), ("s", 0.5), ("t", 0.8))
            for f, g in (("ir", "stag_hunt"), ("sports", "snowdrift"), ("team", "snowdrift_doubled"),
                         ("sports", "snowdrift_doubled"))]
    table = scenario_table(pd.DataFrame(rows), "b", "s", "t")
    assert dict(zip(table["game"] + "/" + table["framing"], table["set"], strict=True)) == {
        "stag_hunt/ir": "in_sample", "snowdrift/sports": "oos_framings", "snowdrift_doubled/team": "oos_games",
        "snowdrift_doubled/sports": "other"}


def _props(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["model", "framing", "game", "p_cooperate"])


def test_scenario_table_and_summary() -> None:
    data = []
    for framing, game, b, f, t in [("ir", "prisoners_dilemma", 0.8, 0.7, 0.5), ("team", "stag_hunt", 0.7, 0.9, 0.8),
                                   ("business", "snowdrift", 0.6, 0.3, 0.6), ("sports", "snowdrift", 0.9, 0.8, 0.1)]:
        data += [("b", framing, game, b), ("f", framing, game, f), ("t", framing, game, t)]
    table = scenario_table(_props(data), "b", "f", "t")
    assert list(table["set"]) == ["in_sample", "in_sample", "oos_framings", "in_sample"]  # sorted by framing
    ins = table[table["set"] == "in_sample"]
    s = summarize(ins)
    assert s["n_scenarios"] == 3 and s["n_excluded"] == 1 and s["n_small_gap"] == 1  # the zero gap: undefined
    assert s["mean_improvement"] == pytest.approx((100 / 3 + 200) / 2)
    assert s["median"] == pytest.approx((100 / 3 + 200) / 2)
    assert s["gap_closure"] == pytest.approx(1 - (0.2 + 0.1) / (0.3 + 0.1))  # 1 - mean|s - t| / mean|b - t|
    assert list(table["small_gap"]) == [True, False, False, False]  # business (sorted first): gap 0
    assert s["pearson_r"] == pytest.approx(pd.Series([0.3, 0.7, 0.9]).corr(pd.Series([0.6, 0.5, 0.8])))
    assert s["mean_teacher"] == pytest.approx((0.5 + 0.8 + 0.6) / 3)


def test_scenario_table_unknown_model_names_the_present_ones() -> None:
    with pytest.raises(ConfigError, match="'zz'.*models present: a"):
        scenario_table(_props([("a", "ir", "stag_hunt", 0.5)]), "zz", "a", "a")


def test_headline_from_run_directory(tmp_path: Path) -> None:
    rows = []
    for framing in ("ir", "team"):
        rows += sweep_rows("base", framing, "prisoners_dilemma", 10, 8)
        rows += sweep_rows("ft", framing, "prisoners_dilemma", 10, 7, n_invalid=2)
        rows += sweep_rows("teacher", framing, "prisoners_dilemma", 10, 5)
    run = write_run(tmp_path / "run", rows, roles={"teacher": "teacher", "base": "base", "student": "ft"})
    h = headline([run], {"teacher": "teacher", "base": "base", "student": "ft"})
    assert set(h) == {"in_sample"}
    assert h["in_sample"]["student"]["mean_improvement"] == pytest.approx(100 / 3)
    assert h["in_sample"]["n_scenarios"] == 2 and h["in_sample"]["training_fit"]  # no record: the study's protocol
    assert h["in_sample"]["student"]["gap_closure"] == pytest.approx(1 / 3)
    assert h["in_sample"]["null_constant"]["gap_closure"] == pytest.approx(1.0)  # the teacher is 0.5 in both
    assert headline(run)["in_sample"]["student"]["mean_improvement"] == pytest.approx(100 / 3)  # manifest roles
    with pytest.raises(ConfigError, match="missing: student"):
        headline(load_runs([run]), {"teacher": "teacher", "base": "base"})
