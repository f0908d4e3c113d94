"""`strategist/reference`: a transparent, principled stand-in for the teacher model where none can run.

Model (all parameters in StrategistParams; payoffs in raw points, so it is scale-aware):

1. Social preference. Weight on the co-player's payoff, from the framing's attributes:
   alpha = altruism + w_warmth*warmth + w_closeness*closeness + w_shared_fate*shared_fate
           + w_public_scrutiny*public_scrutiny - w_competition*competition, clipped to [-0.5, 1].
2. Utility U = own' + alpha' * other. Loss aversion: own payoffs below the safe level (the best payoff
   one can guarantee, max-min) count `loss_aversion` times: own' = ref + loss_aversion * (own - ref).
   Goodwill is not extended to being exploited: in outcomes where the co-player earns more than me a
   positive alpha shrinks to `exploited * alpha` (this keeps p(C) falling as the temptation T rises).
3. Trust prior on the co-player choosing C (action 0):
   tau = trust + trust_bond * mean(warmth, closeness, shared_fate) - trust_rivalry * competition, in [0.02, 0.98].
4. Anticipation (level-k blend): the co-player, with the same preferences, answers tau by a logit
   choice; my belief is q = (1 - depth) * tau + depth * p_co(C).
5. Logit choice: p(a) proportional to exp(rationality * EU(a | q)). Utilities are in points, so
   doubling every payoff doubles the utility gaps and sharpens choices (more D in the Prisoner's
   Dilemma, more C in Prisoner's Delight).
6. Reciprocity (repeated play): with c = the co-player's cooperation, exponentially weighted by
   `memory` (last round weight 1), tau is updated to (prior_weight*tau + sum w*c) / (prior_weight + sum w)
   and alpha += reciprocity * (2 * weighted mean of c - 1).
7. Donation game: U(g) = (m/n - 1 + alpha * (n-1) * m/n) * g - conformity * (g - expected)^2, with
   expected = endowment * tau (others' mean contribution, tau updated from their giving); logit over g.

With the defaults the one-shot p(C) over the 5 in-sample framings x 4 games ranges from about 0.07
(business, Prisoner's Dilemma) to 0.99 (friends, Stag Hunt and Prisoner's Delight), mean about 0.54
(per game: PD 0.16, Snowdrift 0.40, Stag Hunt 0.66, Delight 0.93; doubled payoffs: mean about 0.51);
warm framings cooperate more, and a higher temptation T lowers p(C) in the Prisoner's Dilemma.
The completion is "I choose C." (or "I give N dollars.") and a short paragraph of reasons citing the
real payoffs and the framing; phrasings are picked deterministically from the observation, the action
and the decision's single uniform draw, so the same seed gives the same text.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pydantic import Field

from tomarena.agents.base import Decision, Policy, register_policy, sample_action
from tomarena.agents.llm.prompts import build_messages, messages_json
from tomarena.agents.policy_options import Configurable, NonNegative, Number, PolicyOptions, UnitInterval
from tomarena.envs.games import DonationGame
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import GameError


class StrategistParams(PolicyOptions):
    """Parameters of the reference strategist (see the module docstring for the formulas)."""

    rationality: NonNegative = Field(0.7, description="logit precision per point of utility (0 = uniform)")
    depth: UnitInterval = Field(0.5, description="weight of the anticipated co-player response in the belief "
                                                 "(0 = prior only), in [0, 1]")
    loss_aversion: NonNegative = Field(2.0, description="weight of points below the safe (max-min) payoff")
    exploited: UnitInterval = Field(0.7, description="share of a positive social weight kept where the co-player "
                                                     "earns more, in [0, 1]")
    altruism: Number = Field(-0.05, description="base weight on the co-player's payoff")
    w_warmth: Number = Field(0.3, description="social weight per unit of the framing's warmth")
    w_closeness: Number = Field(0.15, description="social weight per unit of the framing's closeness")
    w_shared_fate: Number = Field(0.2, description="social weight per unit of the framing's shared fate")
    w_public_scrutiny: Number = Field(0.1, description="social weight per unit of the framing's public scrutiny")
    w_competition: Number = Field(0.3, description="social weight removed per unit of the framing's competition")
    trust: Number = Field(0.35, description="base prior that the co-player chooses C")
    trust_bond: Number = Field(0.4, description="trust added per unit of the framing's bond (warmth, closeness, "
                                                "shared fate)")
    trust_rivalry: Number = Field(0.35, description="trust removed per unit of the framing's competition")
    reciprocity: Number = Field(0.4, description="shift of the social weight per unit of the co-player's "
                                                 "(2 * cooperation - 1)")
    memory: UnitInterval = Field(0.5, description="decay of older rounds in the weighted cooperation, in [0, 1]")
    prior_weight: NonNegative = Field(1.0, description="weight of the prior against observed rounds")
    conformity: NonNegative = Field(0.15, description="donation game: cost per squared dollar away from what the "
                                                      "others give")


class _Motivation(PolicyOptions):
    motivation: bool = Field(True, description="write a natural-language motivation with each decision")


class StrategistOptions(StrategistParams, _Motivation):
    """The reference strategist's options: whether it writes motivations (listed first), then every parameter."""


def social_weight(framing: Any, prm: StrategistParams) -> float:
    """alpha: the weight on the co-player's payoff implied by the framing's attributes."""
    a = (prm.altruism + prm.w_warmth * framing.warmth + prm.w_closeness * framing.closeness
         + prm.w_shared_fate * framing.shared_fate + prm.w_public_scrutiny * framing.public_scrutiny
         - prm.w_competition * framing.competition)
    return float(np.clip(a, -0.5, 1.0))


def trust_prior(framing: Any, prm: StrategistParams) -> float:
    """tau: the prior probability that the co-player chooses C (or gives, as a share of the endowment)."""
    bond = (framing.warmth + framing.closeness + framing.shared_fate) / 3
    return float(np.clip(prm.trust + prm.trust_bond * bond - prm.trust_rivalry * framing.competition, 0.02, 0.98))


def utility(own: np.ndarray, other: np.ndarray, alpha: float, loss_aversion: float,
            exploited: float = 0.0) -> np.ndarray:
    """Loss-averse own payoff (reference: the max-min payoff) plus alpha times the other's payoff; where the
    other earns more than me, a positive alpha shrinks to `exploited * alpha` (goodwill does not reward being
    exploited)."""
    ref = own.min(axis=1).max()
    own_adj = np.where(own < ref, ref + loss_aversion * (own - ref), own)
    weight = np.where(other > own, min(alpha, 0.0) + exploited * max(alpha, 0.0), alpha)
    return own_adj + weight * other


def logit(values: np.ndarray, rationality: float) -> np.ndarray:
    """Softmax of rationality * values."""
    z = rationality * (values - values.max())
    e = np.exp(z)
    return e / e.sum()


@dataclass(frozen=True)
class Reading:
    """What the strategist computed for one decision (kept for the motivation text)."""

    probs: tuple[float, ...]
    alpha: float
    belief: float  # expected p(C) of the co-player, or expected contribution in dollars
    coop_seen: tuple[int, int] | None = None  # (C moves, rounds) of the co-player, or None in round 1


class Pull(NamedTuple):
    """A prior pulled toward the co-player's recent choices (see `reciprocity_pull`)."""

    value: float  # (prior_weight * prior + sum w * seen) / (prior_weight + sum w)
    mean: float  # the recency-weighted mean of `seen` (the prior when nothing was seen)
    keep: float  # the prior's share of `value`: prior_weight / (prior_weight + sum w)


def reciprocity_pull(prior: float, seen: Sequence[float] | np.ndarray, memory: float, prior_weight: float) -> Pull:
    """The one reciprocity rule of the strategist and the study replays: the co-player's choices `seen` (oldest first,
    1 = C or a share given) weighted memory**age (last round 1) pull `prior` toward their weighted mean."""
    seen = np.asarray(seen, dtype=float)
    if len(seen) == 0:
        return Pull(float(prior), float(prior), 1.0)
    w = memory ** np.arange(len(seen) - 1, -1, -1, dtype=float)
    total = w @ seen
    value = float((prior_weight * prior + total) / (prior_weight + w.sum()))
    return Pull(value, float(total / w.sum()), float(prior_weight / (prior_weight + w.sum())))


def _update(tau: float, alpha: float, seen: np.ndarray, prm: StrategistParams) -> tuple[float, float]:
    """Trust and social weight after observing the co-player's cooperation shares `seen` (oldest first)."""
    if len(seen) == 0:
        return tau, alpha
    pull = reciprocity_pull(tau, seen, prm.memory, prm.prior_weight)
    return pull.value, float(np.clip(alpha + prm.reciprocity * (2 * pull.mean - 1), -0.5, 1.0))


def read_2x2(obs: Observation, prm: StrategistParams) -> Reading:
    """Choice probabilities for a two-player 2x2 game."""
    game = obs.game
    r, c = game.row_matrix, game.col_matrix
    own, other = (r, c) if obs.player == 0 else (c.T, r.T)
    seen = np.array([1.0 - a for a in obs.other_actions])
    tau, alpha = _update(trust_prior(obs.framing, prm), social_weight(obs.framing, prm), seen, prm)
    prior = np.array([tau, 1 - tau])
    u_co = utility(other.T, own.T, alpha, prm.loss_aversion, prm.exploited)
    q = (1 - prm.depth) * tau + prm.depth * float(logit(u_co @ prior, prm.rationality)[0])
    u_me = utility(own, other, alpha, prm.loss_aversion, prm.exploited)
    probs = logit(u_me @ np.array([q, 1 - q]), prm.rationality)
    coop = (int(seen.sum()), len(seen)) if len(seen) else None
    return Reading(tuple(float(x) for x in probs), alpha, q, coop)


def read_donation(obs: Observation, prm: StrategistParams) -> Reading:
    """Contribution probabilities for the donation (public-goods) game."""
    game: DonationGame = obs.game  # type: ignore[assignment]
    n, m, e = game.n_players, game.multiplier, game.endowment
    seen = np.array([sum(o) / len(o) / e for o in obs.others_actions])
    tau, alpha = _update(trust_prior(obs.framing, prm), social_weight(obs.framing, prm), seen, prm)
    expected = e * tau
    g = np.arange(e + 1, dtype=float)
    slope = m / n - 1 + alpha * (n - 1) * m / n
    probs = logit(slope * g - prm.conformity * (g - expected) ** 2, prm.rationality)
    return Reading(tuple(float(x) for x in probs), alpha, expected, None)


def _fmt(x: float) -> str:
    return f"{x:g}"


_PERSON = ((r"\b(for|to|with) you\b", r"\1 me"), (r"\byourself\b", "myself"), (r"\byours\b", "mine"),
           (r"\byour\b", "my"), (r"\byou\b", "I"))


def first_person(text: str) -> str:
    """Turn the framing's second-person wording ('your company', 'as you can') into the speaker's own."""
    for pattern, repl in _PERSON:
        text = re.sub(pattern, repl, text)
    return text


def _pick(options: list[str], h: int, slot: int) -> str:
    return options[(h >> (5 * slot)) % len(options)]


def _social_sentence(alpha: float, co: str, h: int) -> str:
    if alpha >= 0.25:
        return _pick([f"I care about how {co} fares, not only about my own points.",
                      f"The relationship with {co} matters to me, so their points count for me as well."], h, 3)
    if alpha >= 0:
        return _pick([f"I give some weight to what {co} ends up with, though my own result comes first.",
                      f"Mostly I look at my own points, with a little regard for {co}'s."], h, 3)
    return _pick([f"The relationship with {co} is a rivalry, so I do not want to end up behind them.",
                  f"This is a competitive setting, and losing ground to {co} would cost me."], h, 3)


def _belief_sentence(rd: Reading, co: str, obs: Observation, h: int) -> str:
    pct = round(100 * rd.belief)
    guess = _pick([f"I expect {co} to choose C with a probability of about {pct}%.",
                   f"My guess is that {co} goes for C roughly {pct}% of the time.",
                   f"I put the chance that {co} picks C at around {pct}%."], h, 2)
    if rd.coop_seen is None:
        return guess
    k, n = rd.coop_seen
    last = obs.game.action_labels[obs.other_actions[-1]]
    return f"So far {co} chose C in {k} of {n} rounds; last round they chose {last}. {guess}"


def _payoff_sentence(obs: Observation, action: int, co: str) -> str:
    g = obs.game
    own = g.row_matrix if obs.player == 0 else g.col_matrix.T
    oth = g.col_matrix if obs.player == 0 else g.row_matrix.T
    cc, cd, dc, dd = (_fmt(own[i, j]) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    c_dom, d_dom = bool(np.all(own[0] >= own[1])), bool(np.all(own[1] >= own[0]))
    if c_dom and action == 0:
        return (f"C is the better option whatever {co} does: it gives me {cc} points instead of {dc} if they "
                f"choose C, and {cd} instead of {dd} if they choose D.")
    if d_dom and action == 1:
        return (f"D pays more whatever {co} does: {dc} points instead of {cc} if they choose C, and {dd} instead "
                f"of {cd} if they choose D.")
    if d_dom:
        return (f"On points alone D would pay me more ({dc} instead of {cc}, or {dd} instead of {cd}), but if we "
                f"both choose C I earn {cc} and {co} earns {_fmt(oth[0, 0])}, against only {dd} and "
                f"{_fmt(oth[1, 1])} if we both choose D.")
    if c_dom:
        return (f"C would give me {cc} or {cd} points against {dc} or {dd} for D, yet I do not trust the "
                f"situation enough and keep to D.")
    return (f"If {co} chooses C, C gives me {cc} points and D gives me {dc}; if they choose D, C gives me "
            f"{cd} and D gives me {dd}. The best answer depends on what they do.")


def _closing(action: int, h: int) -> str:
    if action == 0:
        return _pick(["Taking all this together, C is my choice.", "That is why I go with C.",
                      "On balance C fits my goal best."], h, 4)
    return _pick(["Taking all this together, D is my choice.", "That is why I go with D.",
                  "On balance D protects my position best."], h, 4)


def _text_hash(obs: Observation, action: int, u: float) -> int:
    key = f"{obs.framing.id}|{obs.game.id}|{obs.player}|{obs.round}|{obs.actions}|{action}|{int(u * 2**30)}"
    return zlib.crc32(key.encode())


def motivation_2x2(obs: Observation, action: int, rd: Reading, u: float) -> str:
    """'I choose X.' and a paragraph of reasons citing the payoffs, the goal, the belief and the relationship."""
    fr, h = obs.framing, _text_hash(obs, action, u)
    co, goal = first_person(fr.co_player), first_person(fr.goal)
    opening = _pick([f"My goal here is to {goal}, and {co} faces the same choice at the same time.",
                     f"What I want is to {goal}; {co} decides at the same moment, without talking to me.",
                     f"I weigh this with one aim in mind: to {goal}."], h, 1)
    parts = [opening, _payoff_sentence(obs, action, co), _belief_sentence(rd, co, obs, h),
             _social_sentence(rd.alpha, co, h), _closing(action, h)]
    return f"I choose {obs.game.action_labels[action]}. " + " ".join(parts)


def motivation_donation(obs: Observation, give: int, rd: Reading, u: float) -> str:
    """'I give N dollars.' and a paragraph of reasons citing the fund's rules and the others' giving."""
    g: DonationGame = obs.game  # type: ignore[assignment]
    fr, h = obs.framing, _text_hash(obs, give, u)
    back = _fmt(g.multiplier / g.n_players)
    rules = (f"Each of the {g.endowment} dollars I hold that goes into the fund becomes {_fmt(g.multiplier)} dollars "
             f"shared by all {g.n_players} of us, so it brings me back only {back} while the group gains more.")
    if obs.actions:
        last = ", ".join(str(x) for x in obs.others_actions[-1])
        seen = f"Last round the others gave {last} dollars. "
    else:
        seen = ""
    expect = _pick([f"I expect the others to give about {_fmt(round(rd.belief, 1))} dollars each.",
                    f"My guess is that the others put in around {_fmt(round(rd.belief, 1))} dollars each."], h, 2)
    goal = first_person(fr.goal)
    opening = _pick([f"My goal is to {goal}.", f"I keep one aim in mind: to {goal}."], h, 1)
    closing = _pick(["Giving this amount balances my own interest with the common fund.",
                     "This amount is what I can stand behind."], h, 4)
    parts = [opening, rules, seen + expect, _social_sentence(rd.alpha, first_person(fr.co_player), h), closing]
    return f"I give {give} dollars. " + " ".join(parts)


class _Drawn:
    """A uniform already drawn, in the shape sample_action reads (its one `random()` call)."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        """The pre-drawn uniform."""
        return self.u


class ReferenceStrategist(Configurable, Policy):
    """Reference strategist: social preferences from the framing, level-k anticipation, logit choice,
    reciprocity, and a natural-language motivation (source 'strategist', exact probabilities)."""

    id = "strategist/reference"
    game_kinds = ("matrix", "donation")
    Options = StrategistOptions
    options: StrategistOptions

    @property
    def params(self) -> StrategistParams:
        """The model's parameters (the options, which hold them all)."""
        return self.options

    @property
    def protocol(self) -> str:
        """'motivation' when it writes reasons, else 'letter'."""
        return "motivation" if self.options.motivation else "letter"

    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Compute the choice probabilities, draw once, and write the completion."""
        game = obs.game
        donation = game.kind == "donation"
        if not donation and game.kind != "matrix_2x2":
            raise GameError(f"{self.id} plays 2x2 games and the donation game; got game {game.id!r}")
        rd = read_donation(obs, self.params) if donation else read_2x2(obs, self.params)
        u = float(rng.random())
        action = sample_action(rd.probs, _Drawn(u))  # type: ignore[arg-type]
        if self.options.motivation:
            text = motivation_donation(obs, action, rd, u) if donation else motivation_2x2(obs, action, rd, u)
        else:
            text = str(action) if donation else game.action_labels[action]
        prompt = messages_json(build_messages(obs, self.protocol))
        return Decision(action, rd.probs, "strategist", prompt=prompt, completion=text, parse_status="ok",
                        protocol=self.protocol), state

    def describe(self) -> dict[str, Any]:
        """Id, whether it writes motivations, and every parameter."""
        return {"id": self.id, **self.options.model_dump()}


register_policy("strategist/reference", ReferenceStrategist,
                "Transparent teacher stand-in: social preferences, level-k, logit choice, motivations", "strategist")
