"""The PettingZoo environments: PettingZoo's own API and seed tests for every game and mode, plus behaviour."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test, state_test

from tomarena.envs import GAMES, DonationGame, Observation, SocialDilemmaEnv, env, get_framing, parallel_env
from tomarena.errors import ConfigError, GameError, RegistryError

C, D = 0, 1
MODES = {
    "one_shot": {"rounds": 1},
    "fixed": {"rounds": 4},
    "continuation": {"continuation": 0.8, "max_rounds": 12},
    "noisy": {"rounds": 3, "noise": 0.2, "memory": 2},
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("game", GAMES.ids())
def test_pettingzoo_api_and_seed_tests(game: str, mode: str) -> None:
    kw = {"game": game, "framing": "business", **MODES[mode]}
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        parallel_api_test(parallel_env(**kw), num_cycles=30)
        api_test(env(**kw), num_cycles=30)
        parallel_seed_test(lambda: parallel_env(**kw), num_cycles=30)
        seed_test(lambda: env(**kw), num_cycles=30)
    assert [str(w.message) for w in caught] == []  # e.g. no "observation space value is infinity" warning
    e = parallel_env(**kw)
    assert e.possible_agents == [f"player_{i}" for i in range(GAMES.get(game).n_players)]


@pytest.mark.parametrize(("game", "mode"), [("prisoners_dilemma", "one_shot"), ("stag_hunt", "fixed"),
                                           ("snowdrift", "continuation"), ("donation", "fixed")])
def test_pettingzoo_state_test(game: str, mode: str) -> None:
    kw = {"game": game, "framing": "business", **MODES[mode]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state_test(env(**kw), parallel_env(**kw), num_cycles=30)
    assert [str(w.message) for w in caught] == []
    e = parallel_env(**kw)
    assert e.state_space is e.observation_space("player_0") and e.state_space.shape == (3 + len(e.possible_agents),)
    e.reset(seed=0)
    e.step({a: 1 for a in e.agents})
    assert e.state_space.contains(e.state()) and e.state().tolist() == e._vector(0).tolist()


def test_state_test_fails_on_a_state_outside_its_space() -> None:
    e = parallel_env(game="stag_hunt", rounds=2)
    e.state_space = spaces.Box(0.0, 1.0, shape=(5,), dtype=np.float32)  # state() starts at [0, 0, 0, -1, -1]
    with pytest.raises(AssertionError, match="state is outside of it's state space"):
        state_test(env(game="stag_hunt", rounds=2), e)


def test_donation_env_has_four_players_and_contribution_actions() -> None:
    e = parallel_env(game="donation", rounds=2)
    obs, infos = e.reset(seed=1)
    assert e.possible_agents == ["player_0", "player_1", "player_2", "player_3"]
    assert e.action_space("player_2").n == 11 and obs["player_3"].shape == (3 + 4,)
    _, rewards, *_ = e.step({"player_0": 10, "player_1": 0, "player_2": 0, "player_3": 0})
    assert rewards == {"player_0": 5.0, "player_1": 15.0, "player_2": 15.0, "player_3": 15.0}
    o: Observation = infos["player_1"]["observation"]
    assert o.game.n_players == 4 and o.round == 0
    small = parallel_env(game=DonationGame(n_players=3, endowment=4, multiplier=1.5))
    assert small.possible_agents == ["player_0", "player_1", "player_2"] and small.action_space("player_0").n == 5


def _play(e: SocialDilemmaEnv, joint: list[tuple[int, ...]], seed: int = 0) -> list[tuple]:
    e.reset(seed=seed)
    out = []
    for acts in joint:
        out.append(e.step({a: x for a, x in zip(e.possible_agents, acts)}))
    return out


def test_rewards_are_raw_payoffs_and_infos_carry_the_history() -> None:
    e = parallel_env(game="stag_hunt", framing="friendsharing", rounds=4)
    _, infos = e.reset(seed=0)
    o0: Observation = infos["player_0"]["observation"]
    assert (o0.round, o0.horizon, o0.actions, o0.payoffs) == (0, 4, (), ())
    assert o0.framing is get_framing("friendsharing") and o0.game is GAMES.get("stag_hunt")
    steps = _play(e, [(C, C), (C, D), (D, C), (D, D)])
    assert [s[1]["player_0"] for s in steps] == [10.0, 2.0, 5.0, 3.0]
    assert [s[1]["player_1"] for s in steps] == [10.0, 5.0, 2.0, 3.0]
    assert [s[2]["player_0"] for s in steps] == [False, False, False, True]
    assert not any(s[3]["player_1"] for s in steps) and e.agents == []
    info = steps[2][4]["player_1"]
    o: Observation = info["observation"]
    assert (info["intended"], info["executed"]) == (C, C)
    assert o.player == 1 and o.round == 3 and o.horizon == 4
    assert o.actions == ((C, C), (C, D), (D, C)) and o.payoffs == ((10, 10), (2, 5), (5, 2))
    assert o.own_actions == (C, D, C) and o.other_actions == (C, C, D)
    assert o.others_actions == ((C,), (C,), (D,)) and o.own_total == 17.0 and o.other_total == 17.0


def test_rounds_played_and_history_are_the_executed_rounds_so_far() -> None:
    e = parallel_env(game="prisoners_dilemma", rounds=3, noise=0.25)
    assert (e.rounds_played, e.history) == (0, ((), ()))
    e.reset(seed=7)
    e.step({"player_0": C, "player_1": D})
    assert (e.rounds_played, e.history) == (1, (((C, D),), ((2.0, 10.0),)))
    _, _, _, _, infos = e.step({"player_0": C, "player_1": D})  # the noise flips player_1's D (seed 7)
    assert (e.rounds_played, e.history) == (2, (((C, D), (C, C)), ((2.0, 10.0), (5.0, 5.0))))
    o = infos["player_0"]["observation"]
    assert (o.round, o.actions, o.payoffs) == (e.rounds_played, *e.history)
    e.reset(seed=7)
    assert (e.rounds_played, e.history) == (0, ((), ()))


def test_one_shot_ends_after_one_round() -> None:
    e = parallel_env(game="prisoners_dilemma")
    _, infos = e.reset()
    assert infos["player_0"]["observation"].horizon == 1
    _, rewards, terms, truncs, _ = e.step({"player_0": D, "player_1": C})
    assert rewards == {"player_0": 10.0, "player_1": 2.0} and all(terms.values()) and not any(truncs.values())


def test_memory_vector_contents() -> None:
    e = parallel_env(game="prisoners_dilemma", rounds=5, memory=2)
    obs, _ = e.reset(seed=0)
    assert obs["player_1"].tolist() == [0, 0, 0, -1, -1, -1, -1]
    obs, *_ = e.step({"player_0": C, "player_1": D})
    assert obs["player_0"].tolist() == [1, 2, 10, 0, 1, -1, -1]
    assert obs["player_1"].tolist() == [1, 10, 2, 0, 1, -1, -1]
    e.step({"player_0": D, "player_1": D})
    obs, *_ = e.step({"player_0": D, "player_1": C})
    assert obs["player_0"].tolist() == [3, 15, 15, 1, 0, 1, 1]  # newest joint action first
    assert obs["player_0"].dtype == np.float32 and e.state().tolist() == obs["player_0"].tolist()
    assert e.observation_space("player_0").contains(obs["player_0"])
    e0 = parallel_env(game="prisoners_dilemma", rounds=3, memory=0)
    steps = _play(e0, [(C, C), (C, D), (D, D)])
    assert steps[-1][0]["player_0"].tolist() == [3, 10, 18]


def test_observation_space_bounds() -> None:
    box = parallel_env(game="prisoners_dilemma", rounds=10, memory=1).observation_space("player_0")
    assert box.low[[0, 3, 4]].tolist() == [0, -1, -1] and box.high[[0, 3, 4]].tolist() == [10, 1, 1]
    assert box.low[1] == pytest.approx(0, abs=1e-3) and box.high[1] == pytest.approx(100, rel=1e-5)
    donation = parallel_env(game="donation", continuation=0.5, max_rounds=20).observation_space("player_0")
    assert donation.high[0] == 20 and donation.high[3] == 10 and donation.high[1] == pytest.approx(500, rel=1e-5)


def test_continuation_horizon_is_hidden_and_stops_at_the_right_rate() -> None:
    def length(seed: int) -> int:
        e = parallel_env(game="prisoners_dilemma", continuation=0.75)
        _, infos = e.reset(seed=seed)
        assert infos["player_0"]["observation"].horizon is None
        n = 0
        while e.agents:
            e.step({"player_0": C, "player_1": C})
            n += 1
        return n

    lengths = [length(s) for s in range(1000)]
    assert lengths[:12] == [5, 2, 3, 3, 1, 1, 5, 2, 2, 1, 1, 6]
    assert sum(lengths) == 4033 and lengths.count(1) == 249
    # expected mean 1 / (1 - 0.75) = 4; standard error sqrt(0.75) / 0.25 / sqrt(1000) ~ 0.11
    assert abs(np.mean(lengths) - 4) < 0.33 and abs(lengths.count(1) / 1000 - 0.25) < 0.05


def test_continuation_zero_and_truncation_at_max_rounds() -> None:
    e = parallel_env(game="snowdrift", continuation=0.0)
    e.reset(seed=3)
    _, _, terms, truncs, _ = e.step({"player_0": C, "player_1": C})
    assert all(terms.values()) and not any(truncs.values())
    e = parallel_env(game="snowdrift", continuation=0.99, max_rounds=5)
    steps = _play(e, [(C, C)] * 5, seed=0)
    assert [s[3]["player_0"] for s in steps] == [False] * 4 + [True]
    assert not any(s[2]["player_0"] for s in steps) and e.agents == []


def _noisy_run(seed: int, noise: float) -> list[tuple[int, int]]:
    e = parallel_env(game="prisoners_dilemma", rounds=8, noise=noise)
    steps = _play(e, [(C, D)] * 8, seed=seed)
    return [(s[4]["player_0"]["executed"], s[4]["player_1"]["executed"]) for s in steps]


def test_noise_flips_actions_reproducibly() -> None:
    run = _noisy_run(7, 0.25)
    assert run == [(C, D), (C, C), (C, D), (D, D), (C, D), (C, D), (C, D), (C, D)]
    assert _noisy_run(7, 0.25) == run and _noisy_run(8, 0.25) != run
    assert _noisy_run(7, 0.0) == [(C, D)] * 8
    assert _noisy_run(7, 1.0) == [(D, C)] * 8
    e = parallel_env(game="prisoners_dilemma", rounds=8, noise=0.25)
    steps = _play(e, [(C, D)] * 8, seed=7)
    assert steps[1][1] == {"player_0": 5.0, "player_1": 5.0}  # rewards follow the executed actions
    assert steps[1][4]["player_1"]["intended"] == D and steps[1][4]["player_1"]["observation"].actions[1] == (C, C)


def test_reset_without_seed_continues_the_stream_and_render() -> None:
    e = parallel_env(game="prisoners_dilemma", rounds=2, render_mode="ansi")
    e.reset(seed=0)
    e.step({"player_0": C, "player_1": D})
    e.step({"player_0": D, "player_1": D})
    assert e.render() == "Prisoner's Dilemma | Bare game\nround 1: C D  payoffs 2 10\nround 2: D D  payoffs 3 3"
    assert parallel_env(game="prisoners_dilemma").render() is None
    e.reset()
    assert e.agents == e.possible_agents and e.render() == "Prisoner's Dilemma | Bare game"


def test_numpy_actions_are_accepted() -> None:
    e = parallel_env(game="prisoners_dilemma")
    e.reset()
    _, rewards, *_ = e.step({"player_0": np.int64(1), "player_1": np.array(0)})
    assert rewards == {"player_0": 10.0, "player_1": 2.0}


def test_other_actions_needs_two_players() -> None:
    e = parallel_env(game="donation")
    _, infos = e.reset()
    with pytest.raises(GameError, match="other_actions needs a two-player game; 'donation' has 4 players"):
        infos["player_0"]["observation"].other_actions  # noqa: B018


BAD_ENVS = [
    ({"continuation": 1.0}, ConfigError, "continuation probability must be in [0, 1), got 1.0"),
    ({"continuation": -0.1}, ConfigError, "continuation probability must be in [0, 1), got -0.1"),
    ({"continuation": math.nan}, ConfigError, "continuation probability must be in [0, 1), got nan"),
    ({"rounds": 3, "continuation": 0.5}, ConfigError, "give either rounds (fixed horizon, got 3) or continuation"),
    ({"rounds": 0}, ConfigError, "rounds must be an integer >= 1, got 0"),
    ({"rounds": 2.5}, ConfigError, "rounds must be an integer >= 1, got 2.5"),
    ({"rounds": True}, ConfigError, "rounds must be an integer >= 1, got True"),
    ({"noise": 1.5}, ConfigError, "noise must be a probability in [0, 1], got 1.5"),
    ({"noise": -0.01}, ConfigError, "noise must be a probability in [0, 1], got -0.01"),
    ({"max_rounds": 0, "continuation": 0.5}, ConfigError, "max_rounds must be an integer >= 1, got 0"),
    ({"memory": -1}, ConfigError, "memory must be an integer >= 0"),
    ({"render_mode": "human"}, ConfigError, "render_mode must be None or 'ansi', got 'human'"),
    ({"game": "prisoners_dilema"}, RegistryError, "unknown game 'prisoners_dilema'; did you mean prisoners_dilemma"),
    ({"framing": "sport"}, RegistryError, "unknown framing 'sport'; did you mean sports"),
]


@pytest.mark.parametrize(("kwargs", "error", "needle"), BAD_ENVS)
def test_bad_env_options_give_one_line(kwargs: dict, error: type, needle: str) -> None:
    with pytest.raises(error) as info:
        parallel_env(**kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_bad_steps_give_one_line() -> None:
    e = parallel_env(game="prisoners_dilemma")
    with pytest.raises(ConfigError, match=r"the episode is over \(or was never started\); call reset\(\) first"):
        e.step({"player_0": C, "player_1": C})
    e.reset()
    with pytest.raises(ConfigError, match=r"step needs an action for every agent; missing \['player_1'\]"):
        e.step({"player_0": C})
    for bad in (2, -1, 0.5, "C", None):
        with pytest.raises(ConfigError, match=r"action .* of player_0 is not an integer in 0..1"):
            e.step({"player_0": bad, "player_1": C})
    e.step({"player_0": C, "player_1": C})
    with pytest.raises(ConfigError, match="the episode is over"):
        e.step({"player_0": C, "player_1": C})
