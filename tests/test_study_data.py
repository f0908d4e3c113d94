"""The study's shipped figures: loading and validation, the study's own means reproduced by tomarena's alignment
code, the replay policies (exact recorded proportions on all 52 covered scenarios, documented model outside), the
statistics that fit how numbers were obtained, and the `analyze alignment --propensities study` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from tests.test_analysis_fixtures import sweep_rows
from tomarena import study
from tomarena.agents import resolve_policy
from tomarena.agents.strategies.study import anchor, game_family, reciprocity, study_families
from tomarena.agents.strategies.study_fit import persistence
from tomarena.analysis import study_ref, transfer
from tomarena.analysis.comparisons import donation_tests, model_tests
from tomarena.analysis.propensity import propensity_table
from tomarena.analysis.stats import student_t
from tomarena.envs import Observation, get_framing, get_game
from tomarena.envs.framings import FRAMINGS
from tomarena.envs.games import GAMES
from tomarena.errors import ConfigError

STUDY_ROLES = ["--base", "llama2-7b", "--student", "llama2-7b-lora", "--teacher", "llama2-70b"]


def test_shipped_files_validate_against_the_registries() -> None:
    assert study.validate(GAMES.ids(), FRAMINGS.ids()) == {"in_sample": 20, "oos_framings": 12, "oos_games": 20}
    per_model = Counter(c.model for c in study.one_shot_cells())
    assert per_model == {"llama2-70b": 52, "llama2-7b": 52, "llama2-7b-lora": 52, "llama2-70b-letter": 20}
    short = sorted((c.model, c.framing, c.game, c.n_total) for c in study.one_shot_cells() if c.n_total != 300)
    assert short == [("llama2-70b", "friendsharing", "snowdrift", 299), ("llama2-7b", "roomsharing",
                      "prisoners_delight", 295), ("llama2-7b", "roomsharing", "prisoners_dilemma", 295)]
    assert study.donation_counts()["llama2-70b"] == {7: 300}
    assert study.mean_donation("llama2-7b") == pytest.approx(1648 / 300)
    assert (study.DATA_DIR / "README.md").is_file() and "9bff884c" in (study.DATA_DIR / "README.md").read_text()


def test_unknown_study_model_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown study model 'llama3'; allowed: llama2-70b, llama2-7b"):
        study.check_model("llama3")


@pytest.mark.parametrize(("raw", "expected"), [(False, {"in_sample": 46.65, "oos_framings": 18.26,
                                                         "oos_games": 39.95}),
                                               (True, {"in_sample": 46.26, "oos_framings": 17.90,
                                                       "oos_games": 39.95})])
def test_shipped_data_reproduce_the_studys_means(raw: bool, expected: dict[str, float]) -> None:
    h = transfer.headline(study_ref.transfer_rows(raw))
    assert {s: round(h[s]["student"]["mean_improvement"], 2) for s in expected} == expected
    assert round(h["in_sample"]["student"]["median_improvement"], 1) == 32.3
    assert {s: h[s]["n_scenarios"] for s in expected} == {"in_sample": 20, "oos_framings": 12, "oos_games": 20}
    # donation: (5.92 - 5.4933) / (7 - 5.4933); the study's 28.5% came from means rounded to cents
    assert h["donation"]["student"]["mean_improvement"] == pytest.approx(100 * (5.92 - 1648 / 300) /
                                                                         (7 - 1648 / 300))


def _obs(game: str, framing: str, horizon: int | None = 1, history: tuple = ()) -> Observation:
    g = get_game(game)
    return Observation(g, get_framing(framing), 0, len(history), horizon, tuple(history),
                       tuple(g.payoff(a) for a in history))


@pytest.mark.parametrize("model", ["llama2-70b", "llama2-7b", "llama2-7b-lora", "llama2-70b-letter"])
def test_replay_returns_the_recorded_proportions_exactly(model: str) -> None:
    policy = resolve_policy(f"study/{model}")
    cells = [c for c in study.one_shot_cells() if c.model == model]
    assert len(cells) == (20 if model == "llama2-70b-letter" else 52)
    for c in cells:
        d, _ = policy.act(_obs(c.game, c.framing), None, np.random.default_rng(0))
        assert d.probs == (c.n_cooperate / c.n_total, 1 - c.n_cooperate / c.n_total)
        assert d.source == "replay" and d.parse_status == "ok"


def test_replay_sampling_draws_from_the_recorded_proportion() -> None:
    c = study.cell("llama2-70b", "business", "prisoners_dilemma")
    policy = resolve_policy("study/llama2-70b?motivation=false")
    rng = np.random.default_rng(1)
    draws = [policy.act(_obs("prisoners_dilemma", "business"), None, rng)[0].action for _ in range(4000)]
    assert draws.count(0) / 4000 == pytest.approx(c.n_cooperate / c.n_total, abs=0.025)


def test_teacher_writes_a_motivation_for_the_drawn_action_and_students_a_letter() -> None:
    obs = _obs("stag_hunt", "team")
    d, _ = resolve_policy("study/llama2-70b").act(obs, None, np.random.default_rng(3))
    assert d.completion.startswith(f"I choose {'CD'[d.action]}. ") and len(d.completion) > 150
    assert d.protocol == "motivation" and json.loads(d.prompt)[0]["role"] == "system"
    s, _ = resolve_policy("study/llama2-7b").act(obs, None, np.random.default_rng(3))
    assert s.completion == "CD"[s.action] and s.protocol == "letter"


def test_donation_replay_draws_from_the_recorded_answers() -> None:
    d, _ = resolve_policy("study/llama2-7b").act(_obs("donation", "none"), None, np.random.default_rng(0))
    expected = [0.0] * 11
    expected[5], expected[7] = 226 / 300, 74 / 300
    assert d.probs == pytest.approx(tuple(expected)) and d.source == "replay" and d.action in (5, 7)
    with pytest.raises(Exception, match="no recorded donations"):
        resolve_policy("study/llama2-70b-letter").act(_obs("donation", "none"), None, np.random.default_rng(0))


def test_outside_the_data_the_documented_model_says_so() -> None:
    p0 = study.cell("llama2-70b", "business", "prisoners_dilemma").p_cooperate()
    policy = resolve_policy("study/llama2-70b")
    rng = np.random.default_rng(0)
    first = policy.act(_obs("prisoners_dilemma", "business", horizon=5), None, rng)[0]
    assert first.source == "replay-model" and first.probs[0] == pytest.approx(p0)  # a repeated game's round 1
    later = policy.act(_obs("prisoners_dilemma", "business", 5, ((0, 0), (0, 0))), None, rng)[0]
    # the 70b's repeated rounds: the recorded persistence after (own C, co-player C) (tests/test_study_repeated.py)
    assert later.probs[0] == pytest.approx(p0 + persistence()[0] * (1 - p0))
    q0 = study.cell("llama2-7b", "business", "prisoners_dilemma").p_cooperate()
    student = resolve_policy("study/llama2-7b").act(_obs("prisoners_dilemma", "business", 5, ((0, 0), (0, 0))),
                                                    None, rng)[0]
    assert student.probs[0] == pytest.approx((q0 + 1.5) / 2.5)  # weights 0.5, 1 on two C moves, prior weight 1
    assert reciprocity(0.2, np.array([0.0, 1.0]), 0.5, 1.0) == pytest.approx((0.2 + 1.0) / 2.5)
    inline = get_game("prisoners_dilemma?T=11")
    assert game_family(inline) == "prisoners_dilemma" and anchor("llama2-70b", "business", inline) == (p0, False)
    # an unknown framing for a known game: the model's mean over every framing it was run in for that game
    pd_cells = [c.p_cooperate() for c in study.one_shot_cells()
                if c.model == "llama2-70b" and c.game == "prisoners_dilemma"]
    assert anchor("llama2-70b", "none", get_game("prisoners_dilemma")) == (pytest.approx(np.mean(pd_cells)), False)
    axl = policy.act(_obs("prisoners_dilemma_axelrod", "business"), None, rng)[0]
    assert axl.source == "replay-model" and axl.probs[0] == pytest.approx(p0)  # the Axelrod PD is a PD


def test_tests_fit_how_numbers_were_obtained() -> None:
    exact = pd.DataFrame(sweep_rows("a", "ir", "stag_hunt", 1, 1, p=0.7) + sweep_rows("b", "ir", "stag_hunt", 1, 0,
                                                                                      p=0.4))
    row = model_tests(propensity_table(exact), "a", "b").iloc[0]
    assert row["difference"] == pytest.approx(0.3) and np.isnan(row["p_value"]) and row["test"].startswith("exact")
    assumed = model_tests(propensity_table(exact), "a", "b", assume_n=300).iloc[0]
    assert assumed["test"] == "z (unpooled) at an assumed n=300 per model" and assumed["p_value"] < 1e-10
    one = pd.DataFrame(sweep_rows("a", "ir", "stag_hunt", 1, 1) + sweep_rows("b", "ir", "stag_hunt", 1, 0))
    single = model_tests(propensity_table(one), "a", "b").iloc[0]
    assert np.isnan(single["p_value"]) and "too few" in single["test"]  # never a p-value from n = 1
    sampled = pd.DataFrame(sweep_rows("a", "ir", "stag_hunt", 300, 210) + sweep_rows("b", "ir", "stag_hunt", 300, 150))
    z = model_tests(propensity_table(sampled), "a", "b").iloc[0]
    assert z["test"] == "two-proportion z (unpooled)" and z["statistic"] == pytest.approx(0.2 / np.sqrt(
        0.7 * 0.3 / 300 + 0.5 * 0.5 / 300))


def test_student_t_on_the_studys_donations() -> None:
    res = student_t(study.donation_values("llama2-7b-lora"), study.donation_values("llama2-7b"))
    from scipy import stats

    ref = stats.ttest_ind(study.donation_values("llama2-7b-lora"), study.donation_values("llama2-7b"))
    assert res.statistic == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue)
    assert res.test == "Student t (equal variances)"
    frame = pd.DataFrame([{"policy": m, "framing": "none", "game": "donation", "parse_status": "ok",
                           "probs": None, "intended_action": int(v), "action_label": str(int(v))}
                          for m in ("llama2-7b-lora", "llama2-7b") for v in study.donation_values(m)])
    t = donation_tests(frame, "llama2-7b-lora", "llama2-7b").iloc[0]
    assert t["statistic"] == pytest.approx(ref.statistic) and t["difference"] == pytest.approx(5.92 - 1648 / 300)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tomarena.app.cli", *args], capture_output=True, text=True,
                          check=False)


def _improvement_lines(text: str) -> dict[str, str]:
    """{set: the student's improvement line} of the headline text (a set's header line, then its student lines)."""
    out, current = {}, ""
    for ln in text.splitlines():
        if ln and not ln.startswith((" ", "|", "alignment", "wrote")):
            current = ln.split()[0]
        elif ln.strip().startswith("improvement") and current not in out:
            out[current] = ln
    return out


def test_analyze_alignment_on_the_shipped_study_counts() -> None:
    out = _cli("analyze", "alignment", "--propensities", "study", *STUDY_ROLES)
    assert out.returncode == 0, out.stderr
    lines = _improvement_lines(out.stdout)
    assert "46.65%" in lines["in_sample"] and "18.26%" in lines["oos_framings"] and "39.95%" in lines["oos_games"]
    assert "28.32%" in lines["donation"]
    raw = _cli("analyze", "alignment", "--propensities", str(study.DATA_DIR / "one_shot_counts.csv"), "--raw-counts",
               *STUDY_ROLES)
    lines = _improvement_lines(raw.stdout)
    assert "46.26%" in lines["in_sample"] and "17.90%" in lines["oos_framings"] and "39.95%" in lines["oos_games"]
    bad = _cli("analyze", "alignment", "--propensities", "study", "--base", "llama3", "--student", "x",
               "--teacher", "y")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "llama3" in bad.stderr


def test_pipeline_measures_the_teacher_once_when_its_sweep_is_the_measurement(tmp_path) -> None:
    from tomarena.app.pipeline import PipelineConfig, ReportStage, plan

    same = PipelineConfig.model_validate({"out": str(tmp_path), "teacher_stage": {"samples": 2},
                                          "measure": {"sets": ["in_sample"], "samples": 2}})
    stages = plan(same)
    assert "measure teacher in_sample" not in [s.label for s in stages]
    assert isinstance(stages[-1], ReportStage) and tmp_path / "teacher_sweep" in stages[-1].runs
    other = same.model_copy(update={"measure": same.measure.model_copy(update={"samples": 3})})
    stage = next(s for s in plan(other) if s.label == "measure teacher in_sample")
    assert stage.out == tmp_path / "measure_teacher" / "in_sample"
    assert stage.execute().line.startswith("measure teacher in_sample: ") and (stage.out / "summary.json").is_file()


def test_study_families_are_asked_from_the_games_the_study_ran() -> None:
    assert study_families() == ("prisoners_dilemma", "prisoners_delight", "stag_hunt", "snowdrift")
    assert {get_game(c.game).family for c in study.one_shot_cells()} == set(study_families())
    assert [game_family(get_game(g)) for g in ("snowdrift_doubled", "rg144/1", "donation")] == ["snowdrift", None,
                                                                                                None]
