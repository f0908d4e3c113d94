"""Named scenario sets, the one place that knows them, in both directions: a set's (games, framings) and the set a
(game, framing) scenario belongs to. Membership comes from the registries' tags (a game's `in_sample`, `doubled`,
`rg144_train` / `rg144_test` tags, its kind, a framing's sample), so a registered game or framing joins its set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from tomarena.envs.framings import FRAMINGS, framings_by_sample
from tomarena.envs.games import GAMES
from tomarena.envs.rg144 import Split, rg144_ids
from tomarena.errors import ConfigError, RegistryError

#: the study's sets: they do not overlap, and every scenario of a study table belongs to one of them or to OTHER
STUDY_SETS = ("in_sample", "oos_framings", "oos_games", "donation")
#: every named set: the study's, `all` (every study game x every study framing), the Robinson-Goforth sets
SET_NAMES = ("in_sample", "oos_framings", "oos_games", "all", "donation", "rg144", "rg144_train", "rg144_test")
#: what `set_of` answers for a scenario of none of the non-overlapping sets
OTHER = "other"
#: the donation set's framings unless a caller picks others (the bare game)
DONATION_FRAMINGS = ("none",)
#: the Robinson-Goforth sets: name -> split of tomarena.envs.rg144
RG144_SETS: dict[str, Split] = {"rg144": "all", "rg144_train": "train", "rg144_test": "test"}
#: one line per set, for help texts
SET_HELP = {
    "in_sample": "the 4 study games x the 5 in-sample framings",
    "oos_framings": "the 4 study games x the out-of-sample framings (sports, roomsharing, ventcap)",
    "oos_games": "the 4 doubled games x the 5 in-sample framings",
    "all": "the 8 study games x the 8 study framings",
    "donation": "the donation game x the framing none",
    "rg144": "the 144 Robinson-Goforth games rg144/<n> x the framing none",
    "rg144_train": "the 96 training games of rg144's fixed split x none",
    "rg144_test": "the 48 held-out games of rg144's fixed split x none",
}


def _tagged(tag: str) -> list[str]:
    return [g for g in GAMES.ids() if tag in GAMES.get(g).tags]


def scenario_set(name: str, donation_framings: Sequence[str] = DONATION_FRAMINGS) -> tuple[list[str], list[str]]:
    """(games, framings) of the named set, whose scenarios are the product of the two lists; `donation_framings`
    picks the donation set's framings (any framing's donation scenario is in it). Unknown names: ConfigError."""
    if name not in SET_NAMES:
        raise ConfigError(f"unknown scenario set {name!r}; allowed: {', '.join(SET_NAMES)}")
    if name in RG144_SETS:
        return rg144_ids(RG144_SETS[name]), ["none"]
    study, doubled = _tagged("in_sample"), _tagged("doubled")
    ins, outs = framings_by_sample("in"), framings_by_sample("out")
    sets = {"in_sample": (study, ins), "oos_framings": (study, outs), "oos_games": (doubled, ins),
            "all": (study + doubled, ins + outs),
            "donation": ([g for g in GAMES.ids() if GAMES.get(g).kind == "donation"], list(donation_framings))}
    return sets[name]


def set_of(game: str, framing: str) -> str:
    """The non-overlapping set of one scenario: one of STUDY_SETS, rg144_train or rg144_test, else OTHER (unknown
    ids, the bare framing none with a study game, or a doubled game in an out-of-sample framing)."""
    try:
        sample, g = FRAMINGS.get(framing).sample, GAMES.get(game)
    except RegistryError:
        return OTHER
    if g.kind == "donation":
        return "donation"
    for tag, samples in (("in_sample", {"in": "in_sample", "out": "oos_framings"}), ("doubled", {"in": "oos_games"}),
                         ("rg144_train", {"none": "rg144_train"}), ("rg144_test", {"none": "rg144_test"})):
        if tag in g.tags:
            return samples.get(sample, OTHER)
    return OTHER


def expand_sets(values: Sequence[str], axis: Literal["games", "framings"]) -> list[str]:
    """Replace set names in a list of game (or framing) ids by the sets' games (or framings); other ids pass
    through, order is kept and duplicates dropped."""
    out: list[str] = []
    for v in values:
        out += scenario_set(v)[0 if axis == "games" else 1] if v in SET_NAMES else [v]
    return list(dict.fromkeys(out))
