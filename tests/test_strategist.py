"""The reference strategist: documented formulas, directions, motivations, options."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from tomarena.agents import resolve_policy
from tomarena.agents.llm.prompts import build_messages, messages_json
from tomarena.agents.strategies.strategist import (
    Pull,
    StrategistParams,
    first_person,
    reciprocity_pull,
    social_weight,
    trust_prior,
    utility,
)
from tomarena.agents.strategies.study import reciprocity
from tomarena.envs import Observation, get_framing, get_game, prisoners_dilemma, symmetric_game
from tomarena.envs.framings import framings_by_sample
from tomarena.errors import ConfigError

STUDY_GAMES = ("prisoners_dilemma", "snowdrift", "stag_hunt", "prisoners_delight")


def decide(game, framing: str = "none", spec: str = "strategist/reference", seed: int = 0, player: int = 0,
           history: tuple = (), horizon: int | None = 1):
    g = get_game(game)
    obs = Observation(g, get_framing(framing), player, len(history), horizon, tuple(history),
                      tuple(g.payoff(a) for a in history))
    return resolve_policy(spec).act(obs, None, np.random.default_rng(seed))[0], obs


def p_c(game, framing: str = "none", **kw) -> float:
    return decide(game, framing, **kw)[0].probs[0]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_documented_formula_by_hand_for_the_bare_prisoners_dilemma():
    # framing "none": warmth = closeness = shared_fate = public_scrutiny = 0, competition = 0.5
    alpha, tau = -0.05 - 0.3 * 0.5, 0.35 - 0.35 * 0.5
    assert social_weight(get_framing("none"), StrategistParams()) == pytest.approx(alpha)
    assert trust_prior(get_framing("none"), StrategistParams()) == pytest.approx(tau)
    # R,S,T,P = 5,2,10,3; safe payoff 3, so S=2 counts as 3 + 2*(2-3) = 1; U = own' + alpha*other
    # (alpha < 0 here, so being behind in (C,D) keeps the full alpha)
    u = {"CC": 5 + 5 * alpha, "CD": 1 + 10 * alpha, "DC": 10 + 2 * alpha, "DD": 3 + 3 * alpha}
    gap = lambda q: q * (u["CC"] - u["DC"]) + (1 - q) * (u["CD"] - u["DD"])
    q = 0.5 * tau + 0.5 * sig(0.7 * gap(tau))
    assert p_c("prisoners_dilemma") == pytest.approx(sig(0.7 * gap(q)), abs=1e-12)


def test_goodwill_shrinks_where_the_co_player_is_ahead():
    # friends: alpha = -0.05 + 0.3*0.9 + 0.15*0.9 + 0.2*0.7 + 0.1*0.2 - 0.3*0.1 = 0.485
    alpha = social_weight(get_framing("friendsharing"), StrategistParams())
    assert alpha == pytest.approx(0.485)
    own, other = np.array([[5.0, 2.0], [10.0, 3.0]]), np.array([[5.0, 10.0], [2.0, 3.0]])
    u = utility(own, other, alpha, 2.0, 0.7)
    assert u.ravel().tolist() == pytest.approx([5 + 5 * alpha, 1 + 0.7 * alpha * 10, 10 + 2 * alpha, 3 + 3 * alpha])


def test_in_sample_scenarios_span_the_range_with_the_expected_pattern():
    table = np.array([[p_c(g, f) for g in STUDY_GAMES] for f in framings_by_sample("in")])
    assert table.min() < 0.1 and table.max() > 0.95
    assert 0.45 < table.mean() < 0.6
    pd, sd, sh, delight = table.mean(axis=0)
    assert pd < sd < sh < delight and delight > 0.9 and pd < 0.25


@pytest.mark.parametrize("game", STUDY_GAMES)
def test_warmer_framing_cooperates_more(game):
    assert p_c(game, "friendsharing") > p_c(game, "team") > p_c(game, "business")


def test_higher_temptation_lowers_cooperation_in_the_prisoners_dilemma():
    for framing in ("business", "friendsharing"):
        ps = [p_c(prisoners_dilemma(T=t), framing) for t in (6, 8, 10, 14, 20)]
        assert all(a > b for a, b in itertools.pairwise(ps)), ps


def test_doubled_payoffs_sharpen_choices():
    assert p_c("prisoners_dilemma_doubled", "business") < p_c("prisoners_dilemma", "business")
    assert p_c("prisoners_delight_doubled", "business") > p_c("prisoners_delight", "business")
    assert p_c("prisoners_dilemma", spec="strategist/reference?rationality=0") == pytest.approx(0.5)


def test_reciprocity_in_repeated_play():
    nice, mean = ((0, 0), (0, 0), (0, 0)), ((1, 1), (1, 1), (1, 1))
    p_nice = p_c("prisoners_dilemma", "team", history=nice, horizon=10)
    p_mean = p_c("prisoners_dilemma", "team", history=mean, horizon=10)
    assert p_nice > p_c("prisoners_dilemma", "team") > p_mean
    d, _ = decide("prisoners_dilemma", "team", history=((1, 0), (0, 1)), horizon=10)
    assert "chose C in 1 of 2 rounds; last round they chose D" in d.completion


def test_motivation_cites_real_numbers_and_framing():
    game = symmetric_game(7, 1, 11, 4, id="odd_pd", kind="prisoners_dilemma")
    for seed in range(6):
        d, obs = decide(game, "business", seed=seed)
        letter = "CD"[d.action]
        assert d.completion.startswith(f"I choose {letter}. ")
        numbers = set(re.findall(r"\d+", d.completion))
        assert {"7", "1", "11", "4"} <= numbers  # R, S, T, P of this scenario
        assert "the other company's chief executive" in d.completion and "profit for my company" in d.completion
        assert (d.source, d.parse_status, d.protocol) == ("strategist", "ok", "motivation")
        assert d.prompt == messages_json(build_messages(obs, "motivation"))


def test_same_seed_same_text_and_several_phrasings():
    texts = [decide("snowdrift", "ir", seed=s)[0].completion for s in range(12)]
    assert texts == [decide("snowdrift", "ir", seed=s)[0].completion for s in range(12)]
    assert len(set(texts)) >= 4


def test_donation_rule():
    mean = lambda d: float(np.dot(d.probs, np.arange(11)))
    warm, cold = decide("donation", "friendsharing")[0], decide("donation", "business")[0]
    assert mean(warm) > 6 and mean(cold) < 2
    assert warm.completion.startswith(f"I give {warm.action} dollars. ")
    assert "becomes 2 dollars shared by all 4 of us" in warm.completion
    generous = decide("donation", "team", history=((5, 10, 10, 10),), horizon=3)[0]
    stingy = decide("donation", "team", history=((5, 0, 0, 0),), horizon=3)[0]
    assert mean(generous) > mean(decide("donation", "team")[0]) > mean(stingy)
    assert "Last round the others gave 10, 10, 10 dollars." in generous.completion


def test_letter_only_option():
    d, obs = decide("stag_hunt", "team", spec="strategist/reference?motivation=false")
    assert d.completion == "CD"[d.action] and d.protocol == "letter"
    assert d.prompt == messages_json(build_messages(obs, "letter"))
    d, _ = decide("donation", "team", spec="strategist/reference?motivation=false")
    assert d.completion == str(d.action)


def test_options_and_bad_values():
    pol = resolve_policy("strategist/reference?rationality=1.5&w_warmth=0.5&motivation=0")
    assert pol.describe()["rationality"] == 1.5 and pol.describe()["w_warmth"] == 0.5 and not pol.motivation
    for spec, msg in [("strategist/reference?depth=2", "depth must be in \\[0, 1\\]"),
                      ("strategist/reference?rationality=-1", "rationality must be >= 0"),
                      ("strategist/reference?rationality=abc", "not a valid float"),
                      ("strategist/reference?temperature=1", "unknown option 'temperature'.*rationality")]:
        with pytest.raises(ConfigError, match=msg):
            resolve_policy(spec)


def test_first_person():
    expected = "make as much profit for my company as I can"
    assert first_person("make as much profit for your company as you can") == expected
    assert first_person("make it as good as possible for you") == "make it as good as possible for me"


def test_one_reciprocity_rule_for_the_strategist_and_the_study_replays():
    # seen C-shares 0 then 1 (oldest first), memory 0.5: weights 0.5 and 1; prior weight 1
    pull = reciprocity_pull(0.2, [0.0, 1.0], 0.5, 1.0)
    assert pull == (pytest.approx((1 * 0.2 + 1.0) / 2.5), pytest.approx(1 / 1.5), pytest.approx(1 / 2.5))
    assert reciprocity_pull(0.3, [], 0.5, 1.0) == Pull(0.3, 0.3, 1.0)  # nothing seen: the prior, kept whole
    assert reciprocity(0.2, np.array([0.0, 1.0]), 0.5, 1.0) == pull.value  # the study's P(C) is the same rule
    pol = resolve_policy("strategist/reference?motivation=false")
    obs = Observation(get_game("prisoners_dilemma"), get_framing("none"), 0, 2, 5, ((0, 1), (0, 0)),
                      ((2.0, 10.0), (5.0, 5.0)))
    tau = trust_prior(get_framing("none"), StrategistParams())
    same = reciprocity_pull(tau, [0.0, 1.0], 0.5, 1.0)
    assert pol.act(obs, None, np.random.default_rng(0))[0].probs == pytest.approx(
        _probs_with(obs, same.value, social_weight(get_framing("none"), StrategistParams()) + 0.4 * (
            2 * same.mean - 1)))


def _probs_with(obs, tau: float, alpha: float) -> tuple[float, ...]:
    """The strategist's 2x2 probabilities for a given trust and social weight (its formulas, written out)."""
    prm = StrategistParams()
    own, other = obs.game.row_matrix, obs.game.col_matrix
    alpha = float(np.clip(alpha, -0.5, 1.0))
    u_co = utility(other.T, own.T, alpha, prm.loss_aversion, prm.exploited)
    z = prm.rationality * (u_co @ np.array([tau, 1 - tau]))
    p_co = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    q = (1 - prm.depth) * tau + prm.depth * float(p_co[0])
    z = prm.rationality * (utility(own, other, alpha, prm.loss_aversion, prm.exploited) @ np.array([q, 1 - q]))
    return tuple(np.exp(z - z.max()) / np.exp(z - z.max()).sum())
