"""Run a tournament or a scenario sweep into a run directory: resolve policies, skip what is stored, play the
rest in chunks on the chosen executor, write each chunk as an atomic shard, then the summary tables."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tomarena.agents.base import Policy
from tomarena.agents.resolve import resolve_policy
from tomarena.arena.config import SCHEDULE, ExecutionSettings, RunConfig, build_specs
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
    decisions per chunk."""
    if cfg.executor == "ray" and cfg.concurrency:
        return max(1, min(cfg.chunk_size, -(-n_matches // cfg.concurrency)))
    light = policies is not None and not any(p.heavy for p in policies.values())
    if cfg.executor == "local" and light and "chunk_size" not in cfg.model_fields_set:
        rounds = cfg.rounds if cfg.continuation is None else min(cfg.max_rounds, round(1 / (1 - cfg.continuation)))
        return max(cfg.chunk_size, LIGHT_CHUNK_DECISIONS // (2 * rounds))
    return cfg.chunk_size


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
    `policies` plays Policy objects under labels of `cfg.policies`; every other label is resolved as a spec."""
    out = Path(out)
    labels = list(dict.fromkeys(cfg.policies))
    policies = resolve_policies(cfg, labels, policies or {})
    identities = seed_identities(policies)
    store = RunStore(out)
    config = cfg.model_dump(mode="json", exclude=EXECUTION_KEYS)
    store.open({"run_id": out.name, "kind": cfg.kind, "seed": cfg.seed, "config": config, "policies": labels,
                "roles": cfg.roles, "models": {k: p.describe() for k, p in policies.items()},
                "seed_keys": identities, "schedule": SCHEDULE if cfg.kind == "tournament" else None}, resume=resume)
    specs = build_specs(cfg, {g: get_game(g).n_players for g in cfg.games}, identities)
    columns = list(dict.fromkeys([*COUNT_COLUMNS, *(sink.columns if sink else ())]))
    counts: dict[str, int] = {}

    def take(table: Any) -> None:
        for key, value in _counts(table).items():
            counts[key] = counts.get(key, 0) + value
        if sink is not None:
            sink.add(table)

    done: set[str] = set()
    for table in store.iter_tables(columns):  # what a resumed run stored before
        done.update(table.column("episode_id").unique().to_pylist())
        take(table)
    todo = [s for s in specs if s.episode_id not in done]
    executor = _executor(cfg, policies)
    started = time.perf_counter()
    bar = _progress(len(specs), len(specs) - len(todo), cfg.kind, progress)
    decisions = 0
    try:
        for _, table in executor.run(chunks(todo, chunk_size(cfg, len(todo), policies)), cfg.seed, out.name):
            store.write_shard(table)
            take(table)
            decisions += table.num_rows
            bar.update(len(table.column("episode_id").unique()))
            bar.set_postfix(decisions=decisions)
    finally:
        bar.close()
        executor.close()
    if sink is not None:
        sink.finish(out)
    write_json_atomic(out / "summary.json", {  # last: its presence marks the run complete
        **counts, "backend_stats": _backend_stats(policies),
        "seconds_this_session": round(time.perf_counter() - started, 3),
    })
    return out


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


def _progress(total: int, initial: int, kind: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    unit = "match" if kind == "tournament" else "scenario-sample"
    return tqdm(total=total, initial=initial, unit=unit, desc=kind, disable=not enabled, dynamic_ncols=True)


def describe_run(out: Path) -> str:
    """One paragraph saying where the run is and what it holds."""
    summary = json.loads((out / "summary.json").read_text())
    return f"run {out}: {summary['episodes']} episodes, {summary['rows']} decisions, " \
           f"{summary['parse_failures']} parse failures, {summary['fallbacks']} fallbacks"
