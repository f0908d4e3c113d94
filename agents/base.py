"""The policy contract: `initial_state()`, `act(observation, state, rng) -> (Decision, state)`, and a batched form.

Policies never see their opponent, the env or a global RNG: only an Observation, their own state and
the rng they are handed (one stream per match and player, so batching never changes results).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tomarena.envs.social_dilemma import Observation
from tomarena.errors import PolicyError
from tomarena.registry import Registry

if TYPE_CHECKING:
    from pydantic import BaseModel

SOURCES = ("rule", "strategist", "llm", "fallback", "replay", "replay-model")
PARSE_STATUSES = ("ok", "scored", "default", "failed", "fallback")


@dataclass(frozen=True)
class Decision:
    """One choice: the action, the probability of each action when known, where it came from, and
    for LLMs the prompt, completion, parse status and token counts (None when not applicable)."""

    action: int
    probs: tuple[float, ...] | None = None
    source: str = "rule"
    prompt: str | None = None
    completion: str | None = None
    parse_status: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    other_mass: float | None = None  # LLM scoring: probability that fell on neither label
    error: str | None = None  # backend failure text after retries, when any
    protocol: str | None = None  # prompt protocol id (agents.llm.prompts.TEMPLATES) for LLM-style policies

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise PolicyError(f"Decision.source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.parse_status is not None and self.parse_status not in PARSE_STATUSES:
            raise PolicyError(f"Decision.parse_status must be one of {', '.join(PARSE_STATUSES)}, "
                              f"got {self.parse_status!r}")
        if isinstance(self.action, bool) or not isinstance(self.action, numbers.Integral) or self.action < 0:
            raise PolicyError(f"Decision.action must be a whole number >= 0 (an action index), got {self.action!r}")
        if self.probs is not None:
            _check_probs(self.probs, int(self.action))


def _check_probs(probs: Sequence[float], action: int) -> None:
    """A PolicyError unless `probs` is one probability per action, summing to 1, with `action` among them."""
    if not all(isinstance(p, numbers.Real) and -1e-9 <= p <= 1 + 1e-9 for p in probs):  # NaN fails both
        raise PolicyError(f"Decision.probs must be numbers in [0, 1], got {tuple(probs)!r}")
    if abs(math.fsum(probs) - 1) > 1e-6:
        raise PolicyError(f"Decision.probs must sum to 1, got {tuple(probs)!r} (sum {math.fsum(probs):.9g})")
    if action >= len(probs):
        raise PolicyError(f"Decision.action {action} has no probability in {tuple(probs)!r}")


class Policy(ABC):
    """Base of every agent. Subclasses set `id` and implement `act`; `act_batch` may be overridden to
    decide many observations at once (LLMs batch prompts; classic strategies vectorise)."""

    id: str = "policy"
    #: True when the policy is expensive and should run in one Ray actor per model.
    heavy: bool = False
    #: True when it offers `init_batch` / `p_cooperate_batch` (see agents/strategies/classic.py), so the arena's
    #: vectorised engine (arena/fast.py) can play it without building observations.
    vectorised: bool = False
    #: True when a decision never depends on the other observations of its batch, so a model service may merge
    #: the requests of many matches into one call (off unless declared; LLMPolicy asks its backend).
    batch_invariant: bool = False
    #: the pydantic model of the options its constructor takes (agents/policy_options.py): resolve_policy validates
    #: a spec's options through it and `tomarena list policies` shows its fields. None: derived from the signature.
    Options: ClassVar[type[BaseModel] | None] = None

    def initial_state(self) -> Any:
        """State at the start of a match (None for memoryless policies)."""
        return None

    @abstractmethod
    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Choose an action for `obs`; returns the Decision and the next state."""

    def act_batch(
        self, observations: Sequence[Observation], states: Sequence[Any], rngs: Sequence[np.random.Generator]
    ) -> list[tuple[Decision, Any]]:
        """Decide many independent observations; must equal calling `act` on each in turn."""
        return [self.act(o, s, r) for o, s, r in zip(observations, states, rngs, strict=True)]

    def describe(self) -> dict[str, Any]:
        """Parameters that identify this policy in manifests (id plus settings)."""
        return {"id": self.id}

    def stats(self) -> dict[str, Any]:
        """Counters of the work this policy did so far (an LLM's backend calls, prompts, retries); none by default."""
        return {}

    def file_hashes(self) -> dict[str, str]:
        """Content hash of every file or directory this policy was built from, keyed by the path its spec gives;
        seeds use the hash in place of the path (arena.config.seed_identity). None by default."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


def sample_action(probs: Sequence[float], rng: np.random.Generator) -> int:
    """Draw an action from `probs` with exactly one uniform draw (keeps rng streams aligned)."""
    return pick_action(probs, float(rng.random()))


def pick_action(probs: Sequence[float], u: float) -> int:
    """The action whose cumulative-probability interval holds the uniform number `u` (inverse-CDF sampling)."""
    acc = 0.0
    for a, p in enumerate(probs):
        acc += p
        if u < acc:
            return a
    return len(probs) - 1


@dataclass(frozen=True)
class PolicyInfo:
    """A registry entry: how to build the policy, and a one-line description for `tomarena list policies`."""

    id: str
    factory: Callable[..., Policy]
    summary: str = ""
    kind: str = "classic"
    params: dict[str, Any] = field(default_factory=dict)


POLICIES: Registry[PolicyInfo] = Registry("policy")


def register_policy(
    policy_id: str, factory: Callable[..., Policy], summary: str = "", kind: str | None = None, **params: Any
) -> PolicyInfo:
    """Register a policy factory under `policy_id` (e.g. `classic/tit_for_tat`); duplicates raise."""
    info = PolicyInfo(policy_id, factory, summary, kind or policy_id.split("/")[0], params)
    return POLICIES.register(policy_id, info)
