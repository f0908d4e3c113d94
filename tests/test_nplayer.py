"""n-player tournaments: every composition of the seats is played, rotated through the seats, so standings do not
depend on the order of --policies; per-composition and per-seat tables; cooperation in the donation game is the
share of the endowment given (issue 17, item 1)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tomarena.app.api import run_config as run
from tomarena.app.cli import main
from tomarena.arena.config import RunConfig, build_specs, compositions, seat_orders, validate_config
from tomarena.arena.store import RunStore

GIVE_ALL, GIVE_NONE = "classic/fixed_contributor?amount=10", "classic/fixed_contributor?amount=0"
COND = "classic/conditional_cooperator"
THREE = [GIVE_ALL, GIVE_NONE, COND]


def _tournament(tmp_path: Path, name: str, policies: list[str], rounds: int = 3) -> Path:
    out = tmp_path / name
    code = main(["tournament", "--policies", ",".join(policies), "--game", "donation", "--rounds", str(rounds),
                 "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_permuting_policies_gives_identical_standings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = [_tournament(tmp_path, f"p{i}", list(p)) for i, p in enumerate(itertools.permutations(THREE))]
    capsys.readouterr()
    first = pd.read_csv(runs[0] / "standings.csv")
    for out in runs[1:]:
        for name in ("standings.csv", "crossplay.csv", "compositions.csv", "seats.csv"):
            assert (out / name).read_text() == (runs[0] / name).read_text(), name
        # same matches with the same seeds, whatever the order: seeds derive from (run seed, match key, repetition)
        a, b = RunStore(runs[0]).read_frame(), RunStore(out).read_frame()
        pd.testing.assert_frame_equal(a.drop(columns="run_id"), b.drop(columns="run_id"))
    st = first.set_index("policy")
    # 15 groups of 4 seats from 3 policies: 3 of one policy (1 seat order each) + 12 mixed (4 rotations each) = 51
    # matches; each policy holds 68 of the 204 seats, 3 rounds each
    assert set(st["rounds_played"]) == {68 * 3} and set(st["games_played"]) == {37}
    assert list(st.index) == [GIVE_NONE, COND, GIVE_ALL]
    assert st["mean_payoff_per_round"].tolist() == pytest.approx([3236 / 204, 15.0, 2884 / 204])
    # every policy holds as many seat-rounds, so their mean is the mean payoff 10 + (2 - 1) * mean gift (5)
    assert st["mean_payoff_per_round"].mean() == pytest.approx(15.0)
    assert st["cooperation_rate"].tolist() == pytest.approx([0.0, 0.5, 1.0])  # share of the endowment given


def test_two_fixed_contributors_hand_computed(tmp_path: Path) -> None:
    # payoff = 10 - c + 2 * sum(c) / 4. Groups (k givers of 10, 4-k of 0): a giver gets 5k, a keeper 10 + 5k.
    # Seat orders: the 2 one-policy groups once, the 3 mixed groups in 4 rotations each.
    # giver:  (4*20 + 4*3*15 + 4*2*10 + 4*1*5) / (4 + 12 + 8 + 4) = 360 / 28
    # keeper: (4*1*25 + 4*2*20 + 4*3*15 + 4*10) / 28 = 480 / 28
    out = run(validate_config({"policies": [GIVE_NONE, GIVE_ALL], "games": ["donation"], "rounds": 2}),
              tmp_path / "r", progress=False)
    st = pd.read_csv(out / "standings.csv").set_index("policy")
    assert st.loc[GIVE_ALL, "mean_payoff_per_round"] == pytest.approx(360 / 28)
    assert st.loc[GIVE_NONE, "mean_payoff_per_round"] == pytest.approx(480 / 28)
    assert st.loc[GIVE_ALL, "rounds_played"] == st.loc[GIVE_NONE, "rounds_played"] == 28 * 2
    assert st.loc[GIVE_ALL, "cooperation_rate"] == 1.0 and st.loc[GIVE_NONE, "cooperation_rate"] == 0.0
    comp = pd.read_csv(out / "compositions.csv")
    row = comp[(comp["composition"] == f"1x {GIVE_NONE} + 3x {GIVE_ALL}") & (comp["policy"] == GIVE_NONE)].iloc[0]
    assert (row["seats"], row["matches"], row["rounds_played"], row["mean_payoff_per_round"]) == (1, 4, 8, 25.0)
    assert len(comp) == 1 + 3 * 2 + 1  # one row per (group, policy in it)
    seats = pd.read_csv(out / "seats.csv")
    assert len(seats) == 8 and set(seats["matches"]) == {1 + 3 + 2 + 1}  # giver: AAAA + 3 of 4 AAAZ rotations ...
    for _, g in seats.groupby("policy"):  # every seat holds each policy equally often, with the same payoff
        assert g["matches"].nunique() == 1 and g["mean_payoff_per_round"].nunique() == 1


def test_partial_contribution_is_the_share_of_the_endowment(tmp_path: Path) -> None:
    out = run(validate_config({"policies": ["classic/fixed_contributor?amount=7", GIVE_NONE], "games": ["donation"],
                               "rounds": 1}), tmp_path / "r", progress=False)
    st = pd.read_csv(out / "standings.csv").set_index("policy")
    assert st.loc["classic/fixed_contributor?amount=7", "cooperation_rate"] == pytest.approx(0.7)


def test_compositions_and_seat_orders() -> None:
    assert compositions(["b", "a"], 2) == [("a", "a"), ("a", "b"), ("b", "b")]
    assert compositions(["b", "a"], 2, self_play=False) == [("a", "b")]
    assert len(compositions(["c", "a", "b"], 4)) == 15 and len(compositions(["c", "a", "b"], 4, False)) == 12
    assert seat_orders(("a", "a", "b"), rotate=True) == [("a", "a", "b"), ("a", "b", "a"), ("b", "a", "a")]
    assert seat_orders(("a", "a", "a"), rotate=True) == [("a", "a", "a")]
    assert seat_orders(("a", "b"), rotate=False) == [("a", "b")]


def test_specs_are_balanced_and_independent_of_policy_order() -> None:
    for order in itertools.permutations(THREE):
        specs = build_specs(RunConfig(policies=list(order), games=["donation"], repetitions=2), {"donation": 4})
        assert [s.episode_id for s in specs] == [s.episode_id for s in build_specs(
            RunConfig(policies=THREE, games=["donation"], repetitions=2), {"donation": 4})]
    assert len(specs) == 51 * 2
    per_seat = Counter((seat, p) for s in specs for seat, p in enumerate(s.policies))
    assert set(per_seat.values()) == {17 * 2}  # each policy in each seat 17 times per repetition


def test_two_player_games_keep_one_order_unless_asymmetric() -> None:
    base = {"policies": ["classic/tit_for_tat", "classic/always_defect", "classic/always_cooperate"]}
    sym = build_specs(RunConfig(**base), {"prisoners_dilemma": 2})
    assert len(sym) == 6 and all(list(s.policies) == sorted(s.policies) for s in sym)
    asym = "matrix?row=3/0/5/1&col=3/5/0/2"
    specs = build_specs(RunConfig(**base, games=[asym]), {asym: 2})
    assert len(specs) == 3 + 3 * 2  # self-play once, each mixed pair in both seat orders


def test_run_scheduled_by_an_older_version_is_not_resumed(tmp_path: Path) -> None:
    import json

    from tomarena.errors import ConfigError

    cfg = validate_config({"policies": [GIVE_ALL, GIVE_NONE], "games": ["donation"], "rounds": 1})
    out = run(cfg, tmp_path / "r", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schedule"] == "compositions-rotated/1"
    del manifest["schedule"]  # as written before every composition was played
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="scheduled as None"):
        run(cfg, out, resume=True, progress=False)
