"""The vectorised classic path gives exactly the rows of the general episode function, through the one row spec."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.arena.episode import MatchSpec, play_episodes
from tomarena.arena.fast import play_vectorised, vectorisable
from tomarena.arena.rows import rows_table
from tomarena.schema import arrow_schema

LABELS = ["classic/tit_for_tat", "classic/random?p=0.3", "classic/win_stay_lose_shift",
          "classic/generous_tit_for_tat", "classic/grim_trigger", "classic/tit_for_two_tats",
          "classic/two_tits_for_tat", "classic/suspicious_tit_for_tat", "classic/alternator",
          "classic/memory_one?p=0.9,0.1,0.8,0.3"]
#: custom labels and an asymmetric table (row and column payoffs differ), through the generic matrix game
XY_GAME = "matrix?row=3/0/5/1&col=4/1/6/0&labels=X/Y"
LR_GAME = "matrix?row=2/0/3/1&col=2/3/0/1&labels=Left/Right"


def _sorted(table: pa.Table) -> pa.Table:
    return table.cast(arrow_schema(decoded=True)).sort_by(
        [("episode_id", "ascending"), ("round", "ascending"), ("agent", "ascending")])


def _general(specs: list[MatchSpec], pols: dict, seed: int) -> pa.Table:
    episodes = play_episodes(specs, pols, run_seed=seed, run_id="r")
    return rows_table(r for s in specs for r in episodes[s.episode_id])


def _assert_equal(fast: pa.Table, slow: pa.Table) -> None:
    fast, slow = _sorted(fast), _sorted(slow)
    assert fast.schema == slow.schema
    assert fast.num_rows == slow.num_rows
    for name in slow.column_names:
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name


@pytest.mark.parametrize("games", [("prisoners_dilemma", "stag_hunt"), (XY_GAME, LR_GAME, "prisoners_dilemma")])
def test_vectorised_rows_equal_general_rows(games: tuple[str, ...]) -> None:
    pols = {p: resolve_policy(p) for p in LABELS}
    specs = [MatchSpec((a, b), g, "none", r, 12) for i, a in enumerate(LABELS) for b in LABELS[i:]
             for g in games for r in range(2)]
    assert vectorisable(specs, pols)
    fast = play_vectorised(specs, pols, run_seed=3, run_id="r")
    assert fast.num_rows == len(specs) * 12 * 2
    _assert_equal(fast, _general(specs, pols, 3))


def test_custom_labels_are_recorded_on_the_vectorised_path() -> None:
    pols = {p: resolve_policy(p) for p in ("classic/always_cooperate", "classic/always_defect")}
    spec = MatchSpec(("classic/always_cooperate", "classic/always_defect"), XY_GAME, "none", 0, 3)
    table = play_vectorised([spec], pols, run_seed=0, run_id="r")
    assert set(zip(table.column("action").to_pylist(), table.column("action_label").to_pylist())) == {(0, "X"),
                                                                                                       (1, "Y")}
    assert table.column("reward").to_pylist() == [0.0, 1.0] * 3  # (row 0, col 1): r12 = 0, c12 = 1


def test_mixed_horizons_and_noise() -> None:
    """Several horizons in one chunk, and noisy matches (intended and executed actions differ), go through the
    vectorised path with the general path's rows and the game's labels."""
    pols = {p: resolve_policy(p) for p in LABELS[:4]}
    specs = [MatchSpec((a, b), g, "none", 0, rounds) for a in LABELS[:4] for b in LABELS[:4]
             for g, rounds in ((XY_GAME, 5), ("stag_hunt", 9))]
    _assert_equal(play_vectorised(specs, pols, run_seed=5, run_id="r"), _general(specs, pols, 5))
    noisy = [MatchSpec((a, b), XY_GAME, "none", 0, 6, noise=0.2) for a in LABELS[:4] for b in LABELS[:4]]
    assert vectorisable(noisy, pols)
    rows = play_vectorised(noisy, pols, run_seed=5, run_id="r")
    _assert_equal(rows, _general(noisy, pols, 5))
    assert set(rows.column("action_label").to_pylist()) == {"X", "Y"}
    assert rows.column("intended_action").to_pylist() != rows.column("action").to_pylist()


@pytest.mark.parametrize(("continuation", "max_rounds", "noise"), [(0.8, 1000, 0.0), (0.9, 7, 0.1), (0.0, 5, 0.3),
                                                                   (0.97, 1000, 1.0)])
def test_uncertain_horizons_equal_general_rows(continuation: float, max_rounds: int, noise: float) -> None:
    """Continuation (lengths drawn from the env's stream, cut at max_rounds), with and without noise: row for row
    the general path's, horizon null, matches of different lengths in one chunk."""
    pols = {p: resolve_policy(p) for p in LABELS}
    specs = [MatchSpec((a, b), g, "none", r, None, continuation, max_rounds, noise) for i, a in enumerate(LABELS)
             for b in LABELS[i:] for g in ("prisoners_dilemma", LR_GAME) for r in range(2)]
    assert vectorisable(specs, pols)
    fast = play_vectorised(specs, pols, run_seed=11, run_id="r")
    _assert_equal(fast, _general(specs, pols, 11))
    assert fast.column("horizon").null_count == fast.num_rows
    lengths = {e: n // 2 for e, n in zip(*_episode_sizes(fast))}
    assert max(lengths.values()) <= max_rounds and len(set(lengths.values())) > (continuation > 0)


def _episode_sizes(table: pa.Table) -> tuple[list[str], list[int]]:
    counts = table.column("episode_id").cast(pa.string()).value_counts()
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()


def test_env_draws_follow_the_envs_stream() -> None:
    """A match's length and flips are those SocialDilemmaEnv draws from its seed (noise per player, then whether
    another round follows)."""
    from tomarena.arena.fast import env_draws
    from tomarena.envs.social_dilemma import SocialDilemmaEnv

    spec = MatchSpec(("a", "b"), "prisoners_dilemma", "none", 0, None, 0.95, 1000, 0.25)
    length, flips = env_draws(spec, 2)
    env = SocialDilemmaEnv(game="prisoners_dilemma", continuation=0.95, max_rounds=1000, noise=0.25)
    env.reset(seed=2)
    played = []
    while env.agents:
        _, _, _, _, infos = env.step({"player_0": 0, "player_1": 0})
        played.append([infos[f"player_{i}"]["executed"] == 1 for i in (0, 1)])
    assert flips is not None and length == len(played) == 50 and flips.tolist() == played


def test_trace_tables_have_the_schema_and_dictionary_columns() -> None:
    pols = {p: resolve_policy(p) for p in LABELS[:2]}
    specs = [MatchSpec((LABELS[0], LABELS[1]), XY_GAME, "none", r, 4) for r in range(3)]
    fast = play_vectorised(specs, pols, run_seed=1, run_id="r")
    assert fast.schema == arrow_schema() == _general(specs, pols, 1).schema
    assert pa.types.is_dictionary(fast.schema.field("policy").type)
    assert fast.to_pandas()["action_label"].dtype == "category"
