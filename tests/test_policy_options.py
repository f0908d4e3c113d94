"""Policy options declared like configs (agents/policy_options.py): a policy's pydantic model is what resolve_policy
validates with, what `tomarena list policies` prints and what a policy built in Python is checked against; a plugin
without a model gets one from its signature; every LLM factory shares one decoding-options model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import Field

from tomarena.agents import POLICIES, Decision, Policy, register_policy, resolve_policy
from tomarena.agents.llm.llm_options import DecodingOptions, HFOptions, OpenAIOptions
from tomarena.agents.llm.sim_backend import SimOptions
from tomarena.agents.policy_options import (
    Configurable,
    PolicyOptions,
    Probability,
    declared_model,
    option_rows,
    options_model,
)
from tomarena.agents.strategies.classic import MemoryOne, RandomPolicy
from tomarena.app import catalog
from tomarena.app.cli import main
from tomarena.errors import ConfigError


class Biased(Configurable, Policy):
    """Cooperates with probability `p`, shifted by `boost` after the co-player's C."""

    id = "testopts/biased"

    class Options(PolicyOptions):
        p: Probability = Field(0.25, description="p(C) in every round")

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """C with probability p."""
        p = self.options.p
        return Decision(int(rng.random() >= p), (p, 1 - p)), state


class Boosted(Biased):
    """Biased with one more option: the only edit is its field."""

    class Options(Biased.Options):
        boost: Probability = Field(0.5, description="p(C) added after the co-player's C, capped at 1")


class Plain(Policy):
    """A plugin-style class with no model: its options come from its signature."""

    id = "testopts/plain"

    def __init__(self, p: float, sticky: bool = False, table: tuple[float, ...] = (1.0, 0.0),
                 label: str | None = "x", note=None) -> None:  # `note` has no annotation: its value stays text
        self.p, self.sticky, self.table, self.label, self.note = p, sticky, table, label, note

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """Always C."""
        return Decision(0, (1.0, 0.0)), state


class PlainChild(RandomPolicy):
    """A subclass with its own constructor and no model: the inherited model does not describe it."""

    def __init__(self, q: int = 2) -> None:
        super().__init__(p=1 / q)


@pytest.fixture
def registered() -> Iterator[None]:
    POLICIES.ids()  # load the built-ins first
    for pid, cls in (("testopts/biased", Biased), ("testopts/boosted", Boosted), ("testopts/plain", Plain)):
        register_policy(pid, cls, (cls.__doc__ or "").split("\n")[0], "test")
    yield
    for pid in ("testopts/biased", "testopts/boosted", "testopts/plain"):
        POLICIES.unregister(pid)


def _error(spec: str) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_policy(spec)
    return str(info.value)


def test_a_declared_model_validates_specs_and_python_calls_alike(registered: None) -> None:
    assert resolve_policy("testopts/biased?p=0.75").options.p == 0.75
    assert Biased(0.5).p == 0.5 and Biased(p=0.5).describe() == {"id": "testopts/biased"}
    assert _error("testopts/biased?p=1.5") == "option p must be a probability in [0, 1], got 1.5"
    assert _error("testopts/biased?p=half") == "option p='half' is not a valid float"
    assert _error("testopts/biased?q=1") == "unknown option 'q' for policy 'testopts/biased'; allowed: p"
    for call, message in ((lambda: Biased(p=1.5), "option p must be a probability in [0, 1], got 1.5"),
                          (lambda: Biased(p=True), "option p must be a number, got True"),
                          (lambda: Biased(0.1, p=0.2), "option 'p' of policy 'testopts/biased' is given twice"),
                          (lambda: Biased(0.1, 0.2), "policy 'testopts/biased' takes at most 1 positional options "
                                                     "(p), got 2")):
        with pytest.raises(ConfigError) as info:
            call()
        assert str(info.value) == message


def test_a_new_option_is_one_field_listed_and_validated(registered: None, capsys: pytest.CaptureFixture[str]) -> None:
    policy = resolve_policy("testopts/boosted?boost=0.125")
    assert (policy.p, policy.boost) == (0.25, 0.125)
    assert _error("testopts/boosted?boost=-1") == "option boost must be a probability in [0, 1], got -1.0"
    assert main(["list", "policies", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["testopts/boosted"]["options"] == [
        {"name": "p", "type": "float", "default": 0.25, "description": "p(C) in every round"},
        {"name": "boost", "type": "float", "default": 0.5, "description": "p(C) added after the co-player's C, "
                                                                            "capped at 1"}]
    assert main(["list", "policies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("testopts/boosted "))
    assert lines[at + 1:at + 3] == ["    p=0.25 (float): p(C) in every round",
                                    "    boost=0.5 (float): p(C) added after the co-player's C, capped at 1"]
    assert not hasattr(catalog, "OPTION_HELP")  # the meanings live in the models, nowhere else


def test_a_plain_class_gets_a_model_from_its_signature(registered: None) -> None:
    policy = resolve_policy("testopts/plain?p=0.5&sticky=yes&table=[0.5,0.25]&label=none&note=7")
    assert (policy.p, policy.sticky, policy.table, policy.label, policy.note) == (0.5, True, (0.5, 0.25), None, "7")
    assert _error("testopts/plain") == "missing option 'p' for policy 'testopts/plain'"
    assert _error("testopts/plain?p=1&sticky=maybe") == "option sticky='maybe' is not a valid bool"
    assert _error("testopts/plain?p=1&colour=red") == ("unknown option 'colour' for policy 'testopts/plain'; "
                                                       "allowed: label, note, p, sticky, table")
    assert [r["name"] for r in option_rows(options_model(Plain))] == ["p", "sticky", "table", "label", "note"]
    assert option_rows(options_model(Plain))[2] == {"name": "table", "type": "tuple[float, ...]",
                                                    "default": [1.0, 0.0], "description": ""}


def test_a_model_counts_only_where_it_describes_the_constructor() -> None:
    assert declared_model(RandomPolicy) is RandomPolicy.Options and declared_model(Boosted) is Boosted.Options
    assert declared_model(PlainChild) is None and declared_model(Plain) is None
    assert list(options_model(PlainChild).model_fields) == ["q"]
    assert MemoryOne((1, 0, 0, 1), 0).describe() == {"id": "classic/memory_one", "p": (1.0, 0.0, 0.0, 1.0),
                                                      "first": 0.0}


def test_every_llm_factory_shares_the_decoding_options() -> None:
    shared = option_rows(DecodingOptions)
    assert [r["name"] for r in shared] == ["mode", "protocol", "decoding", "temperature", "max_new_tokens", "top_p",
                                           "top_k", "repetition_penalty", "parser", "fallback"]
    for model in (HFOptions, OpenAIOptions, SimOptions):
        assert issubclass(model, DecodingOptions)
    rows = {r["id"]: r["options"] for r in catalog.listing("policies")}
    for pid in ("llm/smollm2-135m-instruct", "hf:<path-or-model-id>", "openai:<base-url>"):
        assert rows[pid][:len(shared)] == shared, pid
    sim = {r["name"]: r for r in rows["sim:flat"]}
    assert [sim[r["name"]] for r in shared if r["name"] != "mode"] == [r for r in shared if r["name"] != "mode"]
    assert sim["mode"]["description"] == "score only: the simulated accelerator does not generate"
    assert [r["name"] for r in rows["openai:<base-url>"][len(shared):]] == [
        "model", "api_key_env", "timeout", "max_retries", "backoff", "top_logprobs", "concurrency"]


def test_decoding_options_resolve_the_preset() -> None:
    assert DecodingOptions(decoding="study", top_p=0.95).settings() == {
        "temperature": 0.8, "max_new_tokens": 600, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.1,
        "parser": "study"}
    assert HFOptions(adapter="a", top_k=3).decoding_options() == {"top_k": 3}
    assert HFOptions(adapter="a").backend_options() == {"adapter": "a", "dtype": "float32", "device": "cpu",
                                                        "trust_remote_code": False, "batch_size": 1}
    for spec, message in (("sim:flat?mode=generate",
                           "option mode must be score (the simulated accelerator only scores), got 'generate'"),
                          ("sim:flat?max_new_tokens=0", "option max_new_tokens must be >= 1, got 0"),
                          ("sim:flat?temperature=-0.5", "option temperature must be a finite number >= 0, got -0.5"),
                          ("sim:flat?temperature=none&top_k=1.5", "option top_k='1.5' is not a valid int")):
        assert _error(spec) == message
    assert resolve_policy("sim:flat?latency_ms=0&temperature=none").temperature == 1.0
