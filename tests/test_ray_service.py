"""The simulated accelerator (sim:) and the Ray model service: traces equal the local executor's bit for bit,
with one or two replicas and after a replica is killed mid-run."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.errors import ConfigError

SIM = "sim:flat?latency_ms=2&max_batch=8&p=0.6"


def _obs(n: int) -> list:
    from tomarena.envs.social_dilemma import SocialDilemmaEnv

    out = []
    for i in range(n):
        env = SocialDilemmaEnv(game="prisoners_dilemma", framing="business", rounds=3)
        _, infos = env.reset(seed=i)
        for _ in range(i % 3):
            _, _, _, _, infos = env.step({"player_0": i % 2, "player_1": 0})
        out.append(infos["player_0"]["observation"])
    return out


def test_sim_is_heavy_deterministic_and_batch_invariant() -> None:
    pol = resolve_policy(SIM)
    assert pol.heavy and pol.describe()["backend"] == "sim"
    obs = _obs(10)
    batched = pol.act_batch(obs, [None] * 10, [np.random.default_rng(i) for i in range(10)])
    single = [pol.act(o, None, np.random.default_rng(i)) for i, o in enumerate(obs)]
    assert batched == single
    assert {d.probs for d, _ in batched} != {batched[0][0].probs}  # the prompt's hash moves p(C)
    assert all(abs(d.probs[0] - 0.6) <= 0.1 + 1e-12 for d, _ in batched)


def test_sim_cost_is_flat_up_to_max_batch() -> None:
    backend = resolve_policy("sim:flat?latency_ms=30&max_batch=16").backend
    msgs = [[{"role": "user", "content": str(i)}] for i in range(16)]
    t0 = time.perf_counter()
    backend.score_detailed(msgs[:1], ["C", "D"])
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend.score_detailed(msgs, ["C", "D"])
    full = time.perf_counter() - t0
    assert 0.03 <= one and 0.03 <= full < 0.03 + 0.05
    assert backend.stats["forwards"] == 2 and backend.forwards(17) == 2


@pytest.mark.parametrize("spec", ["sim:warp", "sim:flat?latency_ms=-1", "sim:flat?max_batch=0", "sim:flat?p=1.5",
                                  "sim:flat?spread=2", "sim:flat?mode=generate"])
def test_sim_bad_options_are_one_line_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_policy(spec)
    assert "\n" not in str(err.value)
