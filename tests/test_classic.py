"""Classic strategies: versus tables against scripted co-players, options, and the vectorised core."""

from __future__ import annotations

import numpy as np
import pytest

from tomarena.agents import resolve_policy
from tomarena.agents.strategies.classic import GENEROSITY, VectorPolicy
from tomarena.envs import DonationGame, Observation, get_framing, get_game
from tomarena.errors import ConfigError, GameError

SCRIPT = "CDDCCCDC"  # the scripted co-player's moves


def play_script(spec: str, script: str = SCRIPT, game: str = "prisoners_dilemma", player: int = 0,
                seed: int = 0) -> tuple[str, list]:
    """The policy's moves (as a string) and decisions against a co-player who plays `script`."""
    policy, g, fr = resolve_policy(spec), get_game(game), get_framing("none")
    rng, state, actions, payoffs, moves, decisions = np.random.default_rng(seed), None, [], [], "", []
    for k, other in enumerate(script):
        obs = Observation(g, fr, player, k, len(script), tuple(actions), tuple(payoffs))
        d, state = policy.act(obs, state, rng)
        joint = (d.action, "CD".index(other)) if player == 0 else ("CD".index(other), d.action)
        actions.append(joint)
        payoffs.append(g.payoff(joint))
        moves += "CD"[d.action]
        decisions.append(d)
    return moves, decisions


VERSUS = {  # co-player plays C D D C C C D C
    "classic/always_cooperate": "CCCCCCCC",
    "classic/always_defect": "DDDDDDDD",
    "classic/tit_for_tat": "CCDDCCCD",
    "classic/suspicious_tit_for_tat": "DCDDCCCD",
    "classic/tit_for_two_tats": "CCCDCCCC",
    "classic/two_tits_for_tat": "CCDDDCCD",
    "classic/grim_trigger": "CCDDDDDD",
    "classic/win_stay_lose_shift": "CCDCCCCD",
    "classic/alternator": "CDCDCDCD",
    "classic/generous_tit_for_tat?generosity=0": "CCDDCCCD",
    "classic/generous_tit_for_tat?generosity=1": "CCCCCCCC",
    "classic/memory_one?p=1,0,0,1": "CCDCCCCD",  # = win-stay-lose-shift
    "classic/memory_one?p=0,0,0,0&first=1": "CDDDDDDD",
    "classic/random?p=1": "CCCCCCCC",
    "classic/random?p=0": "DDDDDDDD",
    "classic/equilibrium": "DDDDDDDD",  # the Prisoner's Dilemma's only equilibrium
    "classic/defect_once": "DCCCCCCC",  # D in round 1 only, whatever the co-player does
    "classic/defect_once?at=3": "CCDCCCCC",
}


@pytest.mark.parametrize("spec,expected", VERSUS.items())
def test_versus_scripted_co_player(spec, expected):
    moves, decisions = play_script(spec)
    assert moves == expected
    assert all(d.source == "rule" and d.probs[d.action] == 1.0 for d in decisions)


@pytest.mark.parametrize("player", [0, 1])
def test_versus_tables_hold_in_either_seat(player):
    assert play_script("classic/two_tits_for_tat", player=player)[0] == VERSUS["classic/two_tits_for_tat"]
    assert play_script("classic/win_stay_lose_shift", player=player)[0] == VERSUS["classic/win_stay_lose_shift"]


def test_exact_probabilities_of_stochastic_strategies():
    _, dec = play_script("classic/generous_tit_for_tat")
    assert dec[2].probs == pytest.approx((GENEROSITY, 1 - GENEROSITY))  # after the co-player's D
    assert dec[1].probs == (1.0, 0.0)
    _, dec = play_script("classic/random?p=0.3")
    assert all(d.probs == pytest.approx((0.3, 0.7)) for d in dec)
    _, dec = play_script("classic/memory_one?p=0.9,0.1,0.8,0.3&first=0.5")
    assert [d.probs[0] for d in dec[:3]] == pytest.approx([0.5, 0.9 if dec[0].action == 0 else 0.8,
                                                           0.1 if dec[1].action == 0 else 0.3])


def test_equilibrium_player_plays_each_seat_of_the_chosen_equilibrium():
    # Snowdrift: equilibria (C,D), (D,C), mixed p(C)=1/6, in Game.nash_equilibria order
    assert play_script("classic/equilibrium?index=0", game="snowdrift", player=0)[0] == "CCCCCCCC"
    assert play_script("classic/equilibrium?index=0", game="snowdrift", player=1)[0] == "DDDDDDDD"
    assert play_script("classic/equilibrium?index=1", game="snowdrift", player=0)[0] == "DDDDDDDD"
    _, dec = play_script("classic/equilibrium?index=2", game="stag_hunt")
    assert dec[0].probs == pytest.approx((1 / 6, 5 / 6))
    with pytest.raises(GameError, match="index 3 is out of range.*mixed p\\(C\\)=1/6"):
        play_script("classic/equilibrium?index=3", game="snowdrift")


def test_joining_a_match_under_way_replays_the_history():
    policy, g, fr = resolve_policy("classic/grim_trigger"), get_game("prisoners_dilemma"), get_framing("none")
    obs = Observation(g, fr, 0, 3, 5, ((0, 1), (1, 0), (1, 0)), ((2, 10), (10, 2), (10, 2)))
    d, state = policy.act(obs, None, np.random.default_rng(0))
    assert d.action == 1 and state == (1.0,)


def donation_moves(spec: str, others: list[tuple[int, ...]], game: DonationGame) -> list[int]:
    policy, fr = resolve_policy(spec), get_framing("none")
    rng, actions, out = np.random.default_rng(0), [], []
    for k, rest in enumerate(others):
        obs = Observation(game, fr, 0, k, len(others), tuple(actions), tuple(game.payoff(a) for a in actions))
        d, _ = policy.act(obs, None, rng)
        assert d.probs[d.action] == 1.0 and len(d.probs) == game.endowment + 1
        out.append(d.action)
        actions.append((d.action, *rest))
    return out


def test_donation_rules():
    g4, g3 = get_game("donation"), DonationGame(n_players=3, multiplier=2.0)
    assert donation_moves("classic/fixed_contributor?amount=3", [(1, 2, 3)] * 3, g4) == [3, 3, 3]
    assert donation_moves("classic/conditional_cooperator?first=4", [(2, 3, 5), (3, 4, 4), (10, 10, 10), (0, 0, 1)],
                          g4) == [4, 3, 4, 10]
    # rounded half up: 2.5 -> 3, 0.5 -> 1
    assert donation_moves("classic/conditional_cooperator", [(2, 3), (0, 1), (0, 0)], g3) == [5, 3, 1]
    with pytest.raises(GameError, match="amount=11 exceeds the endowment 10"):
        donation_moves("classic/fixed_contributor?amount=11", [(0, 0, 0)], g4)


def test_wrong_game_and_bad_options_raise():
    obs = Observation(get_game("donation"), get_framing("none"), 0, 0, 1)
    with pytest.raises(GameError, match="2x2 games only"):
        resolve_policy("classic/tit_for_tat").act(obs, None, np.random.default_rng(0))
    pd_obs = Observation(get_game("prisoners_dilemma"), get_framing("none"), 0, 0, 1)
    with pytest.raises(GameError, match="donation game only"):
        resolve_policy("classic/fixed_contributor").act(pd_obs, None, np.random.default_rng(0))
    for spec, msg in [("classic/random?p=2", "p must be a probability"),
                      ("classic/memory_one?p=1,0,1", "4 probabilities"),
                      ("classic/equilibrium?index=-1", "index must be an integer"),
                      ("classic/fixed_contributor?amount=-2", "amount must be a whole number"),
                      ("classic/tit_for_tat?p=1", "unknown option 'p'"),
                      ("classic/defect_once?at=0", "at must be a round number >= 1")]:
        with pytest.raises(ConfigError, match=msg):
            resolve_policy(spec)


def test_rng_random_k_times_equals_random_k():
    a, b = np.random.default_rng(123), np.random.default_rng(123)
    assert np.array_equal(np.array([a.random() for _ in range(17)]), b.random(17))


VECTOR_SPECS = [s for s in VERSUS if "equilibrium" not in s] + [
    "classic/random?p=0.3", "classic/generous_tit_for_tat", "classic/memory_one?p=0.9,0.1,0.8,0.3&first=0.6"]


@pytest.mark.parametrize("spec", VECTOR_SPECS)
def test_vectorised_core_equals_act_move_for_move(spec):
    """n matches against a random co-player: act() round by round vs the core with pre-drawn uniforms."""
    policy, g, fr = resolve_policy(spec), get_game("prisoners_dilemma"), get_framing("none")
    assert isinstance(policy, VectorPolicy)
    n, rounds = 12, 15
    other = np.random.default_rng(99).integers(0, 2, size=(n, rounds))
    uniforms = np.stack([np.random.default_rng(m).random(rounds) for m in range(n)])
    state, own_last, other_last = policy.init_batch(n), np.full(n, -1), np.full(n, -1)
    fast = np.empty((n, rounds), dtype=int)
    for t in range(rounds):
        p_c, state = policy.p_cooperate_batch(state, t, own_last, other_last)
        fast[:, t] = np.where(uniforms[:, t] < p_c, 0, 1)
        own_last, other_last = fast[:, t], other[:, t]
    for m in range(n):
        rng, st, acts = np.random.default_rng(m), None, []
        for t in range(rounds):
            obs = Observation(g, fr, 0, t, rounds, tuple(acts), tuple(g.payoff(a) for a in acts))
            d, st = policy.act(obs, st, rng)
            acts.append((d.action, int(other[m, t])))
        assert [a for a, _ in acts] == fast[m].tolist()


def test_core_does_not_mutate_its_inputs():
    policy = resolve_policy("classic/tit_for_two_tats")
    state, own, other = policy.init_batch(3), np.array([0, 1, 0]), np.array([1, 1, 0])
    before = state.copy()
    _, new = policy.p_cooperate_batch(state, 1, own, other)
    assert np.array_equal(state, before) and new is not state
    assert new[:, 0].tolist() == [1.0, 1.0, 0.0]


def test_equilibrium_core_is_per_game_and_seat():
    policy = resolve_policy("classic/equilibrium?index=0")
    assert not hasattr(policy, "p_cooperate_batch")
    core = policy.vector_core(get_game("snowdrift"), 1)
    p_c, _ = core.p_cooperate_batch(core.init_batch(2), 0, np.array([-1, -1]), np.array([-1, -1]))
    assert p_c.tolist() == [0.0, 0.0]


def test_literature_aliases_play_like_their_strategies() -> None:
    """classic/grudger resolves to grim trigger and classic/pavlov to win-stay-lose-shift (the same classes)."""
    from tomarena.agents.resolve import resolve_policy

    for alias, name in (("grudger", "grim_trigger"), ("pavlov", "win_stay_lose_shift")):
        assert type(resolve_policy(f"classic/{alias}")) is type(resolve_policy(f"classic/{name}"))


class _Disguised:
    """A game of no known class: every attribute comes from the wrapped game (so only `kind` can tell it apart)."""

    def __init__(self, game) -> None:
        self._game = game

    def __getattr__(self, name: str):
        return getattr(self._game, name)


def test_strategies_ask_the_games_kind_not_its_class():
    xy = "matrix?row=1/0/0/2&col=2/0/0/1&labels=X/Y"  # a 2x2 game labelled with letters other than C/D
    assert play_script("classic/tit_for_tat", game=xy)[0] == VERSUS["classic/tit_for_tat"]
    three = Observation(get_game("matrix?row=1/0/0/0/1/0/0/0/1&col=1/0/0/0/1/0/0/0/1"), get_framing("none"), 0, 0, 1)
    with pytest.raises(GameError, match="2x2 games only"):
        resolve_policy("classic/tit_for_tat").act(three, None, np.random.default_rng(0))
    pot = _Disguised(DonationGame(n_players=3))
    obs = Observation(pot, get_framing("none"), 0, 0, 1)
    d, _ = resolve_policy("classic/fixed_contributor?amount=4").act(obs, None, np.random.default_rng(0))
    assert d.action == 4 and len(d.probs) == 11
    with pytest.raises(GameError, match="2x2 games only"):
        resolve_policy("classic/tit_for_tat").act(obs, None, np.random.default_rng(0))
    for spec in ("strategist/reference", "study/llama2-7b"):  # 2x2 and donation by kind
        d, _ = resolve_policy(spec).act(obs, None, np.random.default_rng(0))
        assert len(d.probs) == 11
    pd_like = Observation(_Disguised(get_game("prisoners_dilemma")), get_framing("none"), 0, 0, 1)
    assert len(resolve_policy("study/llama2-70b").act(pd_like, None, np.random.default_rng(0))[0].probs) == 2
