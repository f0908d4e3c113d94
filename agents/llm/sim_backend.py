"""A simulated accelerator: an LLM backend for measuring scaling on CPU machines. A BENCHMARK DEVICE ONLY.

`sim:flat?latency_ms=50&max_batch=64&p=0.7&spread=0.2` is an LLM policy (heavy, so it runs in Ray actors) whose
scoring call sleeps `latency_ms` per forward of up to `max_batch` prompts, as an accelerator's cost is nearly flat up
to a large batch: throughput depends only on how many decisions reach one call. The label probabilities are
deterministic, from a hash of the prompt: p(first label) = p + spread * (u - 0.5) with u in [0, 1) from the hash,
clipped to [0, 1]; the other labels share the rest. Results do not depend on batch composition (`batch_invariant`),
so a model service may merge requests of many matches into one call. It says nothing about any real model.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from tomarena.agents.llm.llm_options import DecodingOptions
from tomarena.agents.llm.llm_policy import LLMPolicy
from tomarena.agents.policy_options import check_options, rule, takes
from tomarena.errors import BackendError, ConfigError

PROFILES = ("flat",)  # cost per forward: flat up to max_batch


class SimBackend:
    """Scores prompts with hash-derived probabilities after sleeping a fixed latency per forward (benchmarks only)."""

    kind = "sim"
    #: each prompt's result is independent of the other prompts in the call (merging requests is safe)
    batch_invariant = True

    def __init__(self, profile: str = "flat", latency_ms: float = 50.0, max_batch: int = 64, p: float = 0.5,
                 spread: float = 0.2) -> None:
        if profile not in PROFILES:
            raise ConfigError(f"unknown simulated accelerator profile {profile!r}; allowed: {', '.join(PROFILES)}")
        if not (isinstance(latency_ms, int | float) and math.isfinite(latency_ms) and 0 <= latency_ms <= 60_000):
            raise ConfigError(f"latency_ms must be a number in [0, 60000], got {latency_ms!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= 1_000_000:
            raise ConfigError(f"max_batch must be a whole number in [1, 1000000], got {max_batch!r}")
        for name, v in (("p", p), ("spread", spread)):
            if not (isinstance(v, int | float) and math.isfinite(v) and 0 <= v <= 1):
                raise ConfigError(f"{name} must be a number in [0, 1], got {v!r}")
        self.profile, self.latency_ms, self.max_batch = profile, float(latency_ms), int(max_batch)
        self.p, self.spread = float(p), float(spread)
        self.stats: dict[str, int] = {"score_calls": 0, "forwards": 0, "prompts": 0}

    def forwards(self, n: int) -> int:
        """Forward passes needed for `n` prompts (batches of at most max_batch)."""
        return math.ceil(n / self.max_batch)

    def _probs(self, prompt: list[dict[str, str]], n_options: int, answer_prefix: str) -> np.ndarray:
        digest = hashlib.sha256((json.dumps(prompt, sort_keys=True) + "\x1f" + answer_prefix).encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        first = float(np.clip(self.p + self.spread * (u - 0.5), 0.0, 1.0))
        if n_options == 1:
            return np.array([1.0])
        return np.array([first] + [(1.0 - first) / (n_options - 1)] * (n_options - 1))

    def score_detailed(self, prompts: Sequence[list[dict[str, str]]], options: Sequence[str],
                       answer_prefix: str = "") -> tuple[np.ndarray, list[int]]:
        """Log-probs of each option per prompt (hash-derived) and prompt sizes, after the simulated forwards."""
        if not options:
            raise BackendError("the simulated accelerator needs at least one option to score")
        n = len(prompts)
        if n:
            time.sleep(self.forwards(n) * self.latency_ms / 1000.0)
        self.stats["score_calls"] += 1
        self.stats["forwards"] += self.forwards(n)
        self.stats["prompts"] += n
        with np.errstate(divide="ignore"):
            logp = np.log(np.stack([self._probs(list(pr), len(options), answer_prefix) for pr in prompts])) if n \
                else np.zeros((0, len(options)))
        return logp, [len(json.dumps(list(pr))) // 4 for pr in prompts]

    def score(self, prompts: Sequence[list[dict[str, str]]], options: Sequence[str],
              answer_prefix: str = "") -> np.ndarray:
        """Log-probs of each option per prompt."""
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def generate(self, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 64, temperature: float = 1.0,
                 seeds: Sequence[int] | None = None, **_: Any) -> list[tuple[str, int, int]]:
        """Not simulated: the benchmark device only scores."""
        raise ConfigError("the simulated accelerator (sim:) supports mode=score only")

    def file_hashes(self) -> dict[str, str]:
        """None: the simulated device reads no files."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The simulated device's settings, for the run manifest."""
        return {"backend": self.kind, "profile": self.profile, "latency_ms": self.latency_ms,
                "max_batch": self.max_batch, "p": self.p, "spread": self.spread,
                "note": "simulated accelerator: a benchmark device only, no model"}


class SimOptions(DecodingOptions):
    """Options of `sim:<profile>`: the shared decoding options (scoring only) plus the simulated device's."""

    mode: Annotated[str, rule(lambda m: m == "score", "score (the simulated accelerator only scores)")] = Field(
        "score", description="score only: the simulated accelerator does not generate")
    latency_ms: float = Field(50.0, description="simulated accelerator: milliseconds slept per forward pass of up "
                                                "to max_batch prompts")
    max_batch: int = Field(64, description="simulated accelerator: prompts per forward pass (cost is flat up to it)")
    p: float = Field(0.5, description="simulated accelerator: mean probability of the first label (C)")
    spread: float = Field(0.2, description="simulated accelerator: width of the hash-derived spread of p(C) around "
                                           "p, in [0, 1]")


@takes(SimOptions)
def from_sim_spec(profile: str, **options: Any) -> Any:
    """An LLM policy (mode=score) on the simulated accelerator `sim:<profile>` (benchmarks only)."""
    o = check_options(SimOptions, options, "sim: policies")
    return LLMPolicy(SimBackend(profile, **o.backend_options()), f"sim:{profile}", **o.decoding_options())
