"""The interface every LLM backend offers (local transformers, an OpenAI-compatible endpoint, the simulated device).

`LLMPolicy` is a backend x a prompt protocol x a parser; it calls `score_detailed` and `generate`, puts `describe()`
into the run manifest, and passes `stats`, `batch_invariant` and `file_hashes()` on through its own Policy API, so
the arena never reaches into a backend. A backend written outside tomarena needs only these members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tomarena.errors import ConfigError

#: one chat prompt: the messages ({"role": ..., "content": ...}) the model answers
Messages = list[dict[str, str]]


@runtime_checkable
class Backend(Protocol):
    """Scores the answer options of chat prompts and generates answers; one instance per model or endpoint."""

    #: counters of the work done so far (calls, prompts, tokens, retries, ...), reported in summary.json
    stats: dict[str, Any]
    #: True when a prompt's result never depends on the other prompts of its call, so a model service may merge
    #: the requests of many matches into one call
    batch_invariant: bool

    def score(self, prompts: Sequence[Messages], options: Sequence[str], answer_prefix: str = "") -> np.ndarray:
        """Log-probability [n_prompts, n_options] that the answer (after `answer_prefix`) starts with each option."""
        ...

    def score_detailed(self, prompts: Sequence[Messages], options: Sequence[str],
                       answer_prefix: str = "") -> tuple[np.ndarray, list[int | None]]:
        """Like `score`, plus each prompt's token count (None where the backend cannot tell)."""
        ...

    def generate(self, prompts: Sequence[Messages], max_new_tokens: int = 64, temperature: float = 1.0,
                 seeds: Sequence[int] | None = None, top_p: float = 1.0, top_k: int = 0,
                 repetition_penalty: float = 1.0) -> list[tuple[str, int, int]]:
        """(text, prompt tokens, completion tokens) per prompt, each sampled with its own seed."""
        ...

    def describe(self) -> dict[str, Any]:
        """What identifies the backend in the run manifest (model, paths, weight hashes, endpoint, ...)."""
        ...

    def file_hashes(self) -> dict[str, str]:
        """Content hash of every file or directory the backend was built from, keyed by the path it was given
        (empty for none); seeds name the hash, so a copied model plays as the original."""
        ...


#: the members a backend must have (data attributes and methods of Backend)
BACKEND_MEMBERS = tuple(sorted({*Backend.__annotations__,
                                *(k for k, v in vars(Backend).items() if callable(v) and not k.startswith("_"))}))


def check_backend(backend: object) -> Backend:
    """`backend` itself when it has every member of Backend, else a one-line ConfigError naming the missing ones."""
    missing = [m for m in BACKEND_MEMBERS if not hasattr(backend, m)]
    if missing:
        raise ConfigError(f"{type(backend).__name__} is not an LLM backend: it lacks {', '.join(missing)} "
                          f"(a backend needs {', '.join(BACKEND_MEMBERS)}; see tomarena.agents.llm.backend)")
    return backend  # type: ignore[return-value]
