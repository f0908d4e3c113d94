"""Declared capabilities of the classic strategies (Axelrod-style classifiers), checked against behaviour: memory
depth (decisions depend only on the last d rounds), stochasticity (probabilities strictly between 0 and 1 occur iff
declared), vectorisation (the batch protocol exists iff declared) and game kinds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tomarena.agents import resolve_policy
from tomarena.agents.strategies.classic import CLASSIC, Classifier
from tomarena.envs import Observation, get_framing, get_game

MATRIX_GAMES = ("prisoners_dilemma", "snowdrift")
PENNIES = "matrix?row=1/0/0/1&col=0/1/1/0"  # matching pennies: its only equilibrium is mixed
SPECS = [f"classic/{n}" for n in CLASSIC] + ["classic/random?p=1", "classic/memory_one?p=1,0,0,1",
                                              "classic/memory_one?p=0.5,0,1,0", "classic/equilibrium?index=2"]


def _decide(policy, game: str, history: tuple) -> tuple[float, ...]:
    g = get_game(game)
    pays = tuple(g.payoff(a) for a in history)
    obs = Observation(g, get_framing("none"), 0, len(history), 10, history, pays)
    return policy.act(obs, None, np.random.default_rng(0))[0].probs


def _histories(game: str, length: int) -> list[tuple]:
    n = get_game(game).n_actions if game != "donation" else None
    if game == "donation":
        moves = [(0, 0, 0, 0), (10, 10, 10, 10), (3, 7, 5, 9)]
        return [tuple(h) for h in itertools.product(moves, repeat=length)]
    return [tuple(h) for h in itertools.product(itertools.product(range(n), repeat=2), repeat=length)]


def _games(policy, spec: str) -> tuple[str, ...]:
    if "donation" in policy.classifier.game_kinds:
        return ("donation",)
    if spec.startswith("classic/equilibrium"):  # snowdrift's mixed equilibrium is no. 2; pennies' no. 0
        return ("snowdrift",) if spec.endswith("index=2") else (*MATRIX_GAMES, PENNIES)
    return MATRIX_GAMES


@pytest.mark.parametrize("spec", SPECS)
def test_declared_memory_depth_holds(spec: str) -> None:
    policy = resolve_policy(spec)
    depth = policy.classifier.memory_depth
    if math.isinf(depth):  # whole history: some choice depends on a round older than the last two
        h = _histories("prisoners_dilemma", 3)
        assert any(_decide(policy, "prisoners_dilemma", a) != _decide(policy, "prisoners_dilemma", b)
                   for a in h for b in h if a[1:] == b[1:])
        return
    depth = int(depth)
    for game in _games(policy, spec):
        length = depth + 2
        seen: dict[tuple, tuple] = {}
        for h in _histories(game, length):
            key = h[length - depth:] if depth else ()
            probs = _decide(policy, game, h)
            assert seen.setdefault(key, probs) == pytest.approx(probs), (spec, game, h)


@pytest.mark.parametrize("spec", SPECS)
def test_declared_stochasticity_holds(spec: str) -> None:
    policy = resolve_policy(spec)
    for game in _games(policy, spec):  # per game: an equilibrium player randomises only where its equilibrium mixes
        probs = [p for n in (0, 1, 2) for h in _histories(game, n) for p in _decide(policy, game, h)]
        random = any(0 < p < 1 for p in probs)
        assert random == policy.classify(get_game(game)).stochastic, (spec, game)
        assert policy.classify(get_game(game)).memory_depth == policy.classifier.memory_depth


def test_equilibrium_player_is_stochastic_exactly_where_its_equilibrium_is_mixed() -> None:
    first, mixed = resolve_policy("classic/equilibrium"), resolve_policy("classic/equilibrium?index=2")
    assert [first.classify(get_game(g)).stochastic for g in ("prisoners_dilemma", "stag_hunt", PENNIES)] == [
        False, False, True]
    assert mixed.classify(get_game("snowdrift")) == Classifier(memory_depth=0, stochastic=True, reads_payoffs=True)
    assert first.classify(get_game("stag_hunt"), player=1) == Classifier(memory_depth=0, stochastic=False,
                                                                         reads_payoffs=True)
    assert resolve_policy("classic/random?p=0.3").classify(get_game("snowdrift")).stochastic is True


@pytest.mark.parametrize("spec", SPECS)
def test_vectorised_and_game_kinds_are_declared_truthfully(spec: str) -> None:
    policy = resolve_policy(spec)
    assert policy.vectorised == hasattr(policy, "p_cooperate_batch")
    assert isinstance(policy.classifier, Classifier) and set(policy.classifier.game_kinds) == set(policy.game_kinds)


def test_the_depth_check_fails_on_a_false_declaration() -> None:
    policy = resolve_policy("classic/grim_trigger")  # it remembers one D forever: no finite memory depth
    seen: dict[tuple, tuple] = {}
    with pytest.raises(AssertionError):
        for h in _histories("prisoners_dilemma", 3):  # the check a declared depth of 1 would get
            probs = _decide(policy, "prisoners_dilemma", h)
            assert seen.setdefault(h[2:], probs) == probs
