"""Scenario sets in both directions (tomarena.envs.scenarios): each set's exact games and framings, and the set of
single scenarios, with every member of a non-overlapping set mapping back to that set."""

from __future__ import annotations

import itertools

import pytest

from tomarena import study
from tomarena.envs.rg144 import rg144_ids
from tomarena.envs.scenarios import OTHER, SET_NAMES, STUDY_SETS, expand_sets, scenario_set, set_of
from tomarena.errors import ConfigError

STUDY_GAMES = ["prisoners_delight", "prisoners_dilemma", "snowdrift", "stag_hunt"]
DOUBLED = [f"{g}_doubled" for g in STUDY_GAMES]
IN_FRAMINGS = ["business", "environment", "friendsharing", "ir", "team"]
OOS_FRAMINGS = ["roomsharing", "sports", "ventcap"]


@pytest.mark.parametrize(("name", "games", "framings"), [
    ("in_sample", STUDY_GAMES, IN_FRAMINGS),
    ("oos_framings", STUDY_GAMES, OOS_FRAMINGS),
    ("oos_games", DOUBLED, IN_FRAMINGS),
    ("all", STUDY_GAMES + DOUBLED, IN_FRAMINGS + OOS_FRAMINGS),
    ("donation", ["donation"], ["none"]),
])
def test_study_sets_have_exact_members(name: str, games: list[str], framings: list[str]) -> None:
    assert scenario_set(name) == (games, framings)


def test_rg144_sets_are_the_fixed_split_in_the_bare_framing() -> None:
    train, test = scenario_set("rg144_train"), scenario_set("rg144_test")
    assert train[0][:4] == ["rg144/1", "rg144/2", "rg144/4", "rg144/5"] and len(train[0]) == 96
    assert test[0][:4] == ["rg144/3", "rg144/6", "rg144/9", "rg144/12"] and len(test[0]) == 48
    assert scenario_set("rg144") == ([f"rg144/{n}" for n in range(1, 145)], ["none"])
    assert train[1] == test[1] == ["none"] and test[0] == rg144_ids("test")


def test_donation_set_takes_the_callers_framings() -> None:
    assert scenario_set("donation", ["business", "none"]) == (["donation"], ["business", "none"])


@pytest.mark.parametrize(("game", "framing", "expected"), [
    ("stag_hunt", "ir", "in_sample"),
    ("prisoners_dilemma", "sports", "oos_framings"),
    ("prisoners_dilemma_doubled", "business", "oos_games"),
    ("donation", "none", "donation"),
    ("donation", "business", "donation"),
    ("rg144/3", "none", "rg144_test"),
    ("rg144/67", "none", "rg144_train"),
    ("rg144/67", "team", "other"),  # the recordings were played without a framing
    ("snowdrift_doubled", "sports", "other"),  # in `all`'s grid, in none of the study's sets
    ("prisoners_dilemma", "none", "other"),
    ("prisoners_dilemma_axelrod", "ir", "other"),
    ("nowhere", "stag_hunt", "other"),
    ("stag_hunt", "nowhere", "other"),
])
def test_set_of_one_scenario(game: str, framing: str, expected: str) -> None:
    assert set_of(game, framing) == expected


@pytest.mark.parametrize("name", [*STUDY_SETS, "rg144_train", "rg144_test"])
def test_every_member_of_a_set_maps_back_to_it(name: str) -> None:
    games, framings = scenario_set(name)
    assert {set_of(g, f) for g, f in itertools.product(games, framings)} == {name}


def test_all_and_rg144_are_unions_of_the_smaller_sets() -> None:
    games, framings = scenario_set("all")
    seen = [set_of(g, f) for g, f in itertools.product(games, framings)]
    assert {s: seen.count(s) for s in set(seen)} == {"in_sample": 20, "oos_framings": 12, "oos_games": 20, OTHER: 12}
    assert {set_of(g, "none") for g in scenario_set("rg144")[0]} == {"rg144_train", "rg144_test"}


def test_the_study_data_agrees_with_the_sets() -> None:
    cells = study.one_shot_cells()
    assert [c.set for c in cells] == [set_of(c.game, c.framing) for c in cells] and len(cells) == 176


def test_expand_sets_per_axis_keeps_ids_and_order() -> None:
    assert expand_sets(["donation", "in_sample", "stag_hunt"], "games") == ["donation", *STUDY_GAMES]
    assert expand_sets(["oos_framings", "none", "sports"], "framings") == [*OOS_FRAMINGS, "none"]
    assert expand_sets(["donation"], "framings") == ["none"]


def test_unknown_set_is_one_line_naming_the_sets() -> None:
    with pytest.raises(ConfigError) as err:
        scenario_set("in_sampel")
    assert str(err.value) == ("unknown scenario set 'in_sampel'; allowed: in_sample, oos_framings, oos_games, all, "
                              "donation, rg144, rg144_train, rg144_test")
    assert SET_NAMES == ("in_sample", "oos_framings", "oos_games", "all", "donation", "rg144", "rg144_train",
                         "rg144_test")
