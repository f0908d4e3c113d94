"""`tomarena list games|framings [--json]` and one-line errors (exit status 2, no traceback) through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tomarena.app import catalog
from tomarena.app.cli import main


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tomarena.app.cli", *args], capture_output=True, text=True,
                          check=False, env={**os.environ, **(env or {})}, timeout=120)


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out.stderr.strip()


def test_list_games_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "games", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert len([g for g in rows if not g.startswith("rg144/")]) == 10  # the Robinson-Goforth games are tested apart
    sh = rows["stag_hunt"]
    assert (sh["kind"], sh["family"]) == ("matrix_2x2", "stag_hunt")
    assert sh["payoffs"] == [[[10.0, 10.0], [2.0, 5.0]], [[5.0, 2.0], [3.0, 3.0]]]
    assert (sh["R"], sh["S"], sh["T"], sh["P"]) == (10.0, 2.0, 5.0, 3.0)
    assert sh["equilibria"] == ["(C,C)", "(D,D)", "mixed p(C)=1/6, p(C)=1/6"]
    assert sh["equilibrium_strategies"][0] == [[1.0, 0.0], [1.0, 0.0]]
    assert sh["pareto"] == ["(C,C)"] and sh["risk_dominant"] == "(C,C)" and sh["tags"] == ["in_sample", "study"]
    pd = rows["prisoners_dilemma"]
    assert pd["equilibria"] == ["(D,D)"] and pd["pareto"] == ["(C,C)", "(C,D)", "(D,C)"]
    assert pd["risk_dominant"] is None
    assert rows["snowdrift"]["equilibria"] == ["(C,D)", "(D,C)", "mixed p(C)=1/6, p(C)=1/6"]
    assert rows["prisoners_delight_doubled"]["R"] == 20.0 and "doubled" in rows["prisoners_delight_doubled"]["tags"]
    don = rows["donation"]
    assert (don["players"], don["endowment"], don["multiplier"]) == (4, 10, 2.0)
    assert (don["kind"], don["family"]) == ("donation", "donation")
    assert don["equilibria"] == ["everyone gives 0 (dominant strategy)"]
    assert don["social_optimum"] == "everyone gives 10"


def test_list_games_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "games"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("rg144/")]
    assert len(lines) == 10
    (sh,) = [line for line in lines if line.startswith("stag_hunt ")]
    assert "R=10 S=2 T=5 P=3" in sh and "NE: (C,C); (D,D); mixed p(C)=1/6" in sh and "risk-dominant (C,C)" in sh
    (don,) = [line for line in lines if line.startswith("donation ")]
    assert "4 players, endowment 10, multiplier 2" in don


def test_list_framings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "framings", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == ["business", "environment", "friendsharing", "ir", "none", "roomsharing", "sports",
                            "team", "ventcap"]
    assert rows["ventcap"]["sample"] == "out" and rows["none"]["sample"] == "none"
    assert rows["ir"]["warmth"] == 0.2 and rows["ir"]["option_c"] == "a diplomatic strategy labelled C"
    assert main(["list", "framings"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 9 and text[3].split()[:2] == ["ir", "in"]
    assert catalog.format_listing("framings", []) == ""


def test_unknown_list_target_is_one_line() -> None:
    err = _one_error_line(_cli("list", "gamez"))
    assert err == "tomarena list: error: argument what: invalid choice: 'gamez' (choose from 'games', " \
                  "'framings', 'policies')"


def test_unknown_game_and_bad_option_through_play_are_one_line() -> None:
    err = _one_error_line(_cli("play", "classic/tit_for_tat", "classic/always_defect", "--game", "stag_hnut"))
    sets = "; or a scenario set: in_sample, oos_framings, oos_games, all"
    # startswith: further scenario sets (e.g. rg144) may follow `all`
    assert err.startswith("tomarena: error: unknown game 'stag_hnut'; did you mean stag_hunt, stag_hunt_doubled?"
                          + sets)
    err = _one_error_line(_cli("play", "classic/tit_for_tat", "classic/always_defect", "--framing", "buisness"))
    assert err.startswith("tomarena: error: unknown framing 'buisness'; did you mean business?" + sets)


def test_broken_framing_dir_from_env_var_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: broken\ntitle: [never closed\n", encoding="utf-8")
    err = _one_error_line(_cli("list", "framings", env={"TOMARENA_FRAMINGS": str(tmp_path)}))
    assert err.startswith(f"tomarena: error: framing file {tmp_path / 'broken.yaml'} is not valid YAML")
    assert err.endswith("(from TOMARENA_FRAMINGS)")
    (tmp_path / "broken.yaml").write_text("id: broken\n", encoding="utf-8")
    err = _one_error_line(_cli("list", "framings", env={"TOMARENA_FRAMINGS": str(tmp_path)}))
    assert f"missing framing key 'title' in framing file {tmp_path / 'broken.yaml'}" in err
    err = _one_error_line(_cli("list", "framings", env={"TOMARENA_FRAMINGS": str(tmp_path / "nowhere")}))
    assert err == f"tomarena: error: framing directory {tmp_path / 'nowhere'} does not exist (from TOMARENA_FRAMINGS)"


def test_list_policies_shows_options_from_the_options_models(capsys: pytest.CaptureFixture[str]) -> None:
    from tomarena.agents.resolve import resolve_policy
    from tomarena.errors import ConfigError

    assert main(["list", "policies", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["classic/random"]["options"] == [
        {"name": "p", "type": "float", "default": 0.5, "description": "probability of C each round"}]
    assert rows["classic/memory_one"]["options"][0] == {
        "name": "p", "type": "tuple[float, ...]", "default": [1.0, 0.0, 1.0, 0.0],
        "description": "p(C) after CC, CD, DC, DD (own last move first), comma list"}
    assert rows["classic/tit_for_tat"]["options"] == []
    strategist = rows["strategist/reference"]["options"]
    assert len(strategist) == 18 and strategist[1] == {
        "name": "rationality", "type": "float", "default": 0.7,
        "description": "logit precision per point of utility (0 = uniform)"}
    assert rows["axelrod:<Name>"]["kind"] == "axelrod" and [o["name"] for o in rows["axelrod:<Name>"]["options"]] \
        == ["seed"]
    assert {"hf:<path-or-model-id>", "openai:<base-url>"} <= set(rows)
    undocumented = [(r["id"], o["name"]) for r in rows.values() for o in r["options"] if not o["description"]]
    assert undocumented == []
    for pid in ("strategist/reference", "classic/memory_one", "study/llama2-7b"):  # the model validates and lists
        with pytest.raises(ConfigError) as exc:
            resolve_policy(f"{pid}?zz=1")
        assert str(exc.value).endswith(", ".join(sorted(o["name"] for o in rows[pid]["options"])))
    assert main(["list", "policies"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "    p=0.5 (float): probability of C each round" in text
    assert any(line.startswith("axelrod:<Name>  ") for line in text)


def test_list_policies_axelrod_lists_every_strategy_without_importing_the_library() -> None:
    code = ("import sys, json\nfrom tomarena.app.cli import main\nmain(['list', 'policies', '--axelrod', '--json'])\n"
            "print(json.dumps('axelrod' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    *body, imported = out.stdout.strip().splitlines()
    rows = {r["id"]: r for r in json.loads("\n".join(body))}
    assert imported == "false" and len(rows) == 244
    assert rows["axelrod:TitForTat"] == {"id": "axelrod:TitForTat", "name": "Tit For Tat", "stochastic": False,
                                         "reads": [], "vectorised": True, "refused": None}
    assert rows["axelrod:Adaptive"]["reads"] == ["game"] and rows["axelrod:GTFT"]["stochastic"] is True
    assert rows["axelrod:Darwin"]["refused"] == "needs to see its opponent (inspects_source, manipulates_state)"
    text = _cli("list", "policies", "--axelrod").stdout.splitlines()
    assert len(text) == 244 and text[1].split() == ["axelrod:AdaptiveTitForTat", "Adaptive", "Tit", "For", "Tat",
                                                    "deterministic", "vectorised"]
    err = _one_error_line(_cli("list", "games", "--axelrod"))
    assert err == "tomarena: error: --axelrod lists Axelrod strategies; use it with `list policies`, not `list games`"
