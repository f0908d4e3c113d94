"""Games: the study's payoffs and equilibria pinned exactly, generic tables, donation game, and validators."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomarena.envs import GAMES, DonationGame, Game, get_game, matrix_game, symmetric_game
from tomarena.envs.games import prisoners_dilemma, stag_hunt
from tomarena.errors import GameError, RegistryError

C, D = 0, 1
STUDY = {  # id: (R, S, T, P) from the study's table
    "prisoners_dilemma": (5, 2, 10, 3),
    "snowdrift": (5, 3, 10, 2),
    "stag_hunt": (10, 2, 5, 3),
    "prisoners_delight": (10, 3, 5, 2),
}
PURE_NE = {
    "prisoners_dilemma": [(D, D)],
    "snowdrift": [(C, D), (D, C)],
    "stag_hunt": [(C, C), (D, D)],
    "prisoners_delight": [(C, C)],
}
MIXED_PC = {"snowdrift": 1 / 6, "stag_hunt": 1 / 6}  # p(C) of the symmetric mixed equilibrium
PARETO = {
    "prisoners_dilemma": [(C, C), (C, D), (D, C)],
    "snowdrift": [(C, C), (C, D), (D, C)],
    "stag_hunt": [(C, C)],
    "prisoners_delight": [(C, C)],
}


def _check_equilibria(g: Game, gid: str) -> None:
    eqs = g.nash_equilibria()
    pure = [e for e in eqs if e.is_pure]
    mixed = [e for e in eqs if not e.is_pure]
    assert sorted(tuple(int(np.argmax(s)) for s in e.strategies) for e in pure) == PURE_NE[gid]
    assert sorted(g.pure_equilibria()) == PURE_NE[gid]
    if gid in MIXED_PC:
        assert len(mixed) == 1
        for s in mixed[0].strategies:
            assert s[0] == pytest.approx(MIXED_PC[gid], abs=1e-12)
        assert mixed[0].label(("C", "D")) == "mixed p(C)=1/6, p(C)=1/6"
    else:
        assert mixed == []


@pytest.mark.parametrize("gid", list(STUDY))
def test_study_games_payoffs_and_equilibria(gid: str) -> None:
    g = GAMES.get(gid)
    R, S, T, P = STUDY[gid]
    assert g.rstp == {"R": R, "S": S, "T": T, "P": P}
    assert g.payoff((C, C)) == (R, R) and g.payoff((C, D)) == (S, T)
    assert g.payoff((D, C)) == (T, S) and g.payoff((D, D)) == (P, P)
    assert g.action_labels == ("C", "D") and g.n_players == 2 and g.is_symmetric
    assert set(g.tags) == {"in_sample", "study"}
    _check_equilibria(g, gid)
    assert g.pareto_efficient() == PARETO[gid]


@pytest.mark.parametrize("gid", list(STUDY))
def test_doubled_variants_double_payoffs_and_keep_equilibria(gid: str) -> None:
    base, doubled = GAMES.get(gid), GAMES.get(f"{gid}_doubled")
    assert doubled.rstp == {k: 2 * v for k, v in base.rstp.items()}
    assert set(doubled.tags) == {"out_of_sample", "doubled", "study"}
    _check_equilibria(doubled, gid)
    assert doubled.pareto_efficient() == base.pareto_efficient()
    assert doubled.risk_dominant() == base.risk_dominant()


def test_axelrod_pd_and_registry_contents() -> None:
    g = GAMES.get("prisoners_dilemma_axelrod")
    assert g.rstp == {"R": 3, "S": 0, "T": 5, "P": 1}
    assert g.pure_equilibria() == [(D, D)] and [e.label(g.action_labels) for e in g.nash_equilibria()] == ["(D,D)"]
    assert g.pareto_efficient() == [(C, C), (C, D), (D, C)]
    rg144 = [f"rg144/{n}" for n in range(1, 145)]
    expected = sorted([*STUDY, *(f"{k}_doubled" for k in STUDY), "prisoners_dilemma_axelrod", "donation", *rg144])
    assert GAMES.ids() == expected
    assert get_game(g) is g


def test_risk_dominance_by_hand() -> None:
    # Harsanyi-Selten: (C,C) risk-dominates iff (R-T)^2 > (P-S)^2 in a symmetric stag hunt.
    assert GAMES.get("stag_hunt").risk_dominant() == (C, C)  # (10-5)^2 = 25 > (3-2)^2 = 1
    assert stag_hunt(4, 0, 3, 2).risk_dominant() == (D, D)  # (4-3)^2 = 1 < (2-0)^2 = 4
    assert stag_hunt(5, 0, 3, 2).risk_dominant() is None  # (5-3)^2 == (2-0)^2: a tie
    for gid in ("prisoners_dilemma", "snowdrift", "prisoners_delight"):
        assert GAMES.get(gid).risk_dominant() is None  # not two diagonal pure equilibria


def test_asymmetric_full_payoff_table() -> None:
    # Battle of the sexes: row prefers (C,C), column prefers (D,D); mixed equilibrium at 2/3 and 1/3.
    g = matrix_game([[3, 0], [0, 2]], [[2, 0], [0, 3]], id="bos")
    assert not g.is_symmetric and g.rstp is None
    assert g.payoff((C, C)) == (3.0, 2.0) and g.payoff((D, D)) == (2.0, 3.0) and g.payoff((C, D)) == (0.0, 0.0)
    assert g.pure_equilibria() == [(C, C), (D, D)]
    mixed = [e for e in g.nash_equilibria() if not e.is_pure]
    assert len(mixed) == 1
    row, col = mixed[0].strategies
    assert row[0] == pytest.approx(3 / 5) and col[0] == pytest.approx(2 / 5)
    assert g.pareto_efficient() == [(C, C), (D, D)]
    assert g.risk_dominant() is None  # (3-0)(2-0) = 6 == (2-0)(3-0) = 6


def test_three_action_matrix_game() -> None:
    rps = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]])
    g = matrix_game(rps, -rps, id="rps", action_labels=("R", "P", "S"))
    assert g.n_actions == 3 and g.pure_equilibria() == []
    (eq,) = g.nash_equilibria()
    assert all(p == pytest.approx(1 / 3) for s in eq.strategies for p in s)
    assert g.risk_dominant() is None


def test_scaled_and_payoff_bounds() -> None:
    g = prisoners_dilemma().scaled(3)
    assert g.id == "prisoners_dilemma_x3" and g.rstp == {"R": 15, "S": 6, "T": 30, "P": 9}
    assert "scaled" in g.tags and g.payoff_bounds() == (6.0, 30.0)
    assert DonationGame().payoff_bounds() == (5.0, 25.0)  # 2*10/4 ; 10 + 2*30/4


def test_donation_payoffs_by_hand() -> None:
    g = GAMES.get("donation")
    assert (g.n_players, g.endowment, g.multiplier, g.n_actions) == (4, 10, 2.0, 11)
    assert g.payoff((10, 0, 0, 0)) == (5.0, 15.0, 15.0, 15.0)
    assert g.payoff((0, 0, 0, 0)) == (10.0,) * 4
    assert g.payoff((10, 10, 10, 10)) == (20.0,) * 4
    assert g.payoff((4, 6, 0, 10)) == (16.0, 14.0, 20.0, 10.0)  # fund 20 -> share 10
    assert g.dominant_strategy_equilibrium() == (0, 0, 0, 0)
    assert g.social_optimum() == (10, 10, 10, 10)
    (eq,) = g.nash_equilibria()
    assert eq.is_pure and all(s[0] == 1.0 and sum(s) == 1.0 for s in eq.strategies)
    assert g.action_labels[0] == "0" and g.action_labels[-1] == "10"


def test_donation_zero_is_dominant_and_full_giving_optimal() -> None:
    g = DonationGame(n_players=3, endowment=3, multiplier=1.5)
    profiles = list(itertools.product(range(4), repeat=3))
    for prof in profiles:  # giving less always pays more to the giver, whatever the others do
        for c in range(1, 4):
            assert g.payoff((c - 1, *prof[1:]))[0] > g.payoff((c, *prof[1:]))[0]
    best = max(profiles, key=lambda p: sum(g.payoff(p)))
    assert best == g.social_optimum() == (3, 3, 3)


BAD_GAMES = [
    (lambda: symmetric_game(math.nan, 1, 2, 3), "payoff R must be a finite number, got nan"),
    (lambda: symmetric_game(1, "x", 2, 3), "payoff S must be a finite number"),
    (lambda: matrix_game([[1, 2]], [[1, 2], [3, 4]]), "row payoff matrix must have shape (2, 2), got (1, 2)"),
    (lambda: matrix_game([[1, 2], [3]], [[1, 2], [3, 4]]), "row payoff matrix must be a rectangular table"),
    (lambda: matrix_game([[1, 2], [3, 4]], [[1, math.inf], [3, 4]]), "column payoff matrix must be finite"),
    (lambda: Game("g", "g", (((1, 1), (0, 0)), ((0, 0), (math.nan, 1)))), "payoff table of game 'g' must be finite"),
    (lambda: matrix_game([[1, 2], [3, 4]], [[1, 2], [3, 4]], action_labels=("C", "C")), "distinct"),
    (lambda: prisoners_dilemma(R=5, S=2, T=10, P=6), "Prisoner's Dilemma needs T > R > P > S but R=5 > P=6"),
    (lambda: stag_hunt(R=4, S=2, T=5, P=3), "Stag Hunt needs R > T > P > S but R=4 > T=5 does not hold"),
    (lambda: symmetric_game(1, 2, 3, 4, kind="chicken"), "unknown game kind 'chicken'; allowed: prisoners_dilemma"),
    (lambda: DonationGame(multiplier=5.0), "1 < multiplier < n_players=4"),
    (lambda: DonationGame(multiplier=1.0), "got 1.0"),
    (lambda: DonationGame(multiplier=math.nan), "got nan"),
    (lambda: DonationGame(n_players=1), "n_players >= 2"),
    (lambda: DonationGame(endowment=0), "endowment >= 1, got 0"),
    (lambda: DonationGame().payoff((1, 2, 3)), "expects 4 contributions, got 3"),
    (lambda: DonationGame().payoff((1, 2, 3, 11)), "contributions must be in 0..10, got 11"),
    (lambda: GAMES.get("prisoners_dilemma").payoff((0, 2)), "needs two actions in 0..1, got (0, 2)"),
]


@pytest.mark.parametrize(("make", "needle"), BAD_GAMES)
def test_bad_games_give_one_clear_line(make, needle: str) -> None:
    with pytest.raises(GameError) as info:
        make()
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_unknown_game_suggests_close_match() -> None:
    with pytest.raises(RegistryError) as info:
        get_game("stag_hnut")
    assert str(info.value) == "unknown game 'stag_hnut'; did you mean stag_hunt, stag_hunt_doubled?"
    with pytest.raises(RegistryError, match="already registered"):
        GAMES.register("stag_hunt", GAMES.get("stag_hunt"))


def test_numpy_numbers_are_accepted() -> None:
    g = symmetric_game(np.int64(3), np.float32(0), np.int64(5), np.float64(1), kind="prisoners_dilemma")
    assert g.rstp == {"R": 3, "S": 0, "T": 5, "P": 1}


ORDER = {
    "prisoners_dilemma": ("Prisoner's Dilemma", "TRPS"),
    "snowdrift": ("Snowdrift", "TRSP"),
    "stag_hunt": ("Stag Hunt", "RTPS"),
    "prisoners_delight": ("Prisoner's Delight", "RTSP"),
}
payoff = st.one_of(st.integers(-20, 20), st.floats(-50, 50, allow_nan=False, width=32))


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(list(ORDER)), R=payoff, S=payoff, T=payoff, P=payoff)
def test_ordering_validator_accepts_iff_ordering_holds(kind: str, R: float, S: float, T: float, P: float) -> None:
    vals = {"R": R, "S": S, "T": T, "P": P}
    label, order = ORDER[kind]
    broken = next(((hi, lo) for hi, lo in itertools.pairwise(order) if not vals[hi] > vals[lo]), None)
    if broken is None:
        g = symmetric_game(R, S, T, P, kind=kind)
        assert g.rstp == {k: float(v) for k, v in vals.items()} and g.name == label
        return
    with pytest.raises(GameError) as info:
        symmetric_game(R, S, T, P, kind=kind)
    msg = str(info.value)
    hi, lo = broken
    assert msg.startswith(f"{label} needs {' > '.join(order)} but {hi}=")
    assert f" > {lo}=" in msg and msg.endswith("does not hold")
    shown = dict(part.split("=") for part in msg.split(" but ")[1].removesuffix(" does not hold").split(" > "))
    assert float(shown[hi]) == float(vals[hi]) and float(shown[lo]) == float(vals[lo])


@settings(max_examples=100, deadline=None)
@given(R=payoff, S=payoff, T=payoff, P=payoff)
def test_symmetric_payoffs_mirror(R: float, S: float, T: float, P: float) -> None:
    g = symmetric_game(R, S, T, P)
    assert g.is_symmetric
    for a, b in itertools.product((C, D), repeat=2):
        assert g.payoff((a, b)) == tuple(reversed(g.payoff((b, a))))
    assert np.array_equal(g.row_matrix, g.col_matrix.T)
    for gid in STUDY:  # every registered 2x2 game is symmetric too
        assert GAMES.get(gid).is_symmetric


# -- inline game specs (CLI and configs) ------------------------------------------------------------------------
def test_inline_family_spec_keeps_study_payoffs_for_omitted_keys_and_is_cached() -> None:
    from tomarena.envs.games import get_game

    g = get_game("prisoners_dilemma?T=11")
    assert g.rstp == {"R": 5.0, "S": 2.0, "T": 11.0, "P": 3.0}
    assert g.id == "prisoners_dilemma?R=5&S=2&T=11&P=3" and get_game("prisoners_dilemma?T=11") is g
    assert get_game(g.id).rstp == g.rstp
    assert get_game("stag_hunt?R=4&S=0&T=3&P=2").pure_equilibria() == [(0, 0), (1, 1)]


def test_inline_matrix_and_donation_specs() -> None:
    from tomarena.envs.games import get_game

    m = get_game("matrix?row=3/0/5/1&col=3/5/0/1")
    assert m.payoff((0, 1)) == (0.0, 5.0) and m.payoff((1, 0)) == (5.0, 0.0) and m.action_labels == ("C", "D")
    asym = get_game("matrix?row=1/0/0/2&col=2/0/0/1&labels=X/Y")
    assert asym.action_labels == ("X", "Y") and not asym.is_symmetric and asym.pure_equilibria() == [(0, 0), (1, 1)]
    d = get_game("donation?n_players=3&endowment=5&multiplier=1.5")
    assert (d.n_players, d.endowment, d.multiplier) == (3, 5, 1.5)
    assert d.payoff((5, 0, 0)) == (2.5, 7.5, 7.5)


@pytest.mark.parametrize("spec, needle", [
    ("prisoners_dilemma?R=3&S=0&T=2&P=1", "T > R > P > S but T=2 > R=3 does not hold"),
    ("snowdrift?S=1&P=2", "S=1 > P=2 does not hold"),
    ("stag_hunt?X=1", "unknown key 'X'"),
    ("stag_hunt?R=high", "R='high' is not a number"),
    ("symmetric?R=1&S=2", "needs all of R, S, T, P"),
    ("matrix?row=1/2/3&col=1/2/3/4", "n*n payoffs"),
    ("matrix?row=1/2/3/4", "needs both row"),
    ("donation?multiplier=9", "1 < multiplier < n_players"),
    ("donation?endowment=2.5", "whole number"),
    ("pd?R=1", "unknown game family 'pd'"),
])
def test_bad_inline_specs_name_the_problem(spec: str, needle: str) -> None:
    from tomarena.envs.games import get_game
    from tomarena.errors import GameError

    with pytest.raises(GameError) as err:
        get_game(spec)
    assert needle in str(err.value)
