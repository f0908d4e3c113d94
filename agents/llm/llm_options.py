"""The options of every LLM policy, declared once: `DecodingOptions` (mode, protocol, decoding preset, sampling,
parser, fallback) is shared by `llm/...`, `hf:...`, `openai:...` and `sim:...`; each backend family adds its own
fields in a subclass (HFOptions, OpenAIOptions, sim_backend.SimOptions) that the factory hands to its backend.
A new decoding option is a field of DecodingOptions (and its use in LLMPolicy); every factory and the listing
then have it.

Decoding presets: unset decoding options (None) come from the named preset (`decoding=`), explicit ones go over it.
"study": the study's transformers pipeline (mainloop.py of sepehrilami/LFB) sampled at temperature 0.8 with
repetition_penalty 1.1 and max_new_tokens 600, top_p 0.9 from LLaMa-2-chat's generation_config.json and top_k 50
as transformers' default; answers read by the study's \\bD\\b rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from tomarena.agents.llm.hf_load import DEVICES, DTYPES
from tomarena.agents.llm.http_backend import DEFAULT_CONCURRENCY
from tomarena.agents.llm.parsing import PARSERS
from tomarena.agents.llm.prompts import TEMPLATES
from tomarena.agents.llm.sampling import check_repetition_penalty, check_top_k, check_top_p
from tomarena.agents.policy_options import Number, PolicyOptions, Whole, choice, rule
from tomarena.errors import ConfigError

MODES = ("score", "generate")
FIXED_FALLBACKS = ("score", "random")
#: neutral sampling: no nucleus or top-k truncation, no repetition penalty (what mode=score requires)
NEUTRAL_SAMPLING = {"top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}
#: named decoding presets (see the module docstring)
DECODING_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"temperature": 1.0, "max_new_tokens": 64, **NEUTRAL_SAMPLING, "parser": "robust"},
    "study": {"temperature": 0.8, "max_new_tokens": 600, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1,
              "parser": "study"},
}


def decoding_settings(decoding: str = "default", **explicit: Any) -> dict[str, Any]:
    """The preset's settings with every non-None `explicit` value (temperature, top_p, ...) put over them."""
    if decoding not in DECODING_PRESETS:
        raise ConfigError(f"unknown decoding {decoding!r}; allowed: {', '.join(DECODING_PRESETS)}")
    preset = DECODING_PRESETS[decoding]
    unknown = sorted(set(explicit) - set(preset))
    if unknown:
        raise ConfigError(f"unknown decoding setting {unknown[0]!r}; allowed: {', '.join(preset)}")
    return {**preset, **{k: v for k, v in explicit.items() if v is not None}}


def check_fallback(fallback: str) -> str:
    """`fallback` when it is score, random or an action label (letters and digits), else a one-line ConfigError."""
    if fallback in FIXED_FALLBACKS or (fallback.strip() and fallback.isalnum()):
        return fallback
    raise ConfigError(f"unknown fallback {fallback!r}; allowed: score, random, or an action label such as C or D")


def _checked(check: Callable[[Any], Any]) -> AfterValidator:
    """A field validator calling one of the shared checks (their own wording); None passes."""
    return AfterValidator(lambda v: v if v is None else check(v))


class DecodingOptions(PolicyOptions):
    """How an LLM policy asks and reads its model: the options every LLM factory shares."""

    mode: Annotated[str, choice(MODES)] = Field(
        "score", description="score (exact probabilities of the action labels) or generate (sample text and parse it)")
    protocol: Annotated[str, choice(TEMPLATES, "protocol")] = Field(
        "letter", description="prompt protocol: letter (answer with the label) or motivation (explain, then choose)")
    decoding: Annotated[str, choice(DECODING_PRESETS, "decoding")] = Field(
        "default", description="named decoding preset: default or study (the study's sampling and parser)")
    temperature: Annotated[Number | None, rule(lambda x: x >= 0, "a finite number >= 0")] = Field(
        None, description="softmax temperature over the label scores, or sampling temperature (default: the "
                          "decoding's)")
    max_new_tokens: Annotated[Whole | None, rule(lambda x: x >= 1, ">= 1")] = Field(
        None, description="generate: most tokens per answer (default: the decoding's)")
    top_p: Annotated[float | None, _checked(check_top_p)] = Field(
        None, description="generate: nucleus sampling mass (default: the decoding's)")
    top_k: Annotated[Whole | None, _checked(check_top_k)] = Field(
        None, description="generate: sample among the k likeliest tokens, 0 = off (default: the decoding's)")
    repetition_penalty: Annotated[float | None, _checked(check_repetition_penalty)] = Field(
        None, description="generate: penalty on repeated tokens, 1 = off (default: the decoding's)")
    parser: Annotated[str | None, choice(PARSERS, "parser")] = Field(
        None, description="answer parser: robust or study (default: the decoding's)")
    fallback: Annotated[str, _checked(check_fallback)] = Field(
        "score", description="what an unparsable answer becomes: score, random, or an action label such as C")

    def settings(self) -> dict[str, Any]:
        """The decoding preset with the options set here put over it (temperature, max_new_tokens, top_p, top_k,
        repetition_penalty, parser)."""
        preset = DECODING_PRESETS[self.decoding]
        return decoding_settings(self.decoding, **{k: getattr(self, k) for k in preset})

    def decoding_options(self) -> dict[str, Any]:
        """The DecodingOptions fields of these options (what LLMPolicy takes), unset ones left out."""
        return self.model_dump(include=set(DecodingOptions.model_fields), exclude_unset=True)

    def backend_options(self) -> dict[str, Any]:
        """The fields a subclass adds (what its backend takes)."""
        return self.model_dump(exclude=set(DecodingOptions.model_fields))


class HFOptions(DecodingOptions):
    """Options of a local transformers model (`hf:PATH`, `llm/smollm2-135m-instruct`): decoding plus loading."""

    adapter: str | None = Field(None, description="path of a LoRA adapter directory to load on top of the model")
    dtype: Annotated[str, choice(DTYPES, "dtype")] = Field(
        "float32", description="torch dtype of the weights (float32, bfloat16, float16, auto)")
    device: Annotated[str, choice(DEVICES, "device")] = Field(
        "cpu", description="torch device (cpu, cuda, mps, auto)")
    trust_remote_code: bool = Field(False, description="allow custom model code from the model directory")
    batch_size: Whole = Field(1, description="prompts per forward (scoring) or per generate() call; 1 makes every "
                                             "answer the same bits in any batch, >1 pads prompts together (faster "
                                             "on a GPU and for long generated answers; last-bit differences with "
                                             "the batch's company)")


class OpenAIOptions(DecodingOptions):
    """Options of an OpenAI-compatible endpoint (`openai:URL`): decoding plus the connection."""

    model: str = Field("", description="model name sent to the endpoint")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the endpoint's API key")
    timeout: float = Field(30.0, description="seconds to wait for one request")
    max_retries: Whole = Field(3, description="retries of a failed request before the decision records the error")
    backoff: float = Field(0.5, description="seconds before the first retry (doubling each time)")
    top_logprobs: Whole = Field(20, description="score: how many top tokens' log-probs the endpoint returns per "
                                                "answer")
    concurrency: Whole = Field(DEFAULT_CONCURRENCY, description="requests of one batch in flight at once, 1..256 "
                                                                "(1 = one after another)")
