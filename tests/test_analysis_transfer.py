"""Transfer a constant cannot fake: null students, pattern metrics, two-level bootstrap, training fits, the CSV."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tomarena.analysis import study_ref, training_fit, transfer


def _table(rows: list[tuple[str, str, str, float, float, float]], n: float = math.nan) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["set", "framing", "game", "p_base", "p_student", "p_teacher"])
    return df.assign(n_base=n, n_student=n, n_teacher=n)


# two framings x two games; the teacher's pattern is framing 0.2 plus game 0.1
HAND = [("in_sample", "ir", "stag_hunt", 0.8, 0.5, 0.4), ("in_sample", "ir", "snowdrift", 0.8, 0.6, 0.5),
        ("in_sample", "team", "stag_hunt", 0.8, 0.7, 0.6), ("in_sample", "team", "snowdrift", 0.8, 0.9, 0.7)]


def _rows(rows: list, **kw) -> pd.DataFrame:
    return transfer.transfer_table(_table(rows), n_boot=200, **kw)


def test_hand_made_metrics_and_nulls_are_exact() -> None:
    rows = _rows(HAND)
    v = lambda who, m: transfer.value(rows, "in_sample", who, m)[0]
    # student: |s - t| = .1, .1, .1, .2 ; |b - t| = .4, .3, .2, .1
    assert v("student", "gap_closure") == pytest.approx(1 - 0.5 / 1.0)
    assert v("student", "mean_improvement") == pytest.approx(np.mean([75, 200 / 3, 50, -100]))
    assert v("student", "median_improvement") == pytest.approx(np.median([75, 200 / 3, 50, -100]))
    assert v("student", "r") == pytest.approx(np.corrcoef([.5, .6, .7, .9], [.4, .5, .6, .7])[0, 1])
    # within framing: student (-.05, .05, -.1, .1) vs teacher (-.05, .05, -.05, .05): r = .015 / sqrt(.025 * .01)
    assert v("student", "r_within_framing") == pytest.approx(3 / math.sqrt(10))
    assert v("base", "mean_improvement") == 0 and v("base", "gap_closure") == 0
    assert math.isnan(v("base", "r"))  # a constant base has no pattern
    # the constant null answers the teacher's training mean 0.55 everywhere
    assert v("null_constant", "gap_closure") == pytest.approx(1 - np.mean([.15, .05, .05, .15]) / 0.25)
    assert v("null_constant", "mean_improvement") == pytest.approx(np.mean([62.5, 250 / 3, 125, 250]))
    # the framing null answers 0.45 (ir) and 0.65 (team): it reads the framing, not the game
    assert v("null_framing", "gap_closure") == pytest.approx(1 - 0.05 / 0.25)
    assert v("null_framing", "r") == pytest.approx(np.corrcoef([.45, .45, .65, .65], [.4, .5, .6, .7])[0, 1])
    assert math.isnan(v("null_framing", "r_within_framing"))
    assert v("student", "margin_over_best_null") == pytest.approx(0.5 - 0.8)
    assert transfer.best_null(rows, "in_sample") == "null_framing"


def test_a_constant_beats_the_studys_own_mean_improvement_on_the_shipped_counts() -> None:
    rows = study_ref.transfer_rows()
    figures = {s: (round(transfer.value(rows, s, "null_constant", "mean_improvement")[0], 2),
                   round(transfer.value(rows, s, "student", "mean_improvement")[0], 2))
               for s in ("in_sample", "oos_framings", "oos_games")}
    assert figures == {"in_sample": (241.96, 46.65), "oos_framings": (67.98, 18.26), "oos_games": (142.81, 39.95)}
    gc = {s: round(transfer.value(rows, s, "null_constant", "gap_closure")[0], 2) for s in figures}
    assert gc == {"in_sample": 0.48, "oos_framings": 0.49, "oos_games": 0.44}
    # counts resampled as well as scenarios: three in-sample cells have a gap under 0.05, so the mean is fragile
    _, lo, hi = transfer.value(rows, "in_sample", "student", "mean_improvement")
    assert lo < 0 < 46.65 < hi
    assert transfer.value(rows, "oos_framings", "student", "margin_over_best_null")[2] < 0  # no null beaten
    assert bool(rows.loc[rows["set"] == "in_sample", "training_fit"].all())


def test_two_level_bootstrap_covers_the_truth_and_is_wider_than_scenarios_only() -> None:
    rng = np.random.default_rng(1)
    true = {"base": 0.8, "student": 0.6, "teacher": 0.4}  # gap closure 0.5 in every scenario
    covered, widths = 0, []
    for rep in range(60):
        n = 40
        cells = [("in_sample", f"f{i % 4}", f"g{i // 4}", *(rng.binomial(n, true[r]) / n for r in transfer.ROLES))
                 for i in range(12)]
        two = transfer.transfer_table(_table(cells, n=n), n_boot=400, seed=rep)
        one = transfer.transfer_table(_table(cells), n_boot=400, seed=rep)
        _, lo, hi = transfer.value(two, "in_sample", "student", "gap_closure")
        covered += lo <= 0.5 <= hi
        widths.append((hi - lo) - np.subtract(*transfer.value(one, "in_sample", "student", "gap_closure")[2:0:-1]))
    assert covered / 60 >= 0.9
    assert np.mean(widths) > 0


def test_exact_probabilities_are_resampled_over_scenarios_only() -> None:
    rows = _rows([HAND[0]] * 3)  # identical exact scenarios: no uncertainty at all
    assert transfer.value(rows, "in_sample", "student", "gap_closure") == pytest.approx((0.75, 0.75, 0.75))


def test_held_out_framing_becomes_its_own_set_and_only_exact_training_prompts_are_a_fit() -> None:
    table = _table(HAND)
    prompt = lambda f, g: json.dumps([{"role": "user", "content": f"{f} {g}"}])
    frame = pd.DataFrame([{"policy": "s", "kind": "sweep", "framing": f, "game": g, "prompt": prompt(f, g)}
                          for _, f, g, *_ in HAND])
    record = training_fit.TrainingRecord(frozenset({("ir", "stag_hunt"), ("ir", "snowdrift")}),
                                         frozenset(training_fit.canonical(prompt("ir", g))
                                                   for g in ("stag_hunt", "snowdrift")))
    out, fit, trained = training_fit.apply(table, frame, "s", record)
    assert list(out["set"]) == ["in_sample", "in_sample", "in_sample_holdout", "in_sample_holdout"]
    assert fit == ["in_sample"]
    rows = transfer.transfer_table(out, trained=trained, training_fit=fit, n_boot=100)
    assert transfer.value(rows, "in_sample_holdout", "null_constant", "gap_closure")[0] == pytest.approx(
        1 - np.mean([0.15, 0.25]) / np.mean([0.2, 0.1]))  # constant 0.45, the ir mean
    other = training_fit.TrainingRecord(record.scenarios, frozenset({training_fit.canonical(prompt("x", "y"))}))
    assert training_fit.apply(table, frame, "s", other)[1] == []  # other prompts: not a fit


def test_headline_text_names_training_fit_and_the_margin() -> None:
    text = transfer.format_headline(transfer.headline(_rows(HAND, training_fit=["in_sample"])))
    assert "TRAINING FIT" in text and "margin -0.30" in text and "null_framing" in text


def test_cli_writes_the_alignment_csv(tmp_path: Path) -> None:
    out = tmp_path / "al.csv"
    res = subprocess.run([sys.executable, "-m", "tomarena.app.cli", "analyze", "alignment", "--propensities",
                          "study", "--base", "llama2-7b", "--student", "llama2-7b-lora", "--teacher", "llama2-70b",
                          "--csv", str(out)], capture_output=True, text=True, check=True)
    assert "TRAINING FIT" in res.stdout
    df = pd.read_csv(out)
    assert list(df.columns[:6]) == transfer.CSV_COLUMNS
    assert set(df["who"]) == set(transfer.WHO)
    assert set(df["metric"]) == set(transfer.METRICS)
    assert set(df["set"]) == {"in_sample", "oos_framings", "oos_games", "donation"}
    got = df[(df["who"] == "student") & (df["metric"] == "mean_improvement")].set_index("set")["value"].round(2)
    assert got.to_dict() == {"in_sample": 46.65, "oos_framings": 18.26, "oos_games": 39.95, "donation": 28.32}
