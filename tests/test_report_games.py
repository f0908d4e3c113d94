"""The report per game (issue 25 item 7, issue 23 item 3): standings and a headline per game and run, n beside every
propensity-based table, where replayed decisions come from under the standings, per-game figures capped at
MAX_GAME_PLOTS games on a real import of 14 Robinson-Goforth games (with the study's findings recomputed), and
`tomarena analyze equilibria`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.test_analysis_fixtures import match_rows, sweep_rows, write_run
from tests.test_analysis_report import _sweep, _tournament
from tomarena.analysis.render import Section, to_html, to_markdown
from tomarena.analysis.report import MAX_GAME_PLOTS, build_report, equilibrium_tables, pooled_rounds, shown_games
from tomarena.app.cli import main
from tomarena.arena.recorded import import_recordings


@pytest.fixture(scope="module")
def akata_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("akata")
    run = import_recordings(root / "run", games=set(range(1, 15)))  # 14 games: two more than are drawn
    return build_report([run], root / "report").out


def test_per_game_figures_are_capped_and_every_game_is_in_the_tables(akata_report: Path) -> None:
    assert MAX_GAME_PLOTS == 12
    pngs = sorted(p.name for p in akata_report.glob("crossplay_*.png"))
    assert pngs == sorted(f"crossplay_rg144_{n}.png" for n in range(1, 13))
    assert not (akata_report / "crossplay_rg144_13.csv").exists()
    assert sorted(p.name for p in akata_report.glob("moran_rg144_*.csv")) == sorted(
        f"moran_rg144_{n}.csv" for n in range(1, 13))
    every = pd.read_csv(akata_report / "crossplay_by_game.csv")
    assert every["game"].nunique() == 14 and len(every) == 14 * 25
    assert pd.read_csv(akata_report / "replicator_by_game.csv")["game"].nunique() == 14
    assert pd.read_csv(akata_report / "moran_by_game.csv")["game"].nunique() == 14
    st = pd.read_csv(akata_report / "standings.csv")
    assert st["game"].nunique() == 14 and len(st) == 14 * 5 and (st["rounds_played"] == 100).all()
    assert pd.read_csv(akata_report / "winners.csv")["game"].tolist() == [f"rg144/{n}" for n in range(1, 15)]
    md = (akata_report / "report.md").read_text()
    assert ("Cross-play matrices, figures and Moran tables are shown for the first 12 of the 14 games (in name "
            "order)") in md
    assert "The heatmaps show the first 12 of the 14 games (in name order)" in md
    assert "the figure of cooperation over rounds pools them" in md
    assert "Games won, of 14 games" in md and "| game | rank | policy | matches | rounds_played |" in md
    assert len(list(akata_report.iterdir())) < 80


def test_the_study_findings_section_on_the_import(akata_report: Path) -> None:
    md = (akata_report / "report.md").read_text()
    assert "## Robinson-Goforth games: the study's findings recomputed" in md
    scores = pd.read_csv(akata_report / "rg_family_scores.csv")
    assert set(scores["policy"]) == {f"akata/{m}" for m in ("gpt-4", "gpt-3.5", "claude-2", "claude-1",
                                                            "llama-2-70b-chat")}
    assert (scores[scores["family"] == "all"]["decisions"] == 1400).all()
    bos = pd.read_csv(akata_report / "rg_bos_coordination.csv")
    assert bos["games"].tolist() == [2] * 5  # of games 1-14, Skewed Battle (10) and Asym Battle (11)
    assert "Where the replayed decisions come from" in md and "akata/gpt-4: 0% of its 1400 decisions modelled" in md
    assert "rg_family_scores.png" in {p.name for p in akata_report.glob("*.png")}


def test_equilibrium_tables_put_n_beside_every_p() -> None:
    rows = sweep_rows("m", "ir", "stag_hunt", 10, 7, n_invalid=2) + sweep_rows("m", "ir", "stag_hunt_doubled", 4, 1)
    tabs = equilibrium_tables(pd.DataFrame(rows))
    assert list(tabs) == ["nash_distance", "qre_models", "qre_lambda", "doubled_tests"]
    for name in ("nash_distance", "qre_lambda"):
        t = tabs[name]
        assert list(t.columns[3:5]) == ["p_cooperate", "n"]
        assert t[["game", "n"]].values.tolist() == [["stag_hunt", 10], ["stag_hunt_doubled", 4]]
    d = tabs["doubled_tests"]
    assert d[["game", "estimate_a", "n_a", "estimate_b", "n_b"]].values.tolist() == [
        ["stag_hunt", 0.25, 4, 0.7, 10]]
    assert tabs["qre_models"]["n_obs"].tolist() == [14.0]
    assert equilibrium_tables(pd.DataFrame(match_rows("a", "b", [0, 1], [1, 1]))) == {}


def test_several_runs_get_standings_per_run_and_the_replay_note(tmp_path: Path) -> None:
    replay = [dict(r, source="replay" if r["round"] == 0 else "replay-model") if r["policy"] == "study/x" else r
              for r in match_rows("study/x", "classic/y", [0, 0], [1, 1])]
    one = write_run(tmp_path / "one", replay, kind="tournament")
    two = write_run(tmp_path / "two", match_rows("classic/y", "classic/z", [0], [1]), kind="tournament")
    rep = build_report([one, two], tmp_path / "out")
    md = rep.markdown.read_text()
    assert "**Standings per game and run (rank within the game;" in md
    assert "| run | game | rank | policy |" in md
    assert ("_Where the replayed decisions come from (source replay = recorded play, replay-model = a documented "
            "model beyond the recordings): study/x: 50% of its 2 decisions modelled (replay-model), not recorded._") \
        in md
    assert f"prisoners_dilemma ({one}): classic/y" in md and f"prisoners_dilemma ({two}): classic/z" in md
    shares = pd.read_csv(rep.out / "decision_sources.csv").set_index("policy")
    assert shares.loc["study/x", ["decisions", "replay", "replay_model"]].tolist() == [2, 0.5, 0.5]


def test_repeated_theory_has_n(tmp_path: Path) -> None:
    rep = build_report([_tournament(tmp_path / "tour")], tmp_path / "out")
    theory = pd.read_csv(rep.out / "repeated_theory.csv")
    assert theory.columns.get_loc("n") == theory.columns.get_loc("p_cooperate") + 1
    assert theory["n"].tolist() == [36]  # 6 matches x 2 seats x 3 rounds, every decision valid


def test_pooled_rounds_weigh_every_decision_alike() -> None:
    rounds = pd.DataFrame({"model": ["a", "a", "a"], "game": ["g1", "g2", "g1"], "round": [0, 0, 1],
                           "p_cooperate": [1.0, 0.25, 0.5], "n": [2, 4, 6]})
    got = pooled_rounds(rounds)
    assert got.values.tolist() == [["a", "all 2 games", 0, 0.5, 6], ["a", "all 2 games", 1, 0.5, 6]]
    assert shown_games(["rg144/10", "rg144/9", "b", "a"], limit=3) == ["a", "b", "rg144/9"]


def test_a_table_note_is_printed_under_its_table() -> None:
    sec = Section("S", "text", [("Caption", pd.DataFrame({"x": [1]}), "a note & more"), ("Plain", pd.DataFrame())])
    assert "| x |\n|---|\n| 1 |\n\n_a note & more_\n" in to_markdown("T", [sec])
    assert "</table></div><p class='note'>a note &amp; more</p>" in to_html("T", [sec])


def test_cli_analyze_equilibria_prints_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = _sweep(tmp_path / "sweep")
    assert main(["analyze", "equilibria", str(sweep), "--csv", str(tmp_path / "eq")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Nash distance\n\n| model | framing | game | p_cooperate | n | nearest_equilibrium |")
    assert "## Logit QRE per model (joint fit)" in out and "## Payoff scaling: p(C) doubled - original" in out
    assert "| llm/student | ir | prisoners_dilemma | 0.6 | 10 | (D,D) |" in out
    assert out.count("\n| llm/") == 27 + 3 + 27 + 9  # every row, none cut
    assert sorted(p.name for p in (tmp_path / "eq").iterdir()) == [
        "doubled_tests.csv", "nash_distance.csv", "qre_lambda.csv", "qre_models.csv"]


@pytest.mark.parametrize(("kind", "message"), [("missing", "does not exist"),
                                               ("repeated", "no one-shot decisions of 2x2 games")])
def test_cli_analyze_equilibria_bad_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str,
                                                    message: str) -> None:
    run = tmp_path / "missing" if kind == "missing" else _tournament(tmp_path / "tour")
    assert main(["analyze", "equilibria", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tomarena: error:") and message in err and "\n" not in err
