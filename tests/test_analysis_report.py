"""The report renders for runs with classic strategies and an LLM-like policy; the CLI turns bad input into one
line and exit status 2; importing the analysis layer pulls in no torch, transformers or ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_analysis_fixtures import match_rows, row, sweep_rows, write_run
from tomarena.analysis.report import build_report
from tomarena.app.cli import main

ROLES = {"teacher": "llm/teacher", "base": "llm/base", "student": "llm/student"}
RATES = {"llm/teacher": 4, "llm/base": 8, "llm/student": 6}  # C answers out of 10


def _sweep(root: Path) -> Path:
    rows = []
    for framing in ("ir", "team", "sports"):
        for game in ("prisoners_dilemma", "stag_hunt", "stag_hunt_doubled"):
            for i, (label, k) in enumerate(RATES.items()):
                rows += sweep_rows(label, framing, game, 10, k + (i if game == "stag_hunt" else 0) % 3,
                                   n_invalid=1 if label == "llm/student" else 0)
        for label, k in RATES.items():
            rows += [row(policy=label, game="donation", framing=framing, intended_action=a, action=a,
                         action_label=str(a), source="llm", parse_status="ok") for a in (k - 2, k, k + 1)]
    return write_run(root, rows, roles=ROLES)


def _tournament(root: Path) -> Path:
    rows = []
    seqs = {"classic/tit_for_tat": None, "classic/always_defect": [1, 1, 1], "llm/student": [0, 1, 0]}
    labels = list(seqs)
    for i, a in enumerate(labels):
        for b in labels[i:]:
            sa, sb = seqs[a] or [0, 0, 0], seqs[b] or [0, 0, 0]
            if a == "classic/tit_for_tat":
                sa = [0] + sb[:-1]
            if b == "classic/tit_for_tat":
                sb = [0] + sa[:-1]
            rows += match_rows(a, b, sa, sb, exact=not a.startswith("llm"))
    return write_run(root, rows, kind="tournament")


def test_report_renders_html_markdown_pngs_and_headline(tmp_path: Path) -> None:
    rep = build_report([_sweep(tmp_path / "sweep"), _tournament(tmp_path / "tour")], tmp_path / "out")
    html = rep.html.read_text()
    assert rep.html.stat().st_size > 10_000 and html.count("data:image/png;base64,") >= 6
    assert "Alignment with the teacher" in html and "Memory-one fingerprints" in html and "Moran" in html
    assert "src='http" not in html and "src=\"http" not in html  # self-contained
    pngs = sorted(p.name for p in rep.out.glob("*.png"))
    assert {"bars_by_framing.png", "bars_by_game.png", "improvement_heatmap.png", "fingerprints.png",
            "crossplay_prisoners_dilemma.png"} <= set(pngs)
    assert all(p.stat().st_size > 1000 for p in rep.out.glob("*.png"))
    md = rep.markdown.read_text()
    assert "![improvement_heatmap](improvement_heatmap.png)" in md and "| model | framing | game |" in md
    assert rep.roles == ROLES
    assert set(rep.headline) == {"in_sample", "oos_framings", "oos_games", "donation", "other"}  # sports x doubled
    ins = rep.headline["in_sample"]
    assert ins["n_scenarios"] == 4  # ir, team x prisoners_dilemma, stag_hunt
    assert ins["student"]["mean_improvement"] == pytest.approx(50.0, abs=15)  # base .8, student ~.6, teacher .4
    assert ins["study"]["student"]["mean_improvement"] == pytest.approx(46.65, abs=0.01)  # the study's own beside
    assert (rep.out / "alignment.csv").stat().st_size > 0
    assert (rep.out / "alignment_scenarios.csv").stat().st_size > 0


def test_report_without_roles_skips_alignment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tour = _tournament(tmp_path / "tour")
    assert main(["report", str(tour), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "no headline" in out and "report.html" in out
    assert "Skipped alignment: roles teacher, base, student" in (tmp_path / "o" / "report.md").read_text()


def test_cli_report_bad_run_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tomarena: error:") and "does not exist" in err and "\n" not in err


def _csv(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "props.csv"
    f.write_text(text)
    return f


def test_cli_analyze_alignment_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _csv(tmp_path, "model,framing,game,n_cooperate,n_total\n" + "".join(
        f"{m},{fr},prisoners_dilemma,{k},10\n" for fr in ("ir", "team") for m, k in (("b", 8), ("f", 7), ("t", 5))))
    args = ["analyze", "alignment", "--propensities", str(f), "--base", "b", "--student", "f", "--teacher", "t"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "improvement 33.33%" in out and "| set | framing |" in out and "in_sample (2 scenarios)" in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["in_sample"]["mean_improvement"] == pytest.approx(100 / 3)
    assert data["scenarios"][0]["gap_closure"] == pytest.approx(1 / 3)
    assert {m["metric"] for m in data["metrics"]} >= {"margin_over_best_null", "r_within_game"}


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ("model,framing,n_cooperate,n_total\nb,ir,1,2\n", "lacks columns game"),
    ("model,framing,game,p_cooperate\nb,ir,stag_hunt,0.5\n", "model 'f' has no rows"),
])
def test_cli_analyze_alignment_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None,
                                         message: str) -> None:
    f = _csv(tmp_path, text) if text else tmp_path / "absent.csv"
    code = main(["analyze", "alignment", "--propensities", str(f), "--base", "b", "--student", "f", "--teacher", "b"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err


def test_analysis_import_pulls_no_heavy_libraries() -> None:
    code = ("import sys, tomarena.analysis, tomarena.analysis.report, tomarena.app.commands.analysis; "
            "print(sorted(m for m in ('torch', 'transformers', 'ray', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
