"""Games are classified by kind (issue 24, items 4-5): every game implements `GameLike`; trace rows and analysis
ask the game's kind and cooperative action, never its labels, so a 2x2 game labelled X/Y is analysed as a 2x2 game
and a donation row has no p_cooperate."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest

from tests.test_analysis_fixtures import row, sweep_rows
from tomarena.agents.resolve import resolve_policy
from tomarena.agents.strategies.study import game_family
from tomarena.analysis.propensity import donation_table, propensity_table, row_kinds
from tomarena.analysis.tournament import cooperation
from tomarena.app.cli import main
from tomarena.arena.episode import MatchSpec, play_episode
from tomarena.envs import GAMES, DonationGame, get_game, matrix_game, parallel_env
from tomarena.envs.games import GAME_KINDS, GameLike
from tomarena.errors import GameError

XY = "matrix?row=1/0/0/2&col=2/0/0/1&labels=X/Y"
THREE = "matrix?row=1/0/0/0/1/0/0/0/1&col=1/0/0/0/1/0/0/0/1"
BUILTIN = {  # id: (kind, family, cooperative_action)
    "donation": ("donation", "donation", None),
    "prisoners_delight": ("matrix_2x2", "prisoners_delight", 0),
    "prisoners_delight_doubled": ("matrix_2x2", "prisoners_delight", 0),
    "prisoners_dilemma": ("matrix_2x2", "prisoners_dilemma", 0),
    "prisoners_dilemma_axelrod": ("matrix_2x2", "prisoners_dilemma", 0),
    "prisoners_dilemma_doubled": ("matrix_2x2", "prisoners_dilemma", 0),
    "snowdrift": ("matrix_2x2", "snowdrift", 0),
    "snowdrift_doubled": ("matrix_2x2", "snowdrift", 0),
    "stag_hunt": ("matrix_2x2", "stag_hunt", 0),
    "stag_hunt_doubled": ("matrix_2x2", "stag_hunt", 0),
}
INLINE = {
    "stag_hunt?R=4&S=0&T=3&P=2": ("matrix_2x2", "stag_hunt", 0),
    "symmetric?R=5&S=2&T=10&P=3": ("matrix_2x2", "prisoners_dilemma", 0),  # the family follows from the payoffs
    "symmetric?R=1&S=1&T=1&P=1": ("matrix_2x2", None, 0),
    "matrix?row=5/2/10/3&col=5/10/2/3&labels=X/Y": ("matrix_2x2", "prisoners_dilemma", 0),
    XY: ("matrix_2x2", None, 0),  # asymmetric: no family
    THREE: ("matrix", None, None),
    "donation?n_players=3&endowment=5&multiplier=1.5": ("donation", "donation", None),
}


def test_builtin_games_kind_family_and_cooperative_action() -> None:
    got = {g: (GAMES.get(g).kind, GAMES.get(g).family, GAMES.get(g).cooperative_action) for g in BUILTIN}
    assert got == BUILTIN
    assert {GAMES.get(g).kind for g in GAMES.ids()} <= set(GAME_KINDS)  # every registered game, plugins included


@pytest.mark.parametrize("spec", list(INLINE))
def test_inline_specs_kind_family_and_cooperative_action(spec: str) -> None:
    g = get_game(spec)
    assert (g.kind, g.family, g.cooperative_action) == INLINE[spec]
    assert g.kind in GAME_KINDS


@pytest.mark.parametrize("game_id", [*BUILTIN, *INLINE])
def test_family_agrees_with_the_study_helper(game_id: str) -> None:
    g = get_game(game_id)
    assert g.family == (game_family(g) if g.kind != "donation" else "donation")


@pytest.mark.parametrize("game", [GAMES.get("stag_hunt"), get_game(THREE), DonationGame(n_players=3)])
def test_every_game_offers_the_whole_protocol(game: GameLike) -> None:
    members = [m for m in vars(GameLike) if not m.startswith("_")]
    assert sorted(members) == ["action_labels", "cooperative_action", "family", "id", "kind", "n_actions",
                               "n_players", "name", "nash_equilibria", "payoff", "payoff_bounds", "tags"]
    for m in members:
        assert callable(getattr(game, m)) == inspect.isfunction(vars(GameLike)[m]), m


def test_get_game_passes_game_objects_through_and_rejects_others() -> None:
    g = matrix_game([[1, 0], [0, 2]], [[2, 0], [0, 1]], action_labels=("X", "Y"))
    assert get_game(g) is g
    with pytest.raises(GameError, match=r"^a game must be an id or a game object of kind matrix_2x2, matrix, "
                                        r"donation; got 3$"):
        get_game(3)  # type: ignore[arg-type]


def test_xy_sweep_lands_in_propensities_and_not_in_donations(tmp_path: Path) -> None:
    out = tmp_path / "xy"
    assert main(["sweep", "--policies", "classic/random?p=0.3", "--game", XY, "--framing", "business",
                 "--out", str(out), "--no-progress"]) == 0
    t = pd.read_csv(out / "propensities.csv")
    assert t[["model", "framing", "game", "n_rows", "n_valid", "n_cooperate", "p_cooperate", "ci_low", "ci_high",
              "method"]].to_dict("records") == [
        {"model": "classic/random?p=0.3", "framing": "business", "game": XY, "n_rows": 1, "n_valid": 1,
         "n_cooperate": 1, "p_cooperate": 0.3, "ci_low": 0.3, "ci_high": 0.3, "method": "exact"}]
    assert not (out / "donations.csv").exists()


def test_donation_rows_have_null_p_cooperate_and_2x2_rows_p_of_the_first_action() -> None:
    pols = {p: resolve_policy(p) for p in ("classic/fixed_contributor?amount=7", "classic/random?p=0.3")}
    gives = play_episode(MatchSpec(("classic/fixed_contributor?amount=7",) * 4, "donation", "none", rounds=2), pols,
                         run_seed=0)
    assert len(gives) == 8
    assert {(r["action"], r["probs"][7], r["p_cooperate"]) for r in gives} == {(7, 1.0, None)}
    sweep = play_episode(MatchSpec(("classic/random?p=0.3",), XY, "none", kind="sweep"), pols, run_seed=0)
    assert [(r["probs"], r["p_cooperate"]) for r in sweep] == [([0.3, 0.7], 0.3)]
    frame = pd.DataFrame(gives)
    assert propensity_table(frame).empty
    assert donation_table(frame)[["mean_contribution", "method"]].to_dict("records") == [
        {"mean_contribution": 7.0, "method": "exact"}]


def test_rows_are_classified_by_game_kind_and_unknown_ids_by_labels() -> None:
    xy = [row(game=XY, action_label="XY"[a], intended_action=a, action=a) for a in (0, 0, 1, 0)]
    three = [row(game=THREE, action_label="A2", intended_action=1, action=1)]
    unknown_cd = [row(game="plugin_game", action_label="C")]
    unknown_amount = [row(game="plugin_gift", action_label="3", intended_action=3, action=3)]
    frame = pd.DataFrame(xy + three + unknown_cd + unknown_amount + sweep_rows("p", "ir", "stag_hunt", 2, 1))
    assert row_kinds(frame).tolist() == ["matrix_2x2"] * 4 + ["matrix", "matrix_2x2", "donation"] + ["matrix_2x2"] * 2
    props = propensity_table(frame).set_index("game")
    assert sorted(props.index) == [XY, "plugin_game", "stag_hunt"]
    assert (props.loc[XY, "n_cooperate"], props.loc[XY, "p_cooperate"]) == (3, 0.75)
    assert donation_table(frame)["game"].tolist() == ["plugin_gift"]
    assert row_kinds(frame.astype({"game": "category"})).tolist() == row_kinds(frame).tolist()


def test_tournament_cooperation_asks_the_game() -> None:
    frame = pd.DataFrame([row(game=XY, action=0, action_label="X"), row(game=XY, action=1, action_label="Y"),
                          row(game="donation", action=4, action_label="4"), row(game=THREE, action=0)])
    assert cooperation(frame).tolist()[:3] == [1.0, 0.0, 0.4] and pd.isna(cooperation(frame).iloc[3])


def test_envs_take_any_game_like_object() -> None:
    e = parallel_env(game=get_game(XY), rounds=1)
    e.reset(seed=0)
    _, rewards, *_ = e.step({"player_0": 1, "player_1": 1})
    assert rewards == {"player_0": 2.0, "player_1": 1.0}
