"""The report opens with the alignment summary beside the study's and the transfer figure, the long tables follow
folded; re-running cleans only what the previous report wrote; role typos are one line; figures stay readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.test_analysis_report import ROLES, _sweep, _tournament
from tomarena.analysis import plots
from tomarena.analysis.report import FILES_LIST, build_report, check_role_labels, clean_previous
from tomarena.app.cli import main
from tomarena.errors import ConfigError


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return _sweep(root / "sweep"), _tournament(root / "tour")


@pytest.fixture(scope="module")
def report(runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_report(list(runs), tmp_path_factory.mktemp("rep") / "out")


def test_markdown_opens_with_summary_and_transfer_then_folded_tables(report: Any) -> None:
    md = report.markdown.read_text()
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads[:3] == ["## Summary", "## Runs", "## Alignment with the teacher"]
    summary = md[md.index("## Summary"):md.index("## Runs")]
    assert ("| set | model | scenarios | training fit | gap closure [95% CI] | best null (gap closure) | margin over "
            "best null [95% CI] |" in summary)
    assert "| in_sample | student | 4 | yes |" in summary
    assert "| in_sample | study | 4 | yes | 0.33 [0.25, 0.41] |" in summary
    assert "![transfer](transfer.png)" in summary and "<details>" not in summary
    assert md.index("![transfer](transfer.png)") < md.index("<details><summary>Propensities (27 rows)</summary>")
    assert md.index("## Summary") < md.index("| model | framing | game |")
    assert "<details><summary>Per scenario (12 rows)</summary>" in md
    assert "<details><summary>Nash distance (27 rows)</summary>" in md


def test_html_folds_long_tables_and_scrolls_wide_ones(report: Any) -> None:
    page = report.html.read_text()
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Runs</h2>") < page.index("<h2>Propensity to cooperate")
    summary = page[page.index("<h2>Summary</h2>"):page.index("<h2>Runs</h2>")]
    assert "<details>" not in summary and "alt='transfer'" in summary and "<div class='scroll'><table>" in summary
    assert "<details><summary>Propensities (27 rows)</summary><div class='scroll'><table>" in page
    assert page.count("<table>") == page.count("<div class='scroll'><table>")
    assert ".scroll{overflow-x:auto" in page
    figure, folded = page.index("alt='heatmap_llm_base'"), page.index("<details><summary>Propensities")
    assert figure < folded  # in a folded section the figures come first


def test_rerun_removes_stale_report_files_and_keeps_the_users(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_report(list(runs), out)
    assert (out / "crossplay_prisoners_dilemma.png").is_file() and (out / "fingerprints.csv").is_file()
    listed = json.loads((out / FILES_LIST).read_text())
    assert set(listed) == {p.name for p in first.files} | {"report.md", "report.html"}
    (out / "notes.txt").write_text("mine")
    (out / "my_table.csv").write_text("a\n1\n")
    second = build_report([runs[0]], out)  # the sweep alone: no tournament, no repeated play
    assert not (out / "crossplay_prisoners_dilemma.png").exists()
    assert not (out / "fingerprints.csv").exists() and not (out / "moran_prisoners_dilemma.csv").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "my_table.csv").is_file()
    names = {p.name for p in out.iterdir()}
    assert names == {p.name for p in second.files} | {"report.md", "report.html", FILES_LIST, "notes.txt",
                                                      "my_table.csv"}


def test_clean_previous_touches_only_listed_plain_names(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "keep.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("x")
    (tmp_path / "data.parquet").write_bytes(b"x")
    (tmp_path / FILES_LIST).write_text(json.dumps(["a.png", "sub/b.csv", "../x.csv", "data.parquet", "gone.csv"]))
    assert clean_previous(tmp_path) == ["a.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet", "keep.png", "sub"]
    assert clean_previous(tmp_path) == []  # no list: nothing removed


def test_mistyped_teacher_is_one_line_exit_2_with_allowed_labels(runs: tuple[Path, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    code = main(["report", str(runs[0]), "--out", str(out), "--teacher", "llm/teachr"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.strip() == ("tomarena: error: --teacher 'llm/teachr' (did you mean 'llm/teacher'?): not a policy "
                           "label in these runs; allowed labels: llm/base, llm/student, llm/teacher")
    assert not out.exists()  # nothing written


def test_check_role_labels_accepts_known_and_lists_every_bad_one() -> None:
    check_role_labels(ROLES, list(ROLES.values()))
    check_role_labels({"teacher": None, "base": ""}, ["x"])  # unset roles are not checked
    with pytest.raises(ConfigError, match=r"^--base 'zz'; --student 'q': not a policy label in these runs; "
                                          r"allowed labels: a, b$"):
        check_role_labels({"base": "zz", "student": "q"}, ["b", "a"])


def test_progress_lines_on_request_and_silence_for_small_runs(runs: tuple[Path, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    build_report([runs[1]], tmp_path / "a", progress=True)
    steps = [line.rsplit(" (", 1)[0] for line in capsys.readouterr().err.splitlines()]
    assert steps == ["report: loading 1 run", "report: propensities (36 rows)", "report: alignment",
                     "report: equilibria", "report: repeated play", "report: tournament",
                     "report: writing report.md and report.html", "report: done"]
    build_report([runs[1]], tmp_path / "b")
    assert capsys.readouterr().err == ""


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Keep each figure a plotting function draws instead of saving it."""
    kept: list[Any] = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: (kept.append(fig), path)[1])
    return kept


def test_heatmap_annotations_contrast_with_their_cells(figures: list[Any], tmp_path: Path) -> None:
    assert plots.text_colour((0.267, 0.005, 0.329, 1.0)) == "white"  # viridis' dark purple
    assert plots.text_colour((0.993, 0.906, 0.144, 1.0)) == "black"  # viridis' yellow
    m = pd.DataFrame([[0.0, 5.0], [1.0, 3.0]], index=pd.Index(["a", "b"], name="policy"),
                     columns=pd.Index(["a", "b"], name="opponent"))
    plots.crossplay_plot(m, "pd", tmp_path / "x.png")
    ax = figures[0].axes[0]
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours == {"0.00": "white", "5.00": "black", "1.00": "white", "3.00": "black"}
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("opponent", "policy")


def test_fingerprint_never_visited_is_hatched_and_distinct_from_zero(figures: list[Any], tmp_path: Path) -> None:
    fp = pd.DataFrame({"model": ["m", "m", "m"], "state": ["CC", "CD", "DD"], "p_cooperate": [1.0, 0.0, 0.5],
                       "n": [3, 2, 1]})
    plots.fingerprint_plot(fp, tmp_path / "f.png")
    ax = figures[0].axes[0]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_height() == 1.0  # DC: never visited
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["P(C|CC)", "P(C|CD)", "P(C|DC)", "P(C|DD)",
                                                               "never visited"]
    ticks = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(ticks[:, 1].tolist()) == [0.0, 0.5, 1.0]  # p = 0 has a visible tick on the axis
    assert ax.get_ylabel() == "P(C | previous outcome)" and ax.get_xlabel() == "model"


def test_rounds_plot_thins_markers_and_labels_axes(figures: list[Any], tmp_path: Path) -> None:
    rounds = pd.DataFrame({"model": "m", "game": "pd", "round": range(200), "p_cooperate": 0.5})
    plots.rounds_plot(rounds, tmp_path / "r.png")
    ax = figures[0].axes[0]
    (line,) = ax.get_lines()
    assert line.get_markevery() == 8 and len(range(0, 200, 8)) <= plots.MAX_MARKERS
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("round", "p(C)")


def test_transfer_plot_one_panel_per_set_in_study_order(figures: list[Any], tmp_path: Path) -> None:
    scen = pd.DataFrame({"set": ["other", "in_sample", "in_sample", "donation"], "p_base": [0.8, 0.9, 0.7, 7.0],
                         "p_student": [0.6, 0.7, 0.6, 5.0], "p_teacher": [0.4, 0.5, 0.4, 3.0],
                         "improvement": [50.0, 50.0, 100 / 3, 50.0], "excluded": False})
    plots.transfer_plot(scen, ROLES, tmp_path / "t.png")
    fig = figures[0]
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["in_sample (2 scenarios, improvement 42%)",
                                                "donation (1 scenario, improvement 50%)",
                                                "other (1 scenario, improvement 50%)"]
    assert shown[0].get_xlabel() == "teacher P(C)" and shown[1].get_ylabel() == "model mean contribution"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["= teacher", "base: llm/base",
                                                                  "student: llm/student"]
