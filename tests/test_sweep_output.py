"""`tomarena sweep` writes and prints its propensity table; named scenario sets work wherever a list of games or
framings does; --help shows the defaults (issue 17, item 3)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tomarena.app.cli import main
from tomarena.arena.config import load_config, validate_config
from tomarena.envs.scenarios import expand_sets

STUDY_GAMES = ["prisoners_delight", "prisoners_dilemma", "snowdrift", "stag_hunt"]
IN_FRAMINGS = ["business", "environment", "friendsharing", "ir", "team"]
OOS_FRAMINGS = ["roomsharing", "sports", "ventcap"]


def test_sweep_writes_and_prints_propensities(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "s"
    code = main(["sweep", "--policies", "classic/always_cooperate,classic/random?p=0.3", "--game", "in_sample",
                 "--framing", "ventcap,sports", "--samples", "4", "--out", str(out), "--no-progress"])
    assert code == 0
    table = pd.read_csv(out / "propensities.csv")
    assert list(table.columns[:3]) == ["model", "framing", "game"]
    assert {"p_cooperate", "ci_low", "ci_high", "other_mass"} <= set(table.columns)
    assert len(table) == 2 * 4 * 2 and set(table["n_rows"]) == {4}
    p = table.set_index(["model", "framing", "game"])["p_cooperate"]
    assert p["classic/always_cooperate", "sports", "stag_hunt"] == 1.0
    assert p["classic/random?p=0.3", "ventcap", "snowdrift"] == pytest.approx(0.3)  # exact: mean of p(C)
    assert not (out / "standings.csv").exists() and not (out / "crossplay.csv").exists()  # were header-only
    printed = capsys.readouterr().out
    assert "propensities (" in printed and "classic/random?p=0.3" in printed and "0.300" in printed
    assert printed.count("\n") < 2 * 4 * 2 + 6  # one line per row, no more


def test_donation_sweep_writes_donations(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    assert main(["sweep", "--policies", "classic/fixed_contributor?amount=7", "--game", "donation", "--out",
                 str(out), "--no-progress"]) == 0
    assert pd.read_csv(out / "donations.csv")["mean_contribution"].tolist() == [7.0]
    assert "donations (" in capsys.readouterr().out


def test_scenario_sets_expand_on_each_axis() -> None:
    assert expand_sets(["in_sample"], "games") == STUDY_GAMES
    assert expand_sets(["oos_games"], "games") == [f"{g}_doubled" for g in STUDY_GAMES]
    assert expand_sets(["in_sample"], "framings") == IN_FRAMINGS
    assert expand_sets(["oos_framings"], "framings") == OOS_FRAMINGS
    assert expand_sets(["oos_framings"], "games") == STUDY_GAMES  # that set's games are the study's
    assert expand_sets(["all"], "framings") == IN_FRAMINGS + OOS_FRAMINGS
    assert len(expand_sets(["all"], "games")) == 8
    assert expand_sets(["donation", "in_sample", "stag_hunt"], "games") == ["donation", *STUDY_GAMES]


def test_scenario_sets_in_flags_and_config_files(tmp_path: Path) -> None:
    cfg = load_config(None, {"kind": "sweep", "policies": ["classic/always_cooperate"], "games": ["in_sample"],
                             "framings": ["oos_framings"]})
    assert (cfg.games, cfg.framings) == (STUDY_GAMES, OOS_FRAMINGS)
    f = tmp_path / "c.yaml"
    f.write_text("policies: [classic/tit_for_tat]\ngames: oos_games\nframings: [in_sample, none]\n")
    cfg = load_config(f, {})
    assert cfg.games == [f"{g}_doubled" for g in STUDY_GAMES] and cfg.framings == [*IN_FRAMINGS, "none"]
    assert validate_config({"policies": ["x"], "games": "in_sample,donation"}).games == [*STUDY_GAMES, "donation"]


def test_unknown_scenario_name_is_one_line_naming_the_sets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["sweep", "--policies", "classic/always_cooperate", "--game", "in_sampel", "--out",
                 str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'in_sampel'" in err and "in_sample, oos_framings, oos_games, all" in err


@pytest.mark.parametrize("command", ["sweep", "tournament"])
def test_help_shows_defaults(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: prisoners_dilemma)" in text and "(default: none)" in text and "in_sample" in text
    assert "default: 0" in text and "default: local" in text
    if command == "tournament":
        assert "default: 10" in text and "default: yes" in text


def test_help_flags_come_from_the_config(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["tournament", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    flags = set(re.findall(r"--[a-z-]+", text))
    assert flags == {"--policies", "--games", "--game", "--framings", "--framing", "--rounds", "--continuation",
                     "--max-rounds", "--repetitions", "--seed", "--self-play", "--no-self-play", "--noise",
                     "--executor", "--ray-address", "--workers", "--chunk-size", "--save-every", "--replicas",
                     "--concurrency", "--max-batch", "--batch-wait-ms", "--replica-cpus", "--replica-gpus",
                     "--sweep-path", "--config", "--out", "--resume", "--no-progress", "--help"}
    assert "--sweep-path {ray_data,service}" in text
    assert "--executor {local,ray} where matches run (default: local)" in text
    assert "--max-batch MAX_BATCH model service: most decisions per batch (default: 64)" in text
