"""Lists of policies with commas inside a spec's options (issue 25 item 4): `classic/memory_one?p=1,0,1,0` is one
policy in `play`, in `--policies`, in a YAML string and in the Python API, while a plain comma list still splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tomarena
from tomarena.agents.resolve import resolve_policy
from tomarena.app.cli import main
from tomarena.arena.config import load_config
from tomarena.errors import ConfigError

MO = "classic/memory_one?p=1,0,1,0"  # memory-one with (pCC, pCD, pDC, pDD) = (1, 0, 1, 0): tit-for-tat
TFT, ALLD, GRIM = "classic/tit_for_tat", "classic/always_defect", "classic/grim_trigger"


def plays(text: str) -> dict[str, list[str]]:
    """The actions of each player, round by round, from `tomarena play`'s transcript."""
    out: dict[str, list[str]] = {}
    for agent, action in re.findall(r"^round +\d+ (player_\d): (\w+) ", text, flags=re.MULTILINE):
        out.setdefault(agent, []).append(action)
    return out


def test_play_takes_a_spec_with_commas_in_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", MO, ALLD, "--rounds", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"prisoners_dilemma in framing none: {MO} (player_0) vs {ALLD} (player_1)"
    assert plays(out) == {"player_0": ["C", "D", "D", "D"], "player_1": ["D", "D", "D", "D"]}


def test_bracketed_tuple_option_is_the_same_policy() -> None:
    assert resolve_policy("classic/memory_one?p=[1,0,1,0]&first=0").p == (1.0, 0.0, 1.0, 0.0)
    assert resolve_policy(MO).p == (1.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize(("flags", "policies"), [
    ([f"{MO},{TFT}", ALLD], [MO, TFT, ALLD]),
    ([f"'{MO}',{TFT},{ALLD}"], [MO, TFT, ALLD]),
    ([f"{TFT}, {ALLD},{GRIM}"], [TFT, ALLD, GRIM]),  # a plain list still splits at every comma
    (["classic/memory_one?p=[1,0,1,0],classic/random?p=0.25"], ["classic/memory_one?p=[1,0,1,0]",
                                                                 "classic/random?p=0.25"]),
])
def test_policies_flag_splits_between_specs_only(flags: list[str], policies: list[str]) -> None:
    overrides = {"policies": flags, "kind": "tournament"}
    assert load_config(None, overrides).policies == policies


def test_yaml_string_list_keeps_option_commas(tmp_path: Path) -> None:
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"policies: '{MO}, {GRIM}'\nrounds: 3\n", encoding="utf-8")
    assert load_config(cfg, {"kind": "tournament"}).policies == [MO, GRIM]


def test_tournament_with_a_comma_spec_plays_the_right_policies(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["tournament", "--policies", f"{MO},{TFT}", "--policies", ALLD, "--rounds", "5", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["policies"] == [MO, TFT, ALLD]
    import pandas as pd

    standings = pd.read_csv(out / "standings.csv").set_index("policy")
    assert sorted(standings.index) == sorted([MO, TFT, ALLD])
    # memory-one (1,0,1,0) is tit-for-tat, so the two score alike against every opponent
    cols = ["rounds_played", "mean_payoff_per_round", "cooperation_rate"]
    assert standings.loc[MO, cols].tolist() == standings.loc[TFT, cols].tolist()
    cross = pd.read_csv(out / "crossplay.csv")
    assert sorted(cross.loc[cross["policy"] == MO, "opponent"]) == sorted([MO, TFT, ALLD])


def test_api_reads_a_policy_string_as_the_command_line_does(tmp_path: Path) -> None:
    res = tomarena.tournament(f"{MO},{ALLD}", rounds=3, out=tmp_path / "api")
    assert sorted(res.standings["policy"]) == sorted([MO, ALLD])
    res = tomarena.tournament([MO, ALLD], rounds=3, out=tmp_path / "api2")
    assert sorted(res.standings["policy"]) == sorted([MO, ALLD])


def test_api_refuses_a_list_item_that_is_two_policies() -> None:
    with pytest.raises(ConfigError) as info:
        tomarena.tournament([f"{TFT},{ALLD}"], rounds=3)
    assert str(info.value).startswith(f"policy label '{TFT},{ALLD}' reads as ['{TFT}', '{ALLD}']")


def test_play_refuses_two_policies_for_one_player(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", f"{TFT},{GRIM}", ALLD]) == 2
    err = capsys.readouterr().err
    assert err == (f"tomarena: error: player_0 must be one policy spec, got '{TFT},{GRIM}' (read as ['{TFT}', "
                   f"'{GRIM}']); `play` takes two policies, one per player\n")


def test_play_against_itself_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", TFT, TFT, "--rounds", "2"]) == 0
    assert plays(capsys.readouterr().out) == {"player_0": ["C", "C"], "player_1": ["C", "C"]}
