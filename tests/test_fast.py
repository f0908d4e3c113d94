"""The vectorised classic path gives exactly the rows of the general episode function."""

from __future__ import annotations

import pyarrow as pa

from tomarena.agents.resolve import resolve_policy
from tomarena.arena.episode import MatchSpec, play_episodes
from tomarena.arena.fast import play_vectorised, vectorisable
from tomarena.schema import arrow_schema

LABELS = ["classic/tit_for_tat", "classic/random?p=0.3", "classic/win_stay_lose_shift",
          "classic/generous_tit_for_tat", "classic/grim_trigger", "classic/tit_for_two_tats",
          "classic/two_tits_for_tat", "classic/suspicious_tit_for_tat", "classic/alternator",
          "classic/memory_one?p=0.9,0.1,0.8,0.3"]


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("episode_id", "ascending"), ("round", "ascending"), ("agent", "ascending")])


def test_vectorised_rows_equal_general_rows():
    pols = {p: resolve_policy(p) for p in LABELS}
    specs = [MatchSpec((a, b), g, "none", r, 12) for i, a in enumerate(LABELS) for b in LABELS[i:]
             for g in ("prisoners_dilemma", "stag_hunt") for r in range(2)]
    assert vectorisable(specs, pols)
    fast = _sorted(play_vectorised(specs, pols, run_seed=3, run_id="r"))
    episodes = play_episodes(specs, pols, run_seed=3, run_id="r")
    slow = _sorted(pa.Table.from_pylist([r for s in specs for r in episodes[s.episode_id]], schema=arrow_schema()))
    assert fast.num_rows == slow.num_rows == len(specs) * 12 * 2
    for name in slow.column_names:
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name


def test_noise_and_llm_like_policies_take_the_general_path():
    pols = {p: resolve_policy(p) for p in LABELS[:2]}
    noisy = [MatchSpec(tuple(LABELS[:2]), "prisoners_dilemma", "none", 0, 5, noise=0.1)]
    assert not vectorisable(noisy, pols)
    pols["strategist/reference"] = resolve_policy("strategist/reference")
    mixed = [MatchSpec((LABELS[0], "strategist/reference"), "prisoners_dilemma", "none", 0, 5)]
    assert not vectorisable(mixed, pols)
