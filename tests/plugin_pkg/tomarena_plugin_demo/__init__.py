"""A tiny third-party plugin: two policies reach tomarena through the `tomarena.policies` entry-point group,
one as a Policy class (the entry point's name is its id) and one through a register() function."""

from __future__ import annotations

from typing import Any

import numpy as np

from tomarena.agents.base import Decision, Policy, register_policy, sample_action


class Contrarian(Policy):
    """C first, then the opposite of the co-player's last move."""

    id = "plugin/contrarian"

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Play against the co-player's last move."""
        p_c = 1.0 if not obs.actions else float(obs.other_actions[-1])
        probs = (p_c, 1.0 - p_c)
        return Decision(sample_action(probs, rng), probs, "rule"), state


class Stubborn(Policy):
    """Plays whatever it played in round 1 (C with probability `p` there) for the rest of the match."""

    id = "plugin/stubborn"

    def __init__(self, p: float = 1.0) -> None:
        self.p = p

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Repeat the first move."""
        p_c = self.p if not obs.actions else 1.0 - float(obs.own_actions[0])
        probs = (p_c, 1.0 - p_c)
        return Decision(sample_action(probs, rng), probs, "rule"), state


def register() -> None:
    """Entry-point hook: add `plugin/stubborn` to tomarena's policy registry."""
    register_policy("plugin/stubborn", Stubborn, "Repeats its first move", "plugin")
