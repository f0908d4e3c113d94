"""Run a tournament or a scenario sweep into a run directory: resolve policies, skip what is stored, play the
rest in chunks on the chosen executor, write each chunk as an atomic shard, then the summary tables."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tomarena.agents.base import Policy
from tomarena.agents.resolve import resolve_policy
from tomarena.arena import sizing
from tomarena.arena.config import SCHEDULE, ExecutionSettings, RunConfig, spec_families
from tomarena.arena.episode import MatchSpec
from tomarena.arena.executors import LocalExecutor, RayExecutor
from tomarena.arena.identity import seed_identities
from tomarena.arena.store import RunStore
from tomarena.envs.games import get_game
from tomarena.errors import ConfigError
from tomarena.files import write_json_atomic

#: config keys that do not change results, so a run may be resumed with other values
EXECUTION_KEYS = set(ExecutionSettings.model_fields)


def chunks(specs: list[MatchSpec], size: int) -> list[list[MatchSpec]]:
    """`specs` cut into consecutive chunks of at most `size` matches (one shard and one executor task each)."""
    return [specs[i: i + size] for i in range(0, len(specs), size)]


#: decisions per chunk a local run of light (rule-based) policies aims at when `chunk_size` is not set: batches
#: sized for models would cut a fast classic tournament into hundreds of small shards, each written and synced
LIGHT_CHUNK_DECISIONS = 400_000


def chunk_size(cfg: RunConfig, n_matches: int, policies: dict[str, Any] | None = None) -> int:
    """Matches per chunk: `chunk_size`, made smaller on Ray when `concurrency` is set so every slot gets a chunk;
    on the local executor, when `chunk_size` was not set and no policy is heavy, about LIGHT_CHUNK_DECISIONS
    decisions per chunk. (Chunks may be cut smaller still to save every `save_every` seconds: `Chunker`.)"""
    if cfg.executor == "ray" and cfg.concurrency:
        return max(1, min(cfg.chunk_size, -(-n_matches // cfg.concurrency)))
    light = policies is not None and not any(p.heavy for p in policies.values())
    if cfg.executor == "local" and light and "chunk_size" not in cfg.model_fields_set:
        rounds = cfg.rounds if cfg.continuation is None else min(cfg.max_rounds, round(1 / (1 - cfg.continuation)))
        return max(cfg.chunk_size, LIGHT_CHUNK_DECISIONS // (2 * rounds))
    return cfg.chunk_size


#: most a chunk's work grows from one chunk to the next while it is fitted to `save_every` (a first chunk's pace
#: includes loading the model; batching makes larger chunks cheaper per decision, so growth is stepped, not guessed)
GROWTH = 8


class Chunker:
    """The matches still to play, cut into chunks only as the executor asks for the next one: at most `size`
    matches, and at most `budget` units of work, where `cost` says what a match costs (its expected decisions by
    slow policies). With `save_every` set, each save measures the seconds per unit and sets the budget to what fits
    into `save_every` seconds, so slow matches are stored often and an interrupted run loses little; a match is
    never split, and matches that cost nothing ride along."""

    def __init__(self, specs: Iterable[MatchSpec], size: int, save_every: float | None = None,
                 cost: Callable[[MatchSpec], float] = lambda spec: 1.0, budget: float = math.inf) -> None:
        self.specs, self.size, self.save_every, self.cost = iter(specs), size, save_every, cost
        self.budget = budget
        self.spent: list[float] = []  # the work of each chunk handed out and not yet saved

    def __iter__(self) -> Iterator[list[MatchSpec]]:
        chunk: list[MatchSpec] = []
        work = 0.0
        for spec in self.specs:
            c = self.cost(spec)
            if chunk and (len(chunk) >= self.size or work + c > self.budget):
                self.spent.append(work)
                yield chunk
                chunk, work = [], 0.0
            chunk.append(spec)
            work += c
        if chunk:
            self.spent.append(work)
            yield chunk

    def saved(self, seconds: float) -> float:
        """Fit the budget of the next chunks to a save that came `seconds` after the previous one (saves come back
        in the order chunks were handed out on the local executor; on Ray, in about that order); returns the
        saved chunk's work."""
        work = self.spent.pop(0) if self.spent else 0.0
        if self.save_every is None or work <= 0 or seconds <= 0:
            return work
        grown = GROWTH * (max(work, self.budget) if math.isfinite(self.budget) else work)
        self.budget = min(self.save_every * work / seconds, grown)
        return work


class Stored:
    """Which repetitions of each planned match a run directory holds already (one bit each, so resuming a run of
    a billion matches needs about 125 MB, not a set of a billion episode ids)."""

    def __init__(self, families: Sequence[tuple[MatchSpec, int]]) -> None:
        self.families = families
        self.reps = {first.match_key: n for first, n in families}
        self.bits: dict[str, np.ndarray] = {}
        self.count = 0

    @property
    def total(self) -> int:
        """Matches the run plans."""
        return sum(self.reps.values())

    def add(self, episode_ids: Iterable[str]) -> None:
        """Mark stored episodes (`match_key#repetition`); ids of other runs' matches are ignored."""
        by_key: dict[str, list[int]] = {}
        for eid in episode_ids:
            key, _, rep = eid.rpartition("#")
            if key in self.reps and rep.isdigit() and int(rep) < self.reps[key]:
                by_key.setdefault(key, []).append(int(rep))
        for key, reps in by_key.items():
            bits = self.bits.setdefault(key, np.zeros((self.reps[key] + 7) // 8, dtype=np.uint8))
            r = np.unique(np.array(reps, dtype=np.int64))
            mask = (128 >> (r & 7)).astype(np.uint8)  # bit order of np.packbits: repetition 8k is the high bit
            self.count += int(np.count_nonzero((bits[r >> 3] & mask) == 0))
            np.bitwise_or.at(bits, r >> 3, mask)

    def todo(self) -> Iterator[MatchSpec]:
        """Every planned match not stored, in plan order, one at a time."""
        for first, n in self.families:
            bits = self.bits.get(first.match_key)
            for start in range(0, n, 1 << 20):  # a block of repetitions at a time
                stop = min(n, start + (1 << 20))
                if bits is None:
                    missing: Iterable[int] = range(start, stop)
                else:
                    block = np.unpackbits(bits[start >> 3: (stop + 7) >> 3])[: stop - start]
                    missing = (start + np.flatnonzero(block == 0)).tolist()
                for rep in missing:
                    yield dataclasses.replace(first, repetition=rep)


def _backend_stats(policies: Mapping[str, Policy]) -> dict[str, Any]:
    """Each policy's work counters (`Policy.stats`), for those that keep any."""
    return {label: stats for label, pol in policies.items() if (stats := pol.stats())}


class RunSink(Protocol):
    """Receives every stored table of a run once (old shards on resume, then each new one as it is written) and
    is finished before summary.json marks the run complete. The top floor passes
    `analysis.summaries.SummarySink` (see `tomarena.app.api.run_config`): the arena itself knows no analysis."""

    #: trace columns the sink reads
    columns: Sequence[str]

    def add(self, table: Any) -> None:
        """Take one stored table (a pyarrow Table of at least `columns`)."""

    def finish(self, out: Path) -> None:
        """Write what the sink made of the run's tables under the run directory `out`."""


#: the columns summary.json counts
COUNT_COLUMNS = ("episode_id", "parse_status", "source", "error")


def run(cfg: RunConfig, out: str | Path, resume: bool = False, progress: bool = True,
        sink: RunSink | None = None, policies: Mapping[str, Policy] | None = None) -> Path:
    """Play every match of `cfg` into the run directory `out` (resuming if asked), feed every stored table to
    `sink` and finish it, write summary.json (last, so its presence marks a complete run); returns the path.
    `policies` plays Policy objects under labels of `cfg.policies`; every other label is resolved as a spec.
    Matches stream from the plan chunk by chunk (memory does not grow with the run); a big run is sized aloud
    first and one whose traces cannot fit on its disk is refused. An interrupt (Ctrl-C) keeps every stored shard,
    so `resume` continues from there."""
    out = Path(out)
    labels = list(dict.fromkeys(cfg.policies))
    policies = resolve_policies(cfg, labels, policies or {})
    identities = seed_identities(policies)
    store = RunStore(out)
    config = cfg.model_dump(mode="json", exclude=EXECUTION_KEYS)
    store.open({"run_id": out.name, "kind": cfg.kind, "seed": cfg.seed, "config": config, "policies": labels,
                "roles": cfg.roles, "models": {k: p.describe() for k, p in policies.items()},
                "seed_keys": identities, "schedule": SCHEDULE if cfg.kind == "tournament" else None}, resume=resume)
    families = spec_families(cfg, {g: get_game(g).n_players for g in cfg.games}, identities)
    columns = list(dict.fromkeys([*COUNT_COLUMNS, *(sink.columns if sink else ())]))
    counts: dict[str, int] = {}

    def take(table: Any) -> None:
        for key, value in _counts(table).items():
            counts[key] = counts.get(key, 0) + value
        if sink is not None:
            sink.add(table)

    stored = Stored(families)
    for table in store.iter_tables(columns):  # what a resumed run stored before
        stored.add(table.column("episode_id").unique().to_pylist())
        take(table)
    started = time.perf_counter()
    chunker, bar = _pace(cfg, policies, families, stored, out, progress)
    try:
        executor = _executor(cfg, policies)
    except BaseException:
        bar.close()
        raise
    _play(executor, chunker, store, take, cfg, out.name, bar)
    if sink is not None:
        sink.finish(out)
    write_json_atomic(out / "summary.json", {  # last: its presence marks the run complete
        **counts, "backend_stats": _backend_stats(policies),
        "seconds_this_session": round(time.perf_counter() - started, 3),
    })
    return out


def _pace(cfg: RunConfig, policies: Mapping[str, Policy], families: Sequence[tuple[MatchSpec, int]],
          stored: Stored, out: Path, progress: bool) -> tuple[Chunker, _Progress]:
    """Size the matches left (refusing a run whose traces cannot fit on its disk), then how they are cut into
    chunks and how progress is shown."""
    left = stored.total - stored.count
    size = chunk_size(cfg, left, policies)
    est = sizing.estimate(families, policies, size, left)
    free = sizing.free_bytes(out)
    sizing.check_disk(est, out, free)
    # a chunk is the batch its matches' decisions are made in: cut by time only when no heavy policy decides
    # differently in another batch (a local model's padded batches differ in the last bits), so results never
    # depend on timing
    variant = [label for label, p in policies.items() if p.heavy and not p.batch_invariant]
    heavy = {label for label, p in policies.items() if p.heavy}
    chunker = _chunker(stored.todo(), size, cfg, lambda spec: sizing.work(spec, heavy), est,
                       timed=not variant and cfg.executor == "local")
    work = sum(n * sizing.work(first, heavy) for first, n in families) * (left / stored.total if left else 0.0)
    bar = _Progress(stored.total, stored.count, cfg.kind, progress, est, free, families[0][0] if families else None,
                    work, (variant, size, cfg.save_every))
    return chunker, bar


def _chunker(specs: Iterable[MatchSpec], size: int, cfg: RunConfig, cost: Callable[[MatchSpec], float],
             est: sizing.Estimate, timed: bool) -> Chunker:
    """Chunks of at most `size` matches whose work is `cost` (sizing.work), cut by time when `timed` (local runs
    whose heavy policies decide the same in any batch; on Ray, `chunk_size` and `concurrency` say how work is
    spread). The first chunk holds one costly match when an LLM plays (its pace is unknown), as much work as the
    estimate fits into `save_every` on the episode loop, else `size` matches."""
    if not timed:
        return Chunker(specs, size, cost=cost)
    budget = math.inf
    if est.seconds is None:
        budget = 0.0  # one costly match (those that cost nothing ride along)
    elif est.engine == "rule" and est.seconds > 0:
        budget = cfg.save_every * est.decisions / est.seconds
    return Chunker(specs, size, cfg.save_every, cost, budget)


def _play(executor: Any, chunker: Chunker, store: RunStore, take: Callable[[Any], None], cfg: RunConfig,
          run_id: str, bar: _Progress) -> None:
    """Play the chunks, storing each as a shard when it comes back and telling the chunker how long it took."""
    last = time.perf_counter()
    try:
        for _, table in executor.run(chunker, cfg.seed, run_id, bar.decided):
            path = store.write_shard(table)
            take(table)
            matches = len(table.column("episode_id").unique())
            now = time.perf_counter()
            work = chunker.saved(now - last)
            bar.saved(matches, table.num_rows, path.stat().st_size if path else 0, work, now - last)
            last = now
    finally:
        bar.close()
        executor.close()


class _Progress:
    """The run's progress bar (matches stored, decisions made) and its size lines: the estimate before a big run,
    the measured pace once the first shard with slow work is stored (and, when chunks keep their size for a model
    that decides differently in another batch, which chunk size would save in time)."""

    def __init__(self, total: int, initial: int, kind: str, enabled: bool, est: sizing.Estimate, free: int,
                 first: MatchSpec | None, work: float, fixed: tuple[list[str], int, float]) -> None:
        from tqdm.auto import tqdm

        self.enabled, self.est, self.work_left, self.fixed = enabled, est, work, fixed
        self.started = time.perf_counter()
        self.decisions = self.rows = self.bytes = 0
        self.work, self.refreshed, self.told = 0.0, 0.0, False
        notes = [sizing.describe(est, free)] if est.big else []
        notes += [sizing.truncation_note(first)] if first is not None else []
        for note in notes if enabled else []:
            if note:
                print(note, file=sys.stderr, flush=True)
        unit = "match" if kind == "tournament" else "scenario-sample"
        self.bar = tqdm(total=total, initial=initial, unit=unit, desc=kind, disable=not enabled, dynamic_ncols=True)

    def decided(self, n: int) -> None:
        """Count one round's decisions (shown at most twice a second)."""
        self.decisions += n
        now = time.perf_counter()
        if self.enabled and now - self.refreshed >= 0.5:
            self.bar.set_postfix(decisions=self.decisions)
            self.refreshed = now

    def saved(self, matches: int, rows: int, nbytes: int, work: float, seconds: float) -> None:
        """Advance by a shard of `matches` stored `seconds` after the previous one."""
        self.rows, self.bytes, self.work = self.rows + rows, self.bytes + nbytes, self.work + work
        self.decisions = max(self.decisions, self.rows)
        self.bar.update(matches)
        self.bar.set_postfix(decisions=self.decisions)
        if not self.enabled or self.told or work <= 0:
            return
        self.told = True
        elapsed = time.perf_counter() - self.started
        if self.est.big:
            left = max(0.0, self.est.decisions - self.rows)
            self.bar.write(sizing.describe_pace(self.rows, elapsed, self.bytes, left,
                                                elapsed * max(0.0, self.work_left - self.work) / self.work),
                           file=sys.stderr)
        variant, size, save_every = self.fixed
        if variant and seconds > save_every:
            self.bar.write(sizing.describe_fixed(variant, size, seconds, matches, save_every), file=sys.stderr)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def resolve_policies(cfg: RunConfig, labels: list[str], given: Mapping[str, Policy]) -> dict[str, Policy]:
    """The run's policy of every label: the given object, else the spec the label is; ConfigError for an object
    under no label of the run, or a heavy object on Ray (whose actors rebuild heavy policies from their spec)."""
    unknown = [label for label in given if label not in labels]
    if unknown:
        raise ConfigError(f"policy objects given under {', '.join(map(repr, unknown))}, which the run does not "
                          f"play; its policies are {', '.join(map(repr, labels))}")
    heavy = [label for label, pol in given.items() if pol.heavy]
    if cfg.executor == "ray" and heavy:
        raise ConfigError(f"heavy policies given as objects ({', '.join(heavy)}) cannot run on Ray, whose actors "
                          "rebuild them from a spec; pass their spec strings or use executor='local'")
    return {label: given[label] if label in given else resolve_policy(label) for label in labels}


def _counts(table: Any) -> dict[str, int]:
    """summary.json's counts of one stored table (episodes never span tables, so counts of tables add up)."""
    import pyarrow.compute as pc

    def n_equal(column: str, value: str) -> int:
        return int(pc.sum(pc.equal(table.column(column), value)).as_py() or 0)

    # an answer that did not parse, whether a fixed ("failed") or a scored ("fallback") fallback then chose; a
    # request that failed in the backend is a backend error, not a parse failure
    status = table.column("parse_status")
    unparsed = pc.and_(pc.or_(pc.equal(status, "failed"), pc.equal(status, "fallback")),
                       pc.is_null(table.column("error")))
    return {"episodes": len(table.column("episode_id").unique()), "rows": table.num_rows,
            "parse_failures": int(pc.sum(unparsed).as_py() or 0),
            "fallbacks": n_equal("source", "fallback"),
            "parse_defaults": n_equal("parse_status", "default"),  # study parser: no standalone D -> C
            "backend_errors": table.num_rows - table.column("error").null_count}


def _executor(cfg: RunConfig, policies: dict[str, Any]) -> Any:
    if cfg.executor == "ray":
        return RayExecutor(policies, cfg.ray_address, cfg.workers, replicas=cfg.replicas,
                           concurrency=cfg.concurrency, max_batch=cfg.max_batch, batch_wait_ms=cfg.batch_wait_ms,
                           num_cpus=cfg.replica_cpus, num_gpus=cfg.replica_gpus, sweep_path=cfg.sweep_path)
    return LocalExecutor(policies)


def describe_run(out: Path) -> str:
    """One paragraph saying where the run is and what it holds."""
    summary = json.loads((out / "summary.json").read_text())
    return f"run {out}: {summary['episodes']} episodes, {summary['rows']} decisions, " \
           f"{summary['parse_failures']} parse failures, {summary['fallbacks']} fallbacks"
