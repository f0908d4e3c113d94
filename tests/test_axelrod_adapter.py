"""The Axelrod adapter plays move for move what the same strategy plays in an axelrod.Match."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest

from tomarena.agents import resolve_policy
from tomarena.agents.strategies.axelrod_adapter import (
    SHIPPED_TABLE,
    AxelrodPolicy,
    VectorAxelrodPolicy,
    axelrod_policy,
    build_table,
    find_strategy,
    snake_name,
    strategy_table,
)
from tomarena.envs import Observation, get_framing, get_game, parallel_env
from tomarena.errors import ConfigError, GameError

axl = pytest.importorskip("axelrod")


def play_env(p0, p1, turns: int, game: str = "prisoners_dilemma_axelrod", seeds=(1, 2)) -> list[tuple[int, int]]:
    """Joint actions of a match between two tomarena policies in the PettingZoo env."""
    env = parallel_env(game=game, rounds=turns)
    _, infos = env.reset(seed=0)
    pols, states, rngs, out = [p0, p1], [None, None], [np.random.default_rng(s) for s in seeds], []
    while env.agents:
        acts = {}
        for i, agent in enumerate(("player_0", "player_1")):
            d, states[i] = pols[i].act(infos[agent]["observation"], states[i], rngs[i])
            acts[agent] = d.action
        _, _, _, _, infos = env.step(acts)
        out.append((acts["player_0"], acts["player_1"]))
    return out


def match_moves(a, b, turns: int, seed: int | None = None) -> list[tuple[int, int]]:
    result = axl.Match((a, b), turns=turns, seed=seed).play()
    return [(int(x == axl.Action.D), int(y == axl.Action.D)) for x, y in result]


PAIRS = [("Grudger", "Prober"), ("Gradual", "Alternator"), ("Tit For Tat", "Cycler CCD"), ("Adaptive", "Alternator"),
         ("First by Tideman and Chieruzzi", "Hard Go By Majority"), ("Forgiver", "Cycler CCD"),
         ("Hard Tit For 2 Tats", "Cycler DDC")]


@pytest.mark.parametrize("a,b", PAIRS)
def test_deterministic_strategies_match_axelrod_move_for_move(a, b):
    turns = 30
    expected = match_moves(find_strategy(a)(), find_strategy(b)(), turns)
    got = play_env(resolve_policy(f"axelrod:{a}"), resolve_policy(f"axelrod:{b}"), turns)
    assert got == expected
    assert len({x for x, _ in got}) == 2  # the pair makes the strategy play both moves


def test_stochastic_strategy_with_the_matchs_seed_matches_axelrod():
    seed = 7
    player_seed = int(axl.RandomGenerator(seed).random_seed_int())  # what Match hands its first stochastic player
    expected = match_moves(axl.Random(0.5), axl.TitForTat(), 40, seed=seed)
    got = play_env(resolve_policy(f"axelrod:Random?seed={player_seed}"), resolve_policy("axelrod:TitForTat"), 40)
    assert got == expected


def test_stochastic_strategy_is_seeded_from_the_given_rng():
    a = play_env(resolve_policy("axelrod:Random"), resolve_policy("axelrod:Grudger"), 30, seeds=(5, 6))
    b = play_env(resolve_policy("axelrod:Random"), resolve_policy("axelrod:Grudger"), 30, seeds=(5, 6))
    c = play_env(resolve_policy("axelrod:Random"), resolve_policy("axelrod:Grudger"), 30, seeds=(8, 6))
    assert a == b and a != c


def test_names_and_probabilities():
    assert find_strategy("Tit For Tat") is find_strategy("TitForTat") is find_strategy("tit_for_tat") is axl.TitForTat
    assert snake_name("Hard Go By Majority") == "hard_go_by_majority"
    obs = Observation(get_game("prisoners_dilemma"), get_framing("none"), 0, 0, 3)
    d, _ = axelrod_policy("Grudger").act(obs, None, np.random.default_rng(0))
    assert (d.action, d.probs, d.source) == (0, (1.0, 0.0), "rule")
    d, _ = axelrod_policy("Random").act(obs, None, np.random.default_rng(0))
    assert d.probs is None
    assert resolve_policy("axelrod/gradual").cls is axl.Gradual


def test_bad_names_games_and_cheaters_are_refused():
    with pytest.raises(ConfigError, match="unknown Axelrod strategy 'Grudgr'; did you mean Grudger"):
        resolve_policy("axelrod:Grudgr")
    with pytest.raises(ConfigError, match="needs to see its opponent"):
        axelrod_policy("Darwin")
    with pytest.raises(ConfigError, match="seed must be an integer"):
        axelrod_policy("Random", seed=-1)
    obs = Observation(get_game("donation"), get_framing("none"), 0, 0, 1)
    with pytest.raises(GameError, match="^axelrod:Grudger plays 2-player C/D games only; got game 'donation'$"):
        axelrod_policy("Grudger").act(obs, None, np.random.default_rng(0))


class Probe(axl.Player):
    """Records what it is handed as the opponent."""

    name = "Probe"
    classifier: ClassVar[dict] = {"stochastic": False, "memory_depth": 1}
    seen: ClassVar[list] = []

    def strategy(self, opponent):
        Probe.seen.append((type(opponent).__name__, [str(a) for a in opponent.history], opponent.defections,
                           [str(a) for a in self.history], hasattr(opponent, "strategy")))
        return axl.Action.C


def test_the_player_sees_only_a_history_stand_in(monkeypatch):
    policy = axelrod_policy("Tit For Tat")
    monkeypatch.setattr(policy, "cls", Probe)
    Probe.seen = []
    g, fr, state = get_game("prisoners_dilemma"), get_framing("none"), None
    joint = ((0, 1), (0, 0), (0, 1))
    for k in range(4):
        obs = Observation(g, fr, 0, k, 4, joint[:k], tuple(g.payoff(a) for a in joint[:k]))
        _, state = policy.act(obs, state, np.random.default_rng(0))
    kind, co_hist, defections, own_hist, has_strategy = Probe.seen[-1]
    assert kind == "_CoPlayer" and not has_strategy
    assert co_hist == ["D", "C", "D"] and defections == 2 and own_hist == ["C", "C", "C"]
    assert isinstance(state, object) and isinstance(policy, AxelrodPolicy)


def test_unknown_names_fail_fast_without_importing_the_library():
    code = ("import sys\nfrom tomarena.agents import resolve_policy\n"
            "try:\n    resolve_policy('axelrod:Grudgr')\nexcept Exception as e:\n    print(e)\n"
            "print('axelrod' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == [
        "unknown Axelrod strategy 'Grudgr'; did you mean Grudger, Soft Grudger, Opposite Grudger?", "False"]
    with pytest.raises(ConfigError, match="^unknown Axelrod strategy 'zzzz'; see `tomarena list policies --axelrod`$"):
        resolve_policy("axelrod:zzzz")


def test_the_shipped_name_table_is_the_installed_library():
    assert json.loads(SHIPPED_TABLE.read_text())["version"] == axl.__version__ == "4.14.0"
    assert strategy_table() == build_table()
    assert len(strategy_table()) == 244 and sum(i.vectorised for i in strategy_table()) == 143
    assert [i.name for i in strategy_table() if i.refused] == ["Darwin"]


def _opponent(seed: int, turns: int) -> list[int]:
    return [int(x) for x in np.random.default_rng(seed).random(turns) < 0.4]


def test_every_vectorised_strategy_batch_equals_act_on_a_non_default_game():
    """The batch core ignores game and length; act sets both (stag hunt, horizon 40): equal moves prove neither is
    read, and both paths are the same player."""
    turns, g, fr = 40, get_game("stag_hunt"), get_framing("none")
    opp = [_opponent(1, turns), _opponent(2, turns)]
    for info in (i for i in strategy_table() if i.vectorised):
        policy = axelrod_policy(info.class_name)
        assert isinstance(policy, VectorAxelrodPolicy), info.name
        state, last = policy.init_batch(2), np.array([-1, -1])
        batch, acts = [], []
        for t in range(turns):
            pc, state = policy.p_cooperate_batch(state, t, last, np.array([o[t - 1] if t else -1 for o in opp]))
            assert set(pc.tolist()) <= {0.0, 1.0}
            last = (pc < 0.5).astype(int)
            batch.append(tuple(last.tolist()))
        for m in range(2):
            st, joint = None, []
            for t in range(turns):
                obs = Observation(g, fr, 0, t, turns, tuple(joint), tuple(g.payoff(a) for a in joint))
                d, st = policy.act(obs, st, np.random.default_rng(t))
                joint.append((d.action, opp[m][t]))
            acts.append([a for a, _ in joint])
        assert [list(x) for x in zip(*batch, strict=True)] == acts, info.name


def test_reused_states_replay_and_batch_states_are_single_use():
    g, fr = get_game("prisoners_dilemma"), get_framing("none")
    joint = ((0, 1), (1, 0), (0, 1), (1, 1))
    for name in ("Gradual", "Random"):
        policy, state, decisions = axelrod_policy(name), None, []
        for k in range(4):
            obs = Observation(g, fr, 0, k, 6, joint[:k], tuple(g.payoff(a) for a in joint[:k]))
            d, state = policy.act(obs, state, np.random.default_rng(k))
            decisions.append((d, state))
        obs = Observation(g, fr, 0, 4, 6, joint, tuple(g.payoff(a) for a in joint))
        fresh = policy.act(obs, decisions[-1][1], np.random.default_rng(9))[0]
        assert policy.act(obs, decisions[-1][1], np.random.default_rng(9))[0] == fresh  # used state: replayed
        assert policy.act(obs, decisions[1][1], np.random.default_rng(9))[0] == fresh  # stale state: replayed
    policy = axelrod_policy("Tit For Tat")
    assert type(policy) is VectorAxelrodPolicy and type(axelrod_policy("Random")) is AxelrodPolicy
    state = policy.init_batch(1)
    policy.p_cooperate_batch(state, 0, np.array([-1]), np.array([-1]))
    with pytest.raises(ValueError, match="single-use"):
        policy.p_cooperate_batch(state, 0, np.array([-1]), np.array([-1]))
