"""Runs of any size (issue 25 items 5 and 6): matches stream from a plan of a few families, chunks are cut as the
run goes (smaller when matches are slow, so shards are saved often), an interrupted LLM run keeps its stored
matches and resumes to the uninterrupted run's traces, a big run is sized aloud before it starts and one whose
traces cannot fit on its disk is refused, and the summary sink's memory stops growing with repetitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tomarena.agents.base import Policy
from tomarena.agents.resolve import resolve_policy
from tomarena.app.api import run_config
from tomarena.app.cli import main
from tomarena.arena import sizing
from tomarena.arena.config import build_specs, iter_specs, spec_families, validate_config
from tomarena.arena.episode import MatchSpec
from tomarena.arena.executors import play_chunk
from tomarena.arena.runner import Chunker, Stored
from tomarena.arena.store import RunStore
from tomarena.errors import ConfigError

TFT, ALLD, RANDOM = "classic/tit_for_tat", "classic/always_defect", "classic/random"
SIM = "sim:flat?latency_ms=50"


# -- the plan streams --------------------------------------------------------------------------------------------------
def test_families_stream_the_same_matches_as_the_list() -> None:
    cfg = validate_config({"policies": [TFT, ALLD, RANDOM], "games": ["prisoners_dilemma", "stag_hunt"],
                           "repetitions": 4})
    families = spec_families(cfg, {"prisoners_dilemma": 2, "stag_hunt": 2})
    assert len(families) == 2 * 6 and {n for _, n in families} == {4}  # 6 pairs with self-play per game
    assert list(iter_specs(families)) == build_specs(cfg, {"prisoners_dilemma": 2, "stag_hunt": 2})


def test_a_hundred_million_repetitions_are_planned_without_a_spec_each() -> None:
    cfg = validate_config({"policies": [TFT, ALLD], "repetitions": 100_000_000})
    families = spec_families(cfg, {"prisoners_dilemma": 2})
    stored = Stored(families)
    assert (len(families), stored.total, stored.count) == (3, 300_000_000, 0)
    todo = stored.todo()
    assert [(s.policies, s.repetition) for s in (next(todo), next(todo))] == [((ALLD, ALLD), 0), ((ALLD, ALLD), 1)]


def test_stored_skips_what_a_run_directory_holds() -> None:
    cfg = validate_config({"policies": [TFT, ALLD], "repetitions": 10})
    families = spec_families(cfg, {"prisoners_dilemma": 2})
    stored = Stored(families)
    key = families[1][0].match_key
    stored.add([f"{key}#3", f"{key}#0", f"{key}#3", f"{key}#9", f"{key}#10", "other | game | none#1"])
    assert (stored.total, stored.count) == (30, 3)  # #10 is no planned repetition; the duplicate counts once
    todo = [(s.match_key, s.repetition) for s in stored.todo()]
    assert len(todo) == 27 and [r for k, r in todo if k == key] == [1, 2, 4, 5, 6, 7, 8]


# -- chunks cut by time ------------------------------------------------------------------------------------------------
def _specs(n: int, pair: tuple[str, str] = (TFT, ALLD)) -> list[MatchSpec]:
    return [MatchSpec(pair, "prisoners_dilemma", "none", r, 10) for r in range(n)]


def test_chunks_fit_the_measured_pace_into_save_every() -> None:
    chunker = Chunker(_specs(100), size=64, save_every=20.0, budget=0.0)  # work 1 per match
    sizes = []
    for chunk, seconds in zip(chunker, [8.0, 4.0, 10.0, 30.0, 5.0, 1.0, 1.0], strict=False):
        sizes.append(len(chunk))
        chunker.saved(seconds)
    # 1 match in 8 s: 2.5 fit; 2 in 4 s: 10; 10 in 10 s: 20; 20 in 30 s: 13.3; 13 in 5 s: 52; 52 in 1 s: 1040, but
    # work grows at most 8-fold and a chunk holds at most `size` matches; the rest is what is left
    assert sizes == [1, 2, 10, 20, 13, 52, 2]


def test_matches_that_cost_nothing_ride_along() -> None:
    """Only the slow policy's decisions count as work: free matches never make a chunk wait for a save."""
    specs = _specs(5, (TFT, TFT)) + _specs(6, (SIM, TFT)) + _specs(3, (SIM, SIM))
    chunker = Chunker(specs, size=64, save_every=20.0, cost=lambda s: 10.0 * s.policies.count(SIM), budget=0.0)
    chunks = iter(chunker)
    assert [s.policies for s in next(chunks)] == [(TFT, TFT)] * 5  # free: one chunk before the first costly one
    chunker.saved(0.01)  # no work: the budget stays at one costly match
    assert len(next(chunks)) == 1
    chunker.saved(5.0)  # 10 decisions in 5 s: 40 fit in 20 s
    assert [s.policies for s in next(chunks)] == [(SIM, TFT)] * 4
    chunker.saved(20.0)
    assert [s.policies for s in next(chunks)] == [(SIM, TFT), (SIM, SIM)]  # 10 + 20 = 30 of 40; the next is 20
    assert [len(c) for c in chunks] == [2]


def test_a_match_slower_than_save_every_is_still_one_chunk() -> None:
    assert [len(c) for c in Chunker(_specs(3), size=64)] == [3]  # not cut by time: `size` matches
    chunker = Chunker(_specs(3), size=64, save_every=20.0, budget=0.0)
    sizes = []
    for chunk in chunker:
        sizes.append(len(chunk))
        chunker.saved(95.0)
    assert sizes == [1, 1, 1]


def test_the_episode_loop_reports_each_rounds_decisions() -> None:
    pols = {p: resolve_policy(p) for p in ("strategist/reference", TFT)}
    heard: list[int] = []
    specs = [MatchSpec(("strategist/reference", TFT), "prisoners_dilemma", "none", r, 3) for r in range(2)]
    table = play_chunk(specs, pols, 0, "r", heard.append)
    assert heard == [4, 4, 4] and table.num_rows == 12


# -- Ctrl-C keeps the stored matches -----------------------------------------------------------------------------------
class StopAfter(Policy):
    """Plays like `inner` until it has made `after` decisions, then raises KeyboardInterrupt (a Ctrl-C)."""

    heavy = True

    def __init__(self, inner: Policy, after: int = 10**9, batch_invariant: bool | None = None) -> None:
        self.inner, self.after, self.made, self.id = inner, after, 0, inner.id
        self.batch_invariant = inner.batch_invariant if batch_invariant is None else batch_invariant

    def initial_state(self) -> Any:
        return self.inner.initial_state()

    def file_hashes(self) -> dict[str, str]:
        return self.inner.file_hashes()  # seeded by content, like the policy it wraps

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> Any:
        return self.act_batch([obs], [state], [rng])[0]

    def act_batch(self, observations: Any, states: Any, rngs: Any) -> Any:
        self.made += len(observations)
        if self.made > self.after:
            raise KeyboardInterrupt
        return self.inner.act_batch(observations, states, rngs)


@pytest.mark.parametrize("model", ["sim", "hf"])
def test_an_interrupted_llm_run_resumes_to_the_uninterrupted_traces(tmp_path: Path, model: str,
                                                                     request: pytest.FixtureRequest) -> None:
    """Chunks are cut by time (a local model scores one prompt per forward, so it is batch-invariant): the local
    model's cut run stores a match per chunk where the uninterrupted run played them in fewer, larger chunks, and
    its resumed traces are still the same bits."""
    spec = SIM if model == "sim" else f"hf:{request.getfixturevalue('tiny_model_dir')}?temperature=1.0"
    cfg = validate_config({"policies": [spec, TFT], "rounds": 4, "repetitions": 3, "seed": 5,
                           "save_every": 1e-6 if model == "hf" else 20.0})
    full = run_config(cfg.model_copy(update={"save_every": 20.0, "chunk_size": 64}), tmp_path / "full",
                      progress=False)
    cut = tmp_path / "cut"
    stopper = StopAfter(resolve_policy(spec), after=20)  # the first chunks are stored, a later one is cut off
    with pytest.raises(KeyboardInterrupt):
        run_config(cfg, cut, progress=False, policies={spec: stopper})
    store = RunStore(cut)
    kept = store.read_frame()["episode_id"].nunique()
    assert stopper.made > 20 and 1 <= kept < 9 and store.resumable() and not store.complete()
    run_config(cfg, cut, resume=True, progress=False)
    a, b = RunStore(full).read_frame(), RunStore(cut).read_frame()
    assert len(b) == 9 * 4 * 2 and not b.duplicated(["episode_id", "round", "agent"]).any()
    cols = [c for c in a.columns if c != "run_id"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert (cut / "standings.csv").read_text() == (full / "standings.csv").read_text()
    if model == "hf":
        assert len(list(RunStore(full).iter_tables(["round"]))) < len(list(store.iter_tables(["round"])))


@pytest.mark.parametrize(("invariant", "shard_sizes"), [(True, [2] + [1] * 7), (False, [2, 2, 2, 2, 1])])
def test_chunks_are_cut_by_time_only_for_batch_invariant_models(tmp_path: Path, invariant: bool,
                                                                  shard_sizes: list[int]) -> None:
    """A model whose decisions depend on their batch keeps --chunk-size whatever the clock says, so its results
    never depend on timing; a batch-invariant one is cut to fit save_every (here: one match with the model per
    shard; the three classic self-play matches cost nothing and fill chunks of two)."""
    cfg = validate_config({"policies": [SIM, TFT], "rounds": 2, "repetitions": 3, "chunk_size": 2,
                           "save_every": 1e-6})
    sim = StopAfter(resolve_policy(SIM), batch_invariant=invariant)
    store = RunStore(run_config(cfg, tmp_path / "r", progress=False, policies={SIM: sim}))
    sizes = [len(t.column("episode_id").unique()) for t in store.iter_tables(["episode_id"])]
    assert sorted(sizes, reverse=True) == shard_sizes


# -- sizing ------------------------------------------------------------------------------------------------------------
def test_estimate_of_a_classic_run() -> None:
    cfg = validate_config({"policies": [TFT, ALLD], "repetitions": 1000})
    pols = {p: resolve_policy(p) for p in (TFT, ALLD)}
    est = sizing.estimate(spec_families(cfg, {"prisoners_dilemma": 2}), pols, chunk_matches=20_000)
    assert (est.matches, est.decisions, est.engine, est.disk_bytes) == (3000, 60_000, "vectorised", 120_000)
    assert est.seconds == pytest.approx(60_000 * 1.5e-6 + 3000 * 6e-5) and not est.big
    assert sizing.describe(est, 10**9) == ("run size: 3,000 matches, about 60,000 decisions (vectorised engine); "
                                           "about 120 kB of traces (1 GB free), memory about 286 MB (one chunk at "
                                           "a time), about 0.27 s")


def test_estimate_of_an_llm_run_with_continuation() -> None:
    cfg = validate_config({"policies": [SIM, TFT], "continuation": 0.5, "max_rounds": 3, "self_play": False})
    pols = {p: resolve_policy(p) for p in (SIM, TFT)}
    est = sizing.estimate(spec_families(cfg, {"prisoners_dilemma": 2}), pols, chunk_matches=64)
    # one match, E[min(geometric(1/2), 3)] = 1 + 1/2 + 1/4 rounds, two seats
    assert (est.matches, est.decisions, est.engine, est.seconds, est.big) == (1, 3.5, "llm", None, True)
    assert "time unknown until the first shard" in sizing.describe(est, 10**9)


def test_truncation_by_max_rounds_is_said() -> None:
    spec = MatchSpec((TFT, ALLD), "prisoners_dilemma", "none", 0, None, 0.9999, 1000)
    assert sizing.truncation_note(spec) == ("continuation 0.9999 means 10,000 rounds per match on average, but "
                                            "max_rounds 1000 ends 90% of matches there; raise --max-rounds to let "
                                            "them run")
    assert sizing.truncation_note(MatchSpec((TFT, ALLD), "prisoners_dilemma", "none", 0, None, 0.9, 1000)) is None


def test_a_run_that_cannot_fit_its_disk_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "huge"
    code = main(["tournament", "--policies", f"{TFT},{ALLD}", "--repetitions", str(10**13), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and not out.exists()
    assert err.startswith("tomarena: error: this run would write about 1.2 PB of traces (600 trillion decisions "
                          f"in 30 trillion matches), but the disk of {out} has ")
    assert err.endswith("free; run fewer repetitions, rounds or policies, or choose an --out on a larger disk; "
                        f"removed {out}, which this run had created\n")


def test_big_runs_are_sized_aloud_before_they_start(tmp_path: Path, capsys) -> None:
    code = main(["tournament", "--policies", f"{TFT},{ALLD}", "--repetitions", "20000", "--rounds", "20",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0
    assert err.startswith("run size: 60,000 matches, about 2.4 million decisions (vectorised engine); about "
                          "4.8 MB of traces (")
    assert "measured: " in err and " B per decision on disk; the remaining " in err


def test_a_batch_dependent_model_is_told_which_chunk_size_saves_in_time() -> None:
    assert sizing.describe_fixed(["hf:m"], 64, 300.0, 64, 20.0) == (
        "hf:m decide differently in another batch, so chunks keep 64 matches (results never depend on timing): a "
        "shard every 5 min at this pace; --chunk-size 4 would save about every 20 s")


def test_check_disk_allows_up_to_twice_the_free_space() -> None:
    est = sizing.Estimate(10, 1e9, "vectorised", 2e9, 1e8, 1.0)
    sizing.check_disk(est, Path("/x"), 10**9)  # the estimate may be twice the truth
    with pytest.raises(ConfigError, match=r"^this run would write about 2 GB of traces \(1 billion decisions in 10 "
                                          r"matches\), but the disk of /x has 999 MB free; "):
        sizing.check_disk(est, Path("/x"), 999 * 10**6)


# -- the summary sink's memory -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("policies", "game"), [
    ([TFT, RANDOM, ALLD], "prisoners_dilemma"),
    (["classic/fixed_contributor?amount=10", "classic/fixed_contributor?amount=0", "classic/conditional_cooperator"],
     "donation"),
])
def test_compacted_seat_results_give_the_same_tables(tmp_path: Path, policies: list[str], game: str) -> None:
    from tomarena.analysis import tournament
    from tomarena.analysis.summaries import SummarySink, summary_tables

    cfg = validate_config({"policies": policies, "games": [game], "framings": ["none", "business"], "rounds": 3,
                           "repetitions": 5, "chunk_size": 7})
    out = run_config(cfg, tmp_path / "r", progress=False)
    store = RunStore(out)
    whole = summary_tables(tournament.prepare(store.read_frame()), "tournament")
    sink = SummarySink("tournament")
    import tomarena.analysis.summaries as summaries

    summaries.COMPACT_ROWS, limit = 10, summaries.COMPACT_ROWS
    try:
        for table in store.iter_tables(sink.columns):
            sink.add(table)
    finally:
        summaries.COMPACT_ROWS = limit
    seat_rows = sum(len(tournament.prepare(t.to_pandas())) for t in store.iter_tables(sink.columns))
    held = sum(len(p) for p in sink._parts)
    assert held < seat_rows / 2  # 5 repetitions of each seating merge into one row per seat (plus the last shard)
    for name, table in sink.tables().items():
        pd.testing.assert_frame_equal(table, whole[name], check_dtype=False)
