"""Prompt templates (our own wording) for the study's protocols, as data with ids.

`letter`: answer with one letter only. `motivation`: the letter, then the reasons. Every prompt states the
study's facts: who the co-player is and (where the framing declares it) the relationship, that choices are
simultaneous, unseen and made without talking, the goal in points, and that play is one-shot (horizon 1),
a fixed number of rounds, or may repeat; repeated games add the history of earlier rounds.
Actions are never called "cooperate" or "defect".
A rendered prompt is a list of chat messages: [{"role": "system", ...}, {"role": "user", ...}].
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tomarena.envs.games import DonationGame, Game
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import ConfigError


@dataclass(frozen=True)
class PromptTemplate:
    """A protocol's wording: the system preamble and the closing instruction."""

    id: str
    system: str
    instruction_2x2: str
    instruction_donation: str


TEMPLATES: dict[str, PromptTemplate] = {
    "letter": PromptTemplate(
        id="letter",
        system="You are taking part in the scenario described below. {role}",
        instruction_2x2="Reply with exactly one letter, {a} or {b}, and nothing else.",
        instruction_donation="Reply with exactly one whole number from 0 to {endowment} and nothing else.",
    ),
    "motivation": PromptTemplate(
        id="motivation",
        system="You are taking part in the scenario described below. {role}",
        instruction_2x2=(
            "Start your reply with the letter of your choice, {a} or {b}, in the form \"I choose {a}.\" or "
            "\"I choose {b}.\", then explain in a short paragraph why you made that choice."
        ),
        instruction_donation=(
            "Start your reply with the amount you give, in the form \"I give N dollars.\", then explain in a "
            "short paragraph why you chose that amount."
        ),
    ),
}


def get_template(protocol: str) -> PromptTemplate:
    """The template for `protocol`, or a ConfigError listing the allowed ones."""
    try:
        return TEMPLATES[protocol]
    except KeyError as exc:
        raise ConfigError(f"unknown protocol {protocol!r}; allowed: {', '.join(TEMPLATES)}") from exc


def _fmt(x: float) -> str:
    return f"{x:g}"


def describe_2x2(game: Game, obs: Observation) -> str:
    """The payoffs in prose, from the point of view of the observing player."""
    fr = obs.framing
    own = game.row_matrix if obs.player == 0 else game.col_matrix.T
    other = game.col_matrix if obs.player == 0 else game.row_matrix.T
    labels = game.action_labels
    # a framing describes the cooperative (C) and defecting (D) options; other games' options are just their letters
    options = (f"C ({fr.option_c}) and D ({fr.option_d})" if tuple(labels) == ("C", "D")
               else f"{labels[0]} and {labels[1]}")
    lines = [
        f"You and {fr.co_player} (the co-player) each choose at the same time, without talking and without seeing "
        f"each other's choice, between {options}. Your goal is to {fr.goal}.",
    ]
    for i in range(game.n_actions):
        for j in range(game.n_actions):
            lines.append(
                f"If you choose {labels[i]} and the co-player chooses {labels[j]}, you earn {_fmt(own[i, j])} points "
                f"and the co-player earns {_fmt(other[i, j])}."
            )
    lines.append("Think about what the co-player is likely to choose before you decide.")
    return "\n".join(lines)


def describe_donation(game: DonationGame, obs: Observation) -> str:
    """The rules of the public-goods donation game in prose."""
    fr = obs.framing
    return (
        f"You are one of {game.n_players} people; the others (the co-players) are each like {fr.co_player}. "
        f"Everyone receives {game.endowment} dollars and decides, at the same time, without seeing what the "
        f"others give and without talking, how many whole dollars "
        f"(0 to {game.endowment}) to give to a shared fund. The fund is multiplied by {_fmt(game.multiplier)} "
        f"and split equally among all {game.n_players}, whatever each gave. You keep what you do not give. "
        f"Your goal is to {fr.goal}."
    )


ONE_SHOT = "This encounter happens only once; no further rounds follow."


def describe_history(obs: Observation) -> str:
    """How often play repeats (once only at horizon 1), then any earlier rounds and the points so far."""
    head = (
        ONE_SHOT if obs.horizon == 1
        else f"This meeting repeats for {obs.horizon} rounds in all." if obs.horizon is not None
        else "This meeting may repeat; after each round there may or may not be another one."
    )
    if not obs.actions:
        return head
    labels = obs.game.action_labels
    rows = []
    for k, (acts, pays) in enumerate(zip(obs.actions, obs.payoffs)):
        others = ", ".join(labels[a] for i, a in enumerate(acts) if i != obs.player)
        rows.append(f"Round {k + 1}: you chose {labels[acts[obs.player]]}, the co-player chose {others}; "
                    f"you earned {_fmt(pays[obs.player])} points.")
    rows.append(f"Your points so far: {_fmt(obs.own_total)}. This is round {obs.round + 1}.")
    return "\n".join(([head] if head else []) + rows)


def build_messages(obs: Observation, protocol: str = "letter") -> list[dict[str, str]]:
    """Render the chat messages (system + user) for one decision under `protocol`."""
    t = get_template(protocol)
    game = obs.game
    if game.kind == "donation":
        body, instr = describe_donation(game, obs), t.instruction_donation.format(endowment=game.endowment)
    else:
        a, b = game.action_labels
        body, instr = describe_2x2(game, obs), t.instruction_2x2.format(a=a, b=b)
    user = "\n\n".join((body, describe_history(obs), instr))
    role = " ".join(x for x in (obs.framing.role, obs.framing.relationship) if x)
    return [{"role": "system", "content": t.system.format(role=role)}, {"role": "user", "content": user}]


def messages_json(messages: list[dict[str, str]]) -> str:
    """The canonical JSON form stored in Decision.prompt and the trace column `prompt`."""
    return json.dumps(messages, ensure_ascii=False)
