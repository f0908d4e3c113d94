"""Run a tournament or a scenario sweep into a run directory: resolve policies, skip what is stored, play the
rest in chunks on the chosen executor, write each chunk as an atomic shard, then the summary tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomarena.arena.config import SCHEDULE, RunConfig, build_specs
from tomarena.arena.episode import MatchSpec
from tomarena.arena.store import RunStore
from tomarena.files import write_json_atomic

#: config keys that do not change results, so a run may be resumed with other values
EXECUTION_KEYS = {"executor", "ray_address", "workers", "chunk_size", "replicas", "concurrency", "max_batch",
                  "batch_wait_ms"}


def chunks(specs: list[MatchSpec], size: int) -> list[list[MatchSpec]]:
    """`specs` cut into consecutive chunks of at most `size` matches (one shard and one executor task each)."""
    return [specs[i: i + size] for i in range(0, len(specs), size)]


_chunks = chunks  # old name, removed once every caller uses `chunks`


def chunk_size(cfg: RunConfig, n_matches: int) -> int:
    """Matches per chunk: `chunk_size`, made smaller on Ray when `concurrency` is set so every slot gets a chunk."""
    if cfg.executor == "ray" and cfg.concurrency:
        return max(1, min(cfg.chunk_size, -(-n_matches // cfg.concurrency)))
    return cfg.chunk_size


def _backend_stats(policies: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for label, pol in policies.items():
        backend = getattr(pol, "backend", None)
        stats = getattr(backend, "stats", None)
        if stats:
            out[label] = dict(stats)
    return out


#: called with (run directory, run kind) once a run's traces are complete, before summary.json marks it so; the
#: top floor passes `analysis.summaries.write_summaries` (see `tomarena.api.run_config`): the arena knows no analysis
OnComplete = Callable[[Path, str], object]


def run(cfg: RunConfig, out: str | Path, resume: bool = False, progress: bool = True,
        on_complete: OnComplete | None = None) -> Path:
    """Play every match of `cfg` into the run directory `out` (resuming if asked), call `on_complete`, write
    summary.json (last, so its presence marks a complete run) and return the run's path."""
    from tomarena.agents.resolve import resolve_policy
    from tomarena.envs.games import get_game

    out = Path(out)
    labels = list(dict.fromkeys(cfg.policies))
    policies = {label: resolve_policy(label) for label in labels}
    store = RunStore(out)
    config = cfg.model_dump(mode="json", exclude=EXECUTION_KEYS)
    store.open({"run_id": out.name, "kind": cfg.kind, "seed": cfg.seed, "config": config, "policies": labels,
                "roles": cfg.roles, "models": {k: p.describe() for k, p in policies.items()},
                "schedule": SCHEDULE if cfg.kind == "tournament" else None}, resume=resume)
    specs = build_specs(cfg, {g: get_game(g).n_players for g in cfg.games})
    done = store.completed_episodes()
    todo = [s for s in specs if s.episode_id not in done]
    executor = _executor(cfg, policies)
    started = time.perf_counter()
    bar = _progress(len(specs), len(specs) - len(todo), cfg.kind, progress)
    decisions = 0
    try:
        for _, table in executor.run(chunks(todo, chunk_size(cfg, len(todo))), cfg.seed, out.name):
            store.write_shard(table)
            decisions += table.num_rows
            bar.update(len(table.column("episode_id").unique()))
            bar.set_postfix(decisions=decisions)
    finally:
        bar.close()
        executor.close()
    counts = _counts(store.read_columns(["episode_id", "parse_status", "source", "error"]))
    if on_complete is not None:
        on_complete(out, cfg.kind)
    write_json_atomic(out / "summary.json", {  # last: its presence marks the run complete
        **counts, "backend_stats": _backend_stats(policies),
        "seconds_this_session": round(time.perf_counter() - started, 3),
    })
    return out


def _counts(table: Any) -> dict[str, int]:
    """summary.json's counts from the stored episode_id, parse_status, source and error columns."""
    import pyarrow.compute as pc

    def n_equal(column: str, value: str) -> int:
        return int(pc.sum(pc.equal(table.column(column), value)).as_py() or 0)

    return {"episodes": len(table.column("episode_id").unique()), "rows": table.num_rows,
            "parse_failures": n_equal("parse_status", "failed"), "fallbacks": n_equal("source", "fallback"),
            "parse_defaults": n_equal("parse_status", "default"),  # study parser: no standalone D -> C
            "backend_errors": table.num_rows - table.column("error").null_count}


def _executor(cfg: RunConfig, policies: dict[str, Any]) -> Any:
    from tomarena.arena.executors import LocalExecutor, RayExecutor

    if cfg.executor == "ray":
        return RayExecutor(policies, cfg.ray_address, cfg.workers, replicas=cfg.replicas,
                           concurrency=cfg.concurrency, max_batch=cfg.max_batch, batch_wait_ms=cfg.batch_wait_ms)
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
