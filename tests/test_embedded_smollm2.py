"""The real embedded SmolLM2-135M-Instruct plays a one-shot PD in business framing, scoring and generating."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.envs.framings import get_framing
from tomarena.envs.games import get_game
from tomarena.envs.social_dilemma import Observation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def obs() -> Observation:
    return Observation(get_game("prisoners_dilemma"), get_framing("business"), 0, 0, 1)


def test_smollm2_scores_exactly(obs) -> None:
    import torch

    policy = resolve_policy("llm/smollm2-135m-instruct?protocol=letter")
    d, _ = policy.act(obs, None, np.random.default_rng(0))
    assert (d.source, d.parse_status, d.protocol) == ("llm", "scored", "letter")
    assert d.action in (0, 1) and sum(d.probs) == pytest.approx(1.0) and 0.0 <= d.other_mass < 1.0
    messages = json.loads(d.prompt)
    assert "chief executive" in messages[0]["content"] and "C or D" in messages[1]["content"]
    backend = policy.backend
    tok, model = backend.tokenizer, backend._model
    ids = tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
              add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        lp = model(ids).logits[0, -1].log_softmax(-1)
    label_ids = [{tok(v, add_special_tokens=False).input_ids[0] for v in (x, " " + x)} for x in "CD"]
    expected = np.array([sum(float(lp[i].exp()) for i in ids_) for ids_ in label_ids])
    assert d.probs == pytest.approx(tuple(expected / expected.sum()), abs=1e-5)
    assert d.other_mass == pytest.approx(1 - expected.sum(), abs=1e-5)


def test_smollm2_generates_with_motivation(obs) -> None:
    policy = resolve_policy("llm/smollm2-135m-instruct?mode=generate&protocol=motivation&max_new_tokens=16")
    d, _ = policy.act(obs, None, np.random.default_rng(0))
    assert d.action in (0, 1) and d.completion and d.completion_tokens <= 16
    assert d.parse_status in ("ok", "fallback") and d.prompt_tokens > 50
    assert json.loads(d.prompt)[1]["content"].endswith("why you made that choice.")
