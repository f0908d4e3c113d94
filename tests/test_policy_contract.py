"""The policy contract, run over every registered policy except LLMs: purity, reproducibility with a seeded rng,
probabilities that sum to 1, act_batch equal to act one by one, and a pickle round trip (for Ray)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tomarena.agents import POLICIES, Decision, Policy, resolve_policy
from tomarena.envs import parallel_env
from tomarena.errors import PolicyError, TomarenaError

IDS = [p for p in POLICIES.ids() if not p.startswith("llm/") and POLICIES.get(p).kind != "llm"]
SCENARIOS = {"matrix": [("prisoners_dilemma", "business"), ("snowdrift", "friendsharing")],
             "donation": [("donation", "team")]}


def scenarios(policy: Policy) -> list[tuple[str, str]]:
    return [s for kind in getattr(policy, "game_kinds", ("matrix",)) for s in SCENARIOS[kind]]


def collect(policy: Policy, game: str, framing: str, rounds: int = 4, seed: int = 0) -> list[tuple]:
    """(observation, state before acting) for every decision of a short self-play match."""
    env = parallel_env(game=game, framing=framing, rounds=rounds)
    _, infos = env.reset(seed=seed)
    agents = list(env.agents)
    states = {a: policy.initial_state() for a in agents}
    rngs = {a: np.random.default_rng(seed + i) for i, a in enumerate(agents)}
    seen = []
    while env.agents:
        acts = {}
        for a in agents:
            obs = infos[a]["observation"]
            seen.append((obs, states[a]))
            d, states[a] = policy.act(obs, states[a], rngs[a])
            acts[a] = d.action
        _, _, _, _, infos = env.step(acts)
    return seen


def same(d1: Decision, d2: Decision) -> bool:
    probs_equal = (d1.probs is None and d2.probs is None) or np.allclose(d1.probs, d2.probs, rtol=0, atol=1e-12)
    return probs_equal and (d1.action, d1.source, d1.completion, d1.prompt, d1.parse_status) == (
        d2.action, d2.source, d2.completion, d2.prompt, d2.parse_status)


@pytest.fixture(scope="module", params=IDS)
def case(request):
    policy = resolve_policy(request.param)
    return policy, [step for g, f in scenarios(policy) for step in collect(policy, g, f)]


def test_registry_entry_is_described(case):
    policy, _ = case
    info = POLICIES.get(policy.id.split("?")[0])
    assert info.summary and info.kind and policy.describe()["id"] == policy.id


def test_decisions_are_valid_and_probabilities_sum_to_one(case):
    policy, steps = case
    for i, (obs, state) in enumerate(steps):
        d, _ = policy.act(obs, state, np.random.default_rng(i))
        assert 0 <= d.action < obs.game.n_actions
        if d.probs is not None:
            assert len(d.probs) == obs.game.n_actions and sum(d.probs) == pytest.approx(1.0, abs=1e-9)
            assert min(d.probs) >= 0 and d.probs[d.action] > 0


def test_act_is_pure(case):
    policy, steps = case
    for i, (obs, state) in enumerate(steps):
        obs_before, state_before = pickle.dumps(obs), pickle.dumps(state)
        policy.act(obs, state, np.random.default_rng(i))
        assert pickle.dumps(obs) == obs_before and pickle.dumps(state) == state_before


def test_seeded_rng_reproduces_and_uses_one_draw(case):
    policy, steps = case
    for i, (obs, state) in enumerate(steps):
        rng1, rng2 = np.random.default_rng(i), np.random.default_rng(i)
        d1, s1 = policy.act(obs, state, rng1)
        d2, s2 = policy.act(obs, state, rng2)
        assert same(d1, d2) and pickle.dumps(s1) == pickle.dumps(s2)
        reference = np.random.default_rng(i)
        reference.random()
        assert rng1.random() == reference.random()  # exactly one uniform consumed per decision


def test_act_batch_equals_act_one_by_one(case):
    policy, steps = case
    obs, states = [o for o, _ in steps], [s for _, s in steps]
    batch = policy.act_batch(obs, states, [np.random.default_rng(100 + i) for i in range(len(obs))])
    single = [policy.act(o, s, np.random.default_rng(100 + i)) for i, (o, s) in enumerate(zip(obs, states))]
    assert len(batch) == len(single)
    for (d1, s1), (d2, s2) in zip(batch, single):
        assert same(d1, d2) and pickle.dumps(s1) == pickle.dumps(s2)


def test_pickle_round_trip(case):
    policy, steps = case
    clone = pickle.loads(pickle.dumps(policy))
    assert clone.id == policy.id and clone.describe() == policy.describe()
    for i, (obs, state) in enumerate(steps):
        d1, _ = policy.act(obs, state, np.random.default_rng(i))
        d2, _ = clone.act(obs, pickle.loads(pickle.dumps(state)), np.random.default_rng(i))
        assert same(d1, d2)


class Impure(Policy):
    """A broken policy: mutates its state and draws two uniforms."""

    id = "test/impure"

    def initial_state(self):
        return []

    def act(self, obs, state, rng):
        state.append(rng.random())
        return Decision(int(rng.random() < 0.5), (0.5, 0.5)), state


def test_the_checks_catch_a_broken_policy():
    policy = Impure()
    steps = collect(policy, "prisoners_dilemma", "none", rounds=2)
    obs, state = steps[-1]
    before = pickle.dumps(state)
    policy.act(obs, state, np.random.default_rng(0))
    assert pickle.dumps(state) != before  # purity check would fail
    with pytest.raises(PolicyError, match=r"^Decision.probs must sum to 1, got \(0.5, 0.6\) \(sum 1.1\)$"):
        Decision(1, (0.5, 0.6))  # probabilities that do not sum to 1 are refused where they are made


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"action": 0, "source": "oracle"},
     "Decision.source must be one of rule, strategist, llm, fallback, replay, replay-model, got 'oracle'"),
    ({"action": 0, "parse_status": "guessed"},
     "Decision.parse_status must be one of ok, scored, default, failed, fallback, got 'guessed'"),
    ({"action": -1}, "Decision.action must be a whole number >= 0 (an action index), got -1"),
    ({"action": True}, "Decision.action must be a whole number >= 0 (an action index), got True"),
    ({"action": 0.0}, "Decision.action must be a whole number >= 0 (an action index), got 0.0"),
    ({"action": 0, "probs": (1.5, -0.5)}, "Decision.probs must be numbers in [0, 1], got (1.5, -0.5)"),
    ({"action": 0, "probs": (float("nan"), 1.0)}, "Decision.probs must be numbers in [0, 1], got (nan, 1.0)"),
    ({"action": 2, "probs": (0.5, 0.5)}, "Decision.action 2 has no probability in (0.5, 0.5)"),
])
def test_a_malformed_decision_is_a_policy_error(kwargs: dict, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        Decision(**kwargs)
    assert str(info.value) == message and isinstance(info.value, TomarenaError)


def test_well_formed_decisions_pass() -> None:
    assert Decision(np.int64(1), (np.float64(0.25), 0.75)).action == 1
    assert Decision(3, None, "llm", parse_status="failed").probs is None
