"""The study's facts in every rendered prompt: one-shot play, simultaneous unseen choices, no talking, the
relationship (neutral where the study's is), the goal in points and who the co-player is."""

from __future__ import annotations

import itertools

import pytest

from tomarena.agents.llm.prompts import ONE_SHOT, TEMPLATES, build_messages
from tomarena.envs import Observation, get_framing, get_game, parallel_env
from tomarena.envs.framings import framings_by_sample

FRAMINGS = framings_by_sample("in") + framings_by_sample("out")
BASE_GAMES = ("prisoners_dilemma", "snowdrift", "stag_hunt", "prisoners_delight")
GAMES = BASE_GAMES + tuple(f"{g}_doubled" for g in BASE_GAMES)
PROTOCOLS = ("letter", "motivation")
RELATIONSHIP = {"ir": "Relations between the two nations are neutral.",
                "business": "Relations between the two companies are neutral.",
                "sports": "Your relationship with the other athlete is neutral.",
                "ventcap": "Your relationship with the other investor is neutral."}
NEUTRAL = set(RELATIONSHIP)
SIMULTANEOUS = "each choose at the same time, without talking and without seeing each other's choice, between C ("
# words in the one-shot letter prompt (system + user) for the prisoner's dilemma before the facts were added
OLD_WORDS = {"business": 181, "environment": 208, "friendsharing": 192, "ir": 187, "team": 177, "roomsharing": 183,
             "sports": 176, "ventcap": 174}
# what each context must say (our wording of the study's contexts), looked for in the whole prompt
CONTEXT = {
    "ir": ("delegate of another nation", "economic and geopolitical advantage"),
    "business": ("chief executive of another company", "profit for your company"),
    "environment": ("two companies that set the pace in your industry", "environmental policy",
                    "smaller firms will copy", "company's interests while protecting its public image"),
    "friendsharing": ("a friend", "two codes of conduct", "friendship in harmony", "personal values",
                      "your own subjective sense"),
    "team": ("colleague you hardly know", "one of two projects", "chances of promotion"),
    "sports": ("individual sport", "another athlete", "exchange training methods", "athletic performance"),
    "roomsharing": ("share a flat with a roommate", "house rules", "the living situation you share"),
    "ventcap": ("investor meeting another investor", "news about the market", "return on your investments"),
}
NOT_SAID = {"friendsharing": ("from now on",), "roomsharing": ("for you", "as good as possible")}


def _obs(game: str, framing: str, player: int = 0, horizon: int | None = 1, history: tuple = ()) -> Observation:
    g = get_game(game)
    return Observation(g, get_framing(framing), player, len(history), horizon, tuple(history),
                       tuple(g.payoff(a) for a in history))


def _render(obs: Observation, protocol: str) -> tuple[str, str]:
    system, user = build_messages(obs, protocol)
    assert (system["role"], user["role"]) == ("system", "user")
    return system["content"], user["content"]


def test_the_framings_cover_the_study_contexts() -> None:
    assert FRAMINGS == ["business", "environment", "friendsharing", "ir", "team", "roomsharing", "sports", "ventcap"]
    assert set(CONTEXT) == set(FRAMINGS) == set(OLD_WORDS)
    assert {f for f in FRAMINGS if get_framing(f).relationship} == NEUTRAL
    assert all("points" in get_framing(f).goal for f in FRAMINGS)


@pytest.mark.parametrize(("framing", "game", "protocol", "player"),
                         list(itertools.product(FRAMINGS, GAMES, PROTOCOLS, (0, 1))))
def test_one_shot_prompt_states_every_fact(framing: str, game: str, protocol: str, player: int) -> None:
    fr, g = get_framing(framing), get_game(game)
    system, user = _render(_obs(game, framing, player), protocol)
    # who the player is and the relationship: neutral exactly where the study's is
    assert system == " ".join(["You are taking part in the scenario described below.", fr.role,
                               *([RELATIONSHIP[framing]] if framing in RELATIONSHIP else [])])
    assert ("neutral" in system) == (framing in NEUTRAL)
    paragraphs = user.split("\n\n")
    assert len(paragraphs) == 3
    lines = paragraphs[0].split("\n")
    # who the co-player is; simultaneous, unseen choices without talking; the goal in points
    assert lines[0] == (f"You and {fr.co_player} (the co-player) {SIMULTANEOUS}{fr.option_c}) and D ({fr.option_d}). "
                        f"Your goal is to {fr.goal}.")
    assert "points" in fr.goal
    # the payoffs in points from this seat, the co-player by that name, and the nudge to think about them
    own = g.row_matrix if player == 0 else g.col_matrix.T
    other = g.col_matrix if player == 0 else g.row_matrix.T
    assert lines[1:5] == [f"If you choose {a} and the co-player chooses {b}, you earn {own[i, j]:g} points and the "
                          f"co-player earns {other[i, j]:g}." for (i, a), (j, b) in itertools.product(enumerate("CD"),
                                                                                                        repeat=2)]
    assert lines[5:] == ["Think about what the co-player is likely to choose before you decide."]
    # one meeting only, said once, and nothing about repeating
    assert paragraphs[1] == ONE_SHOT == "This encounter happens only once; no further rounds follow."
    assert "repeat" not in user and "Round " not in user
    assert paragraphs[2] == TEMPLATES[protocol].instruction_2x2.format(a="C", b="D")
    assert "C or D" in paragraphs[2]
    text = (system + " " + user).lower()
    assert "cooperat" not in text and "defect" not in text
    for needle in CONTEXT[framing]:
        assert needle in system + " " + user
    for needle in NOT_SAID.get(framing, ()):
        assert needle not in system + " " + user


@pytest.mark.parametrize("framing", FRAMINGS)
def test_one_shot_letter_prompt_stays_short(framing: str) -> None:
    system, user = _render(_obs("prisoners_dilemma", framing), "letter")
    words = len(f"{system}\n{user}".split())
    assert OLD_WORDS[framing] < words <= 1.15 * OLD_WORDS[framing]


@pytest.mark.parametrize(("framing", "protocol"), list(itertools.product(FRAMINGS, PROTOCOLS)))
def test_repeated_prompts_never_say_one_meeting_only(framing: str, protocol: str) -> None:
    fixed0 = _render(_obs("snowdrift", framing, horizon=5), protocol)[1]
    fixed2 = _render(_obs("snowdrift", framing, horizon=5, history=((0, 1), (1, 1))), protocol)[1]
    open_ended = _render(_obs("snowdrift", framing, horizon=None), protocol)[1]
    for user in (fixed0, fixed2, open_ended):
        assert ONE_SHOT not in user and "only once" not in user
        assert SIMULTANEOUS in user and "(the co-player)" in user
    assert fixed0.split("\n\n")[1] == "This meeting repeats for 5 rounds in all."
    assert fixed2.split("\n\n")[1] == (
        "This meeting repeats for 5 rounds in all.\n"
        "Round 1: you chose C, the co-player chose D; you earned 3 points.\n"
        "Round 2: you chose D, the co-player chose D; you earned 2 points.\n"
        "Your points so far: 5. This is round 3.")
    assert open_ended.split("\n\n")[1] == ("This meeting may repeat; after each round there may or may not be "
                                           "another one.")


@pytest.mark.parametrize(("mode", "head"), [({"rounds": 1}, ONE_SHOT),
                                            ({"rounds": 3}, "This meeting repeats for 3 rounds in all."),
                                            ({"continuation": 0.9}, "This meeting may repeat;")])
def test_env_observations_render_the_right_horizon(mode: dict, head: str) -> None:
    e = parallel_env(game="stag_hunt_doubled", framing="sports", **mode)
    _, infos = e.reset(seed=0)
    for agent in e.possible_agents:
        user = build_messages(infos[agent]["observation"], "letter")[1]["content"]
        assert user.split("\n\n")[1].startswith(head)
        assert ("only once" in user) == (mode == {"rounds": 1})


def test_one_shot_donation_states_the_facts() -> None:
    system, user = _render(_obs("donation", "ventcap"), "letter")
    assert system.endswith("Your relationship with the other investor is neutral.")
    assert user.startswith("You are one of 4 people; the others (the co-players) are each like the other investor. "
                           "Everyone receives 10 dollars and decides, at the same time, without seeing what the "
                           "others give and without talking, how many whole dollars (0 to 10)")
    assert user.split("\n\n")[1] == ONE_SHOT
    assert "Your goal is to earn the highest return on your investments, measured in points." in user


@pytest.mark.parametrize("protocol", ["letter", "motivation"])
def test_a_letter_labelled_game_is_offered_its_own_letters(protocol: str) -> None:
    """rg144/67 (the Robinson-Goforth Prisoner's Dilemma) is labelled A/B: the prompt names A and B, never C or D."""
    g = get_game("rg144/67")
    assert tuple(g.action_labels) == ("A", "B")
    obs = Observation(g, get_framing("none"), 0, 2, 10, ((0, 1), (1, 1)), ((0.0, 0.0), (1.0, 1.0)))
    _, user = (m["content"] for m in build_messages(obs, protocol))
    first, *_ = user.split("\n")
    assert first.endswith("between A and B. Your goal is to earn as many points as you can.")
    assert "Round 1: you chose A, the co-player chose B;" in user
    assert "Round 2: you chose B, the co-player chose B;" in user
    assert "A or B" in user.split("\n\n")[-1]
    assert " C " not in user and " D " not in user and "C or D" not in user
