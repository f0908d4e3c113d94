"""Ray scaling: decisions/s of the model service on the simulated accelerator against matches in flight and replicas.

The device is `sim:flat` (agents/llm/sim_backend.py, a benchmark device only): each forward of up to 64 prompts sleeps
200 ms (100 ms with --quick). The device is the dominant cost: a decision costs ~0.9 ms of CPU in all processes
together (runner, replica, Ray calls; measured here), against >= 3.1 ms of device time per decision per replica
(200 ms / 64), so throughput comes from how many decisions reach one call and how many replicas make calls.
Tournament: the simulated model against tit_for_tat, prisoners_dilemma, 5 rounds (3 with --quick); only the
model's decisions are counted. Rows: the local executor and today's Ray executor (one synchronous actor), both
with chunks of 64 matches; the model service with 1 or 2 replicas and 1, 8, 64 and 256 matches in flight (chunks
of one match up to 8 in flight, then 8 or 16 chunks of 8 or 16 matches); then a one-shot sweep (4 framings x 256
samples) on the local executor, the model service and Ray Data, each timed from the executor's start (its actors'
start included), with the rate after the first chunk beside it (the steady rate of a long sweep). Guard: every
run's trace rows equal the local executor's for the same matches. RATIO: decisions/s at 64 matches in flight over 1
(target >= 10x); replicas 2 over 1 at 256 in flight (target >= 1.8x) is printed and stored too.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import guard, parser, print_table, ratio_line, write_result
from tomarena.agents.resolve import resolve_policy
from tomarena.arena.config import build_specs, validate_config
from tomarena.arena.executors import LocalExecutor, RayExecutor, ensure_ray
from tomarena.arena.runner import chunk_size, chunks

#: a benchmark row: (name, config keys, executor keys, matches played)
Case = tuple[str, dict[str, Any], dict[str, Any], int]
NAME = "ray_scaling"
TARGET = 10.0
REPLICA_TARGET = 1.8
#: (matches in flight, chunks in flight, matches per chunk, matches played)
IN_FLIGHT = [(1, 1, 1, 4), (8, 8, 1, 16), (64, 8, 8, 128), (256, 16, 16, 256)]
#: the sweep's rows: (name, config keys, executor keys, decisions); chunks of 64 one-shot decisions each
SERVICE2 = {"executor": "ray", "replicas": 2, "concurrency": 16}
SWEEP_CASES = [("sweep: local executor (chunks of 64)", {"executor": "local"}, {}, 1024),
               ("sweep: ray today: 1 sync actor", {"executor": "ray"}, {}, 1024),
               ("sweep: service, 2 replicas, 16 chunks in flight", SERVICE2, {"sweep_path": "service"}, 1024),
               ("sweep: Ray Data, 2 replica workers", SERVICE2, {"sweep_path": "ray_data"}, 1024)]


def settings(quick: bool, latency_ms: int) -> dict[str, Any]:
    """The tournament: the simulated model vs tit_for_tat, 256 repetitions."""
    sim = f"sim:flat?latency_ms={latency_ms}&max_batch=64&p=0.7"
    return {"policies": [sim, "classic/tit_for_tat"], "self_play": False, "games": ["prisoners_dilemma"],
            "framings": ["business"], "rounds": 3 if quick else 5, "repetitions": 256, "seed": 0}


def sweep_settings(latency_ms: int) -> dict[str, Any]:
    """The one-shot sweep: the simulated model, 4 framings x 256 samples."""
    return {"kind": "sweep", "policies": [f"sim:flat?latency_ms={latency_ms}&max_batch=64&p=0.7"],
            "games": ["prisoners_dilemma"], "framings": ["business", "friendsharing", "team", "none"],
            "samples": 256, "seed": 0}


def make_executor(cfg: Any, pols: dict[str, Any], **extra: Any) -> Any:
    """The run's executor, as arena.runner builds it (plus `extra` executor keys)."""
    if cfg.executor == "local":
        return LocalExecutor(pols)
    return RayExecutor(pols, workers=cfg.workers, replicas=cfg.replicas, concurrency=cfg.concurrency,
                       max_batch=cfg.max_batch, batch_wait_ms=cfg.batch_wait_ms, **extra)


def executor_for(c: Any, pols: dict[str, Any], extra: dict[str, Any], pool: dict[Any, Any] | None) -> Any:
    """A fresh executor, or (with `pool`) the warm one kept for this replica count, started with runner threads for
    the most chunks in flight of any case and set to this case's `concurrency`."""
    if pool is None or c.executor == "local" or not c.replicas:
        return make_executor(c, pols, **extra)
    if c.replicas not in pool:
        pool[c.replicas] = make_executor(c.model_copy(update={"concurrency": max(x[1] for x in IN_FLIGHT)}), pols)
        pool[c.replicas].start()  # runners sized for the most chunks in flight
    ex = pool[c.replicas]
    ex.concurrency = c.concurrency
    return ex


def run_one(cfg_dict: dict[str, Any], n_matches: int, warm: bool = True, extra: dict[str, Any] | None = None,
            pool: dict[Any, Any] | None = None) -> tuple[list[dict], float, float, Any]:
    """(sorted trace rows without run_id, seconds, seconds to the first chunk, first chunk's table) of the first
    `n_matches` matches. With `warm`, actors and runners are started by a two-match run before the clock (and
    service executors are kept in `pool` for the next case); without, the clock includes the executor's start."""
    c = validate_config(cfg_dict)
    specs = build_specs(c, {"prisoners_dilemma": 2})[:n_matches]
    pols = {p: resolve_policy(p) for p in c.policies}
    t0 = time.perf_counter()
    ex = executor_for(c, pols, extra or {}, pool if warm else None)
    try:
        if warm:
            assert list(ex.run(chunks(specs[:2], 1), c.seed, "warm"))  # processes up, imports done
            t0 = time.perf_counter()
        parts, first = [], None
        for part in ex.run(chunks(specs, chunk_size(c, len(specs))), c.seed, "r"):
            parts.append(part)
            first = first or time.perf_counter() - t0
        secs = time.perf_counter() - t0
    finally:
        if ex not in (pool or {}).values():
            ex.close()
    rows = [r for _, t in parts for r in t.drop_columns(["run_id"]).to_pylist()]
    return sorted(rows, key=lambda r: (r["episode_id"], r["round"], r["agent"])), secs, first or secs, parts[0][1]


def tournament_cases() -> list[Case]:
    """(row name, config keys, matches played) of the tournament rows."""
    cases = [("local executor (chunks of 64)", {"executor": "local"}, {}, 256),
             ("ray today: 1 sync actor, chunks of 64", {"executor": "ray"}, {}, 256)]
    for r in (1, 2):
        cases += [(f"service: {r} replica(s), {m} matches in flight", {
            "executor": "ray", "replicas": r, "concurrency": c, "chunk_size": size, "max_batch": 64}, {}, n)
            for m, c, size, n in IN_FLIGHT]
    return cases


def measure(cases: list[Case], base: dict[str, Any], ref: list[dict], warm: bool,
            model: str) -> list[dict[str, Any]]:
    """Run each case, guard its rows against the reference's rows for the same matches, and tabulate."""
    rows, pool = [], {}
    try:
        for name, keys, extra, n in cases:
            table, secs, first, first_table = run_one({**base, **keys}, n, warm, extra, pool)
            episodes = {r["episode_id"] for r in table}
            guard(table == [r for r in ref if r["episode_id"] in episodes], f"{name}: {len(table)} rows equal local's")
            k = sum(1 for r in table if r["policy"] == model)
            row = {"run": name, "seconds": secs, "model_decisions": k, "decisions_per_s": k / secs}
            if not warm:  # sweeps: when the first chunk came, and the rate after it (a long sweep's steady rate)
                k_first = sum(1 for p in first_table.column("policy").to_pylist() if p == model)
                row |= {"first_chunk_s": first, "after_first_per_s": (k - k_first) / max(secs - first, 1e-9)}
            rows.append(row)
    finally:
        for ex in pool.values():
            ex.close()
    return rows


def with_ratios(rows: list[dict[str, Any]], today: str) -> list[dict[str, Any]]:
    """Each row with its decisions/s over today's Ray executor's and the local executor's (the first row)."""
    rate = {r["run"]: r["decisions_per_s"] for r in rows}
    return [{**r, "vs_ray_today": r["decisions_per_s"] / rate[today], "vs_local": r["decisions_per_s"] /
             rows[0]["decisions_per_s"]} for r in rows]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/ray_scaling.json."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    latency = 100 if args.quick else 200
    base, sweep = settings(args.quick, latency), sweep_settings(latency)
    model = base["policies"][0]
    ray = ensure_ray(None)
    try:
        ref, *_ = run_one({**base, "executor": "local"}, 256, warm=False)
        tour = with_ratios(measure(tournament_cases(), base, ref, True, model), "ray today: 1 sync actor, chunks of 64")
        sweep_ref, *_ = run_one({**sweep, "executor": "local"}, 1024, warm=False)
        sweeps = with_ratios(measure(SWEEP_CASES, sweep, sweep_ref, False, model), SWEEP_CASES[1][0])
    finally:
        ray.shutdown()
    rate = {r["run"]: r["decisions_per_s"] for r in tour + sweeps}
    conc = rate["service: 1 replica(s), 64 matches in flight"] / rate["service: 1 replica(s), 1 matches in flight"]
    reps = rate["service: 2 replica(s), 256 matches in flight"] / rate["service: 1 replica(s), 256 matches in flight"]
    print_table(tour, f"sim:flat {latency} ms per forward of <= 64; {base['rounds']} rounds per match")
    print_table(sweeps, "one-shot sweep, 1024 decisions, timed from the executor's start (actors included)")
    print(f"replicas 2 vs 1 at 256 matches in flight: {reps:.2f}x (target >= {REPLICA_TARGET}x)")
    result = {"quick": args.quick, "config": base, "sweep_config": sweep, "latency_ms": latency, "table": tour,
              "sweep_table": sweeps, "concurrency_ratio": conc, "replica_ratio": reps,
              "replica_target": REPLICA_TARGET, "ratio": conc, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, conc, TARGET)
    return result


if __name__ == "__main__":
    main()
