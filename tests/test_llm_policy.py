"""LLMPolicy: scoring -> probabilities, generation -> parsing -> declared fallbacks, the policy contract
(seeded reproducibility, act_batch == act, pickling), the donation game, specs and the registry entry, decoding
presets (decoding=study) with explicit overrides, and the study parser's default-to-C decisions."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from tomarena.agents.base import POLICIES
from tomarena.agents.llm.llm_options import DECODING_PRESETS, decoding_settings
from tomarena.agents.llm.llm_policy import LLMPolicy, from_hf_spec, scores_to_probs
from tomarena.agents.resolve import resolve_policy
from tomarena.envs.framings import get_framing
from tomarena.envs.games import get_game
from tomarena.envs.social_dilemma import Observation
from tomarena.errors import ConfigError

PD = get_game("prisoners_dilemma")
DONATION = get_game("donation")


def pd_obs(round_: int = 0, player: int = 0, framing: str = "business") -> Observation:
    """A PD observation with `round_` earlier rounds of (C, D)."""
    acts = ((0, 1),) * round_
    return Observation(PD, get_framing(framing), player, round_, 5, acts, tuple(PD.payoff(a) for a in acts))


class FakeBackend:
    """Scripted backend: fixed log-probs per label, and answers taken in order from `texts`."""

    batch_invariant = False  # replies go out in call order

    def __init__(self, texts: list[str] | None = None, probs: dict[str, float] | None = None) -> None:
        self.texts, self.probs, self.calls = list(texts or []), probs or {"C": 0.6, "D": 0.2}, []
        self.sampling: list[dict] = []
        self.stats = {"score_calls": 0}

    def score(self, prompts, options, answer_prefix=""):
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def score_detailed(self, prompts, options, answer_prefix=""):
        self.calls.append(("score", len(prompts), answer_prefix))
        self.stats["score_calls"] += 1
        with np.errstate(divide="ignore"):
            row = np.log([self.probs.get(o, 0.0) for o in options])
        return np.tile(row, (len(prompts), 1)), [100] * len(prompts)

    def generate(self, prompts, max_new_tokens, temperature, seeds, **sampling):
        self.calls.append(("generate", len(prompts), tuple(seeds)))
        self.sampling.append({"max_new_tokens": max_new_tokens, "temperature": temperature, **sampling})
        return [(self.texts.pop(0), 100, 7) for _ in prompts]

    def describe(self):
        return {"backend": "fake"}

    def file_hashes(self):
        return {}


def test_scores_to_probs() -> None:
    logp = np.log([0.6, 0.2])
    assert scores_to_probs(logp, 1.0) == pytest.approx((0.75, 0.25))
    assert scores_to_probs(logp, 0.5) == pytest.approx((0.9, 0.1))
    assert scores_to_probs(logp, 0.0) == (1.0, 0.0)
    assert scores_to_probs(np.array([-np.inf, -np.inf]), 1.0) == (0.5, 0.5)
    assert scores_to_probs(np.array([-np.inf, np.log(0.3)]), 2.0) == (0.0, 1.0)


def test_score_mode_decision_fields() -> None:
    fake = FakeBackend()
    policy = LLMPolicy(fake, mode="score", protocol="motivation", temperature=1.0)
    d, state = policy.act(pd_obs(), "s", np.random.default_rng(0))
    assert state == "s"
    assert d.probs == pytest.approx((0.75, 0.25)) and d.other_mass == pytest.approx(0.2)
    assert (d.source, d.parse_status, d.protocol, d.prompt_tokens) == ("llm", "scored", "motivation", 100)
    u = np.random.default_rng(0).random()
    assert d.action == (0 if u < 0.75 else 1)
    assert fake.calls == [("score", 1, "I choose")]
    assert json.loads(d.prompt)[0]["role"] == "system"


def test_generate_mode_parses_and_falls_back_without_silence() -> None:
    texts = ["I choose D. They will undercut.", "I would rather not say.", "Both C and D, honestly."]
    fake = FakeBackend(texts)
    policy = LLMPolicy(fake, mode="generate", protocol="motivation", fallback="score")
    out = policy.act_batch([pd_obs(), pd_obs(1), pd_obs(2)], [None] * 3, [np.random.default_rng(i) for i in range(3)])
    ok, fb1, fb2 = (d for d, _ in out)
    assert (ok.action, ok.source, ok.parse_status, ok.completion, ok.completion_tokens) == (1, "llm", "ok", texts[0], 7)
    assert (fb1.source, fb1.parse_status, fb1.completion) == ("fallback", "fallback", texts[1])
    assert fb1.probs == pytest.approx((0.75, 0.25)) and (fb2.source, fb2.parse_status) == ("fallback", "fallback")
    assert (fb1.error, fb2.error) == (None, None)  # unparsed answers are parse failures, not backend errors
    assert [c[0] for c in fake.calls] == ["generate", "score"] and fake.calls[1][1] == 2  # one batched rescoring


@pytest.mark.parametrize(("fallback", "expected"), [("C", 0), ("D", 1)])
def test_fixed_fallback_is_recorded_as_failed(fallback: str, expected: int) -> None:
    policy = LLMPolicy(FakeBackend(["no idea"]), mode="generate", fallback=fallback)
    d, _ = policy.act(pd_obs(), None, np.random.default_rng(0))
    assert (d.action, d.source, d.parse_status, d.completion) == (expected, "fallback", "failed", "no idea")
    assert d.error is None  # a parse failure (its text is kept), not a backend error


def test_random_fallback_is_seeded_and_bad_label_raises() -> None:
    a = LLMPolicy(FakeBackend(["?"] * 1), mode="generate", fallback="random").act(pd_obs(), None,
                                                                                  np.random.default_rng(5))[0]
    b = LLMPolicy(FakeBackend(["?"] * 1), mode="generate", fallback="random").act(pd_obs(), None,
                                                                                  np.random.default_rng(5))[0]
    assert a == b and a.parse_status == "failed"
    with pytest.raises(ConfigError, match="fallback 'Z' is not an action of game 'prisoners_dilemma'"):
        LLMPolicy(FakeBackend(["?"]), mode="generate", fallback="Z").act(pd_obs(), None, np.random.default_rng(0))


def test_each_decision_draws_exactly_one_uniform() -> None:
    for mode in ("score", "generate"):
        rng = np.random.default_rng(3)
        LLMPolicy(FakeBackend(["I choose C."]), mode=mode).act(pd_obs(), None, rng)
        ref = np.random.default_rng(3)
        ref.random()
        assert rng.random() == ref.random()


def test_donation_game_generate_and_score() -> None:
    obs = Observation(DONATION, get_framing("team"), 0, 0, 1)
    d, _ = LLMPolicy(FakeBackend(["I give 7 dollars."]), mode="generate", protocol="motivation").act(
        obs, None, np.random.default_rng(0))
    assert (d.action, d.parse_status) == (7, "ok")
    fake = FakeBackend(probs={"10": 0.5, "0": 0.5})
    d, _ = LLMPolicy(fake, mode="score", temperature=1.0).act(obs, None, np.random.default_rng(0))
    assert len(d.probs) == 11 and d.probs[0] == pytest.approx(0.5) and d.action in (0, 10)


# -- on the tiny random model -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir):
    return from_hf_spec(str(tiny_model_dir), mode="score", temperature=0.7, batch_size=4)


def test_contract_on_tiny_model(tiny_policy) -> None:
    observations = [pd_obs(r, p) for r in range(3) for p in (0, 1)] + [pd_obs(0, 0)]
    one_by_one = [tiny_policy.act(o, None, np.random.default_rng(i))[0] for i, o in enumerate(observations)]
    batched = [d for d, _ in tiny_policy.act_batch(observations, [None] * 7,
                                                   [np.random.default_rng(i) for i in range(7)])]
    for a, b in zip(one_by_one, batched, strict=True):
        assert a.action == b.action and a.prompt == b.prompt and a.prompt_tokens == b.prompt_tokens
        assert a.probs == pytest.approx(b.probs, abs=1e-6) and sum(a.probs) == pytest.approx(1.0)
        assert 0.0 <= a.other_mass <= 1.0
    again = tiny_policy.act(observations[0], None, np.random.default_rng(0))[0]
    assert again == one_by_one[0]
    clone = pickle.loads(pickle.dumps(tiny_policy))
    assert not clone.backend.loaded and clone.heavy
    assert clone.act(observations[0], None, np.random.default_rng(0))[0].probs == pytest.approx(one_by_one[0].probs)


def test_generate_on_tiny_model_records_failure_and_fallback(tiny_model_dir) -> None:
    policy = from_hf_spec(str(tiny_model_dir), mode="generate", protocol="motivation", max_new_tokens=5,
                          fallback="score")
    d, _ = policy.act(pd_obs(), None, np.random.default_rng(1))
    assert d.completion is not None and d.completion_tokens is not None and d.completion_tokens <= 5
    assert d.parse_status in ("ok", "fallback")
    if d.parse_status == "fallback":
        assert d.source == "fallback" and d.error is None and d.probs is not None
    assert policy.act(pd_obs(), None, np.random.default_rng(1))[0] == d


def test_describe_names_model_and_hashes(tiny_policy, tiny_model_dir) -> None:
    info = tiny_policy.describe()
    assert info["model_path"] == str(tiny_model_dir) and info["adapter"] is None
    assert len(info["model_sha256"]) == 64 and info["adapter_sha256"] is None
    assert (info["mode"], info["temperature"], info["kind"]) == ("score", 0.7, "llm")


def test_specs_and_registry(tiny_model_dir) -> None:
    p = resolve_policy(f"hf:{tiny_model_dir}?mode=generate&protocol=motivation&temperature=0.3&fallback=D")
    assert (p.mode, p.protocol, p.temperature, p.fallback) == ("generate", "motivation", 0.3, "D")
    assert p.id == f"hf:{tiny_model_dir}?mode=generate&protocol=motivation&temperature=0.3&fallback=D"
    assert not p.backend.loaded
    cases = {
        "hf:/no/such/dir": "model path '/no/such/dir' is not a local directory",
        f"hf:{tiny_model_dir}?colour=red": "unknown option 'colour' for hf: policies; allowed: adapter,",
        f"hf:{tiny_model_dir}?mode=dream": "unknown mode 'dream'; allowed: score, generate",
        f"hf:{tiny_model_dir}?protocol=poem": "unknown protocol 'poem'; allowed: letter, motivation",
        f"hf:{tiny_model_dir}?fallback=%3F%3F": "unknown fallback '\\?\\?'; allowed: score, random",
        f"hf:{tiny_model_dir}?temperature=-1": "temperature must be a finite number >= 0",
        f"hf:{tiny_model_dir}?adapter=/no/adapter": "adapter path '/no/adapter' does not exist;",
        f"hf:{tiny_model_dir}?dtype=int3": "unknown dtype 'int3'",
    }
    for spec, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            resolve_policy(spec)
    info = POLICIES.get("llm/smollm2-135m-instruct")
    assert info.kind == "llm"


# -- decoding presets and the study parser --------------------------------------------------------------------------
STUDY = {"temperature": 0.8, "max_new_tokens": 600, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1,
         "parser": "study"}


def test_decoding_presets_and_explicit_overrides() -> None:
    assert DECODING_PRESETS["study"] == STUDY
    assert DECODING_PRESETS["default"] == {"temperature": 1.0, "max_new_tokens": 64, "top_p": 1.0, "top_k": 0,
                                           "repetition_penalty": 1.0, "parser": "robust"}
    assert decoding_settings("study", top_p=0.95, parser=None, temperature=0.0) == {**STUDY, "top_p": 0.95,
                                                                                  "temperature": 0.0}
    with pytest.raises(ConfigError, match="^unknown decoding 'greedy'; allowed: default, study$"):
        decoding_settings("greedy")
    with pytest.raises(ConfigError, match="^unknown decoding setting 'min_p'; allowed: temperature, max_new_tokens, "
                                          "top_p, top_k, repetition_penalty, parser$"):
        decoding_settings("study", min_p=0.1)


def test_study_decoding_reaches_the_backend_and_the_manifest() -> None:
    fake = FakeBackend(["I choose D."])
    policy = LLMPolicy(fake, mode="generate", temperature=0.8, max_new_tokens=600, top_p=0.9, top_k=50,
                       repetition_penalty=1.1, parser="study", decoding="study")
    policy.act(pd_obs(), None, np.random.default_rng(0))
    assert fake.sampling == [{"max_new_tokens": 600, "temperature": 0.8, "top_p": 0.9, "top_k": 50,
                              "repetition_penalty": 1.1}]
    info = policy.describe()
    assert {k: info[k] for k in (*STUDY, "decoding", "decoding_overrides", "backend")} == {
        **STUDY, "decoding": "study", "decoding_overrides": [], "backend": "fake"}
    neutral = FakeBackend(["I choose D."])
    LLMPolicy(neutral, mode="generate").act(pd_obs(), None, np.random.default_rng(0))
    assert neutral.sampling == [{"max_new_tokens": 64, "temperature": 1.0}]  # neutral settings are not passed


def test_study_parser_counts_default_answers_and_never_rescores() -> None:
    texts = ["I choose D. They will undercut.", "I choose C.", "I refuse to take part.", "DC", ""]
    fake = FakeBackend(texts)
    policy = LLMPolicy(fake, mode="generate", protocol="motivation", fallback="score", parser="study")
    out = [d for d, _ in policy.act_batch([pd_obs()] * 5, [None] * 5, [np.random.default_rng(i) for i in range(5)])]
    assert [(d.action, d.source, d.parse_status, d.completion) for d in out] == [
        (1, "llm", "ok", texts[0]), (0, "llm", "ok", texts[1]), (0, "fallback", "default", texts[2]),
        (0, "fallback", "default", texts[3]), (0, "fallback", "default", "")]
    assert all(d.error is None and d.probs is None for d in out)
    assert [c[0] for c in fake.calls] == ["generate"]  # nothing failed, so nothing was scored instead


def test_study_parser_on_donations_fails_without_a_number() -> None:
    obs = Observation(DONATION, get_framing("team"), 0, 0, 1)
    policy = LLMPolicy(FakeBackend(["Maybe 3, maybe 6.", "I keep it all."]), mode="generate", parser="study",
                       fallback="0")
    first, second = (d for d, _ in policy.act_batch([obs, obs], [None, None],
                                                     [np.random.default_rng(0), np.random.default_rng(1)]))
    assert (first.action, first.source, first.parse_status) == (3, "llm", "ok")
    assert (second.action, second.source, second.parse_status, second.completion, second.error) == (
        0, "fallback", "failed", "I keep it all.", None)


def test_decoding_specs_resolve_without_loading(tiny_model_dir) -> None:
    p = resolve_policy(f"hf:{tiny_model_dir}?mode=generate&protocol=letter&decoding=study")
    assert {k: getattr(p, k) for k in STUDY} == STUDY and p.decoding == "study" and not p.backend.loaded
    p = resolve_policy(f"hf:{tiny_model_dir}?mode=generate&decoding=study&top_p=0.95&max_new_tokens=32&parser=robust")
    assert (p.top_p, p.max_new_tokens, p.parser, p.temperature, p.top_k) == (0.95, 32, "robust", 0.8, 50)
    assert p.describe()["decoding_overrides"] == ["max_new_tokens", "top_p", "parser"]
    p = resolve_policy(f"hf:{tiny_model_dir}?mode=generate&top_p=0.5&repetition_penalty=1.3&top_k=7")
    assert (p.decoding, p.temperature, p.top_p, p.top_k, p.repetition_penalty, p.parser) == (
        "default", 1.0, 0.5, 7, 1.3, "robust")
    p = resolve_policy("llm/smollm2-135m-instruct?mode=generate&decoding=study&top_k=0")
    assert (p.id, p.top_k, p.top_p, p.parser, p.decoding_overrides()) == (
        "llm/smollm2-135m-instruct?mode=generate&decoding=study&top_k=0", 0, 0.9, "study", ["top_k"])
    cases = {
        "decoding=greedy": "unknown decoding 'greedy'; allowed: default, study",
        "parser=loose": "unknown parser 'loose'; allowed: robust, study",
        "top_p=0": "top_p must be a number in \\(0, 1\\], got 0.0",
        "top_p=1.5": "top_p must be a number in \\(0, 1\\], got 1.5",
        "top_p=x": "option top_p='x' is not a valid float",
        "top_k=-1": "top_k must be a whole number >= 0 \\(0 = off\\), got -1",
        "repetition_penalty=0": "repetition_penalty must be a finite number > 0 \\(1 = off\\), got 0.0",
    }
    for option, message in cases.items():
        with pytest.raises(ConfigError, match=f"^{message}$"):
            resolve_policy(f"hf:{tiny_model_dir}?mode=generate&{option}")


def test_score_mode_refuses_text_sampling_settings(tiny_model_dir) -> None:
    with pytest.raises(ConfigError, match="^top_p=0.9, top_k=50, repetition_penalty=1.1 shape sampled text, so they "
                                          "need mode=generate; mode=score computes exact label probabilities and "
                                          "allows only top_p=1, top_k=0, repetition_penalty=1$"):
        resolve_policy(f"hf:{tiny_model_dir}?decoding=study")
    with pytest.raises(ConfigError, match="^repetition_penalty=1.1 shape sampled text"):
        LLMPolicy(FakeBackend(), mode="score", repetition_penalty=1.1)
    p = resolve_policy(f"hf:{tiny_model_dir}?decoding=study&top_p=1&top_k=0&repetition_penalty=1")
    assert (p.mode, p.temperature, p.parser) == ("score", 0.8, "study")


# -- the backend contract (agents/llm/backend.py) ---------------------------------------------------------------------
def test_every_backend_has_the_backend_members(tiny_model_dir) -> None:
    from tomarena.agents.llm.backend import BACKEND_MEMBERS, Backend
    from tomarena.agents.llm.hf_backend import HFBackend
    from tomarena.agents.llm.http_backend import OpenAIBackend
    from tomarena.agents.llm.sim_backend import SimBackend

    assert BACKEND_MEMBERS == ("batch_invariant", "describe", "file_hashes", "generate", "score", "score_detailed",
                               "stats")
    backends = [HFBackend(str(tiny_model_dir)), OpenAIBackend("http://127.0.0.1:9", "m"), SimBackend(), FakeBackend(),
                HFBackend(str(tiny_model_dir), batch_size=4)]
    assert all(isinstance(b, Backend) for b in backends)
    # one prompt per forward is batch-invariant; an endpoint may batch requests on its side
    assert [b.batch_invariant for b in backends] == [True, False, True, False, False]
    assert [b.file_hashes() for b in backends[1:4]] == [{}, {}, {}]


def test_a_backend_missing_members_is_a_one_line_config_error() -> None:
    class Half:
        def score_detailed(self, prompts, options, answer_prefix=""):
            return np.zeros((len(prompts), len(options))), []

        def describe(self):
            return {}

    with pytest.raises(ConfigError, match=r"^Half is not an LLM backend: it lacks batch_invariant, file_hashes, "
                                          r"generate, score, stats \(a backend needs batch_invariant, describe, "
                                          r"file_hashes, generate, score, score_detailed, stats; see "
                                          r"tomarena.agents.llm.backend\)$"):
        LLMPolicy(Half())


def test_policy_stats_and_batch_invariance_come_from_the_backend() -> None:
    from tomarena.agents.base import Policy

    fake = FakeBackend()
    policy = LLMPolicy(fake, mode="score")
    policy.act(pd_obs(), None, np.random.default_rng(0))
    stats = policy.stats()
    assert stats == {"score_calls": 1}
    stats["score_calls"] = 99  # a copy: the backend's counters are not the caller's to change
    assert fake.stats == {"score_calls": 1}
    assert policy.batch_invariant is False
    fake.batch_invariant = True
    assert policy.batch_invariant is True
    assert (Policy.batch_invariant, resolve_policy("classic/tit_for_tat").stats()) == (False, {})
    assert resolve_policy("classic/tit_for_tat").file_hashes() == {}
