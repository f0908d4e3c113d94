"""Ray scaling: decisions/s of the model service on the simulated accelerator against matches in flight and replicas.

The device is `sim:flat` (agents/sim_backend.py, a benchmark device only): each forward of up to 64 prompts sleeps a
fixed latency, so throughput comes only from how many decisions reach one call. Tournament: the simulated model
against tit_for_tat, prisoners_dilemma, many repetitions; only the model's decisions are counted. Rows: today's Ray
executor (one synchronous actor, chunks of 64), and the model service (replicas 1 or 2) with 1, 8 and 64 matches in
flight (chunks of one match each), plus 128 in flight where one replica needs two forwards per round. Guard: every
run's trace rows equal the local executor's. RATIO: decisions/s at 64 matches over 1 match (target >= 10x); the
replica ratio (2 over 1 at 128 in flight, target >= 1.8x) is printed and stored too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.common import guard, parser, print_table, ratio_line, timed, write_result

NAME = "ray_scaling"
TARGET = 10.0


def settings(quick: bool, latency_ms: int) -> dict[str, Any]:
    """The tournament: the simulated model vs tit_for_tat, `reps` repetitions."""
    sim = f"sim:flat?latency_ms={latency_ms}&max_batch=64&p=0.7"
    return {"policies": [sim, "classic/tit_for_tat"], "self_play": False, "games": ["prisoners_dilemma"],
            "framings": ["business"], "rounds": 3 if quick else 5, "repetitions": 128, "seed": 0}


def run_one(cfg: dict[str, Any], out: Path) -> tuple[Any, float]:
    """(trace table, seconds of the executor's run only: actors and replicas are started before the clock)."""
    from tomarena.agents.resolve import resolve_policy
    from tomarena.arena.config import build_specs, validate_config
    from tomarena.arena.executors import LocalExecutor, RayExecutor
    from tomarena.arena.runner import _chunks, chunk_size

    c = validate_config(cfg)
    specs = build_specs(c, {"prisoners_dilemma": 2})
    pols = {p: resolve_policy(p) for p in c.policies}
    ex = LocalExecutor(pols) if c.executor == "local" else RayExecutor(
        pols, replicas=c.replicas, concurrency=c.concurrency, max_batch=c.max_batch)
    try:
        warm = list(ex.run(_chunks(specs[:2], 1), c.seed, "warm"))  # processes up, imports done
        assert warm
        out_ = timed(lambda: list(ex.run(_chunks(specs, chunk_size(c, len(specs))), c.seed, "r")))
    finally:
        ex.close()
    parts, secs = out_
    rows = [r for _, t in parts for r in t.drop_columns(["run_id"]).to_pylist()]
    return sorted(rows, key=lambda r: (r["episode_id"], r["round"], r["agent"])), secs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/ray_scaling.json."""
    from tomarena.arena.executors import ensure_ray

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    latency = 20 if args.quick else 50
    base = settings(args.quick, latency)
    ray = ensure_ray(None)
    cases = [("local executor (chunks of 64)", {"executor": "local"}),
             ("ray today: 1 sync actor, chunks of 64", {"executor": "ray"})]
    cases += [(f"service: {r} replica(s), {c} matches in flight", {"executor": "ray", "replicas": r,
               "concurrency": c, "chunk_size": 1, "max_batch": 64}) for r, c in
              [(1, 1), (1, 8), (1, 64), (1, 128), (2, 1), (2, 8), (2, 64), (2, 128)]]
    rows, tables = [], {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k, (name, extra) in enumerate(cases):
                table, secs = run_one({**base, **extra}, Path(tmp) / str(k))
                n = sum(1 for r in table if r["policy"].startswith("sim:"))
                tables[name] = table
                rows.append({"run": name, "seconds": secs, "model_decisions": n, "decisions_per_s": n / secs})
    finally:
        ray.shutdown()
    ref = tables[cases[0][0]]
    guard(all(t == ref for t in tables.values()), f"every run's {len(ref)} trace rows equal the local run's")
    rate = {r["run"]: r["decisions_per_s"] for r in rows}
    conc = rate["service: 1 replica(s), 64 matches in flight"] / rate["service: 1 replica(s), 1 matches in flight"]
    reps = rate["service: 2 replica(s), 128 matches in flight"] / rate["service: 1 replica(s), 128 matches in flight"]
    vs_today = rate["service: 1 replica(s), 64 matches in flight"] / rate["ray today: 1 sync actor, chunks of 64"]
    print_table(rows, f"sim:flat latency {latency} ms per forward of <= 64, {base['repetitions']} matches x "
                      f"{base['rounds']} rounds")
    print(f"replicas 2 vs 1 at 128 matches in flight: {reps:.2f}x (target >= 1.8x); service at 64 in flight vs "
          f"today's Ray executor: {vs_today:.2f}x")
    result = {"quick": args.quick, "config": base, "latency_ms": latency, "table": rows, "concurrency_ratio": conc,
              "replica_ratio": reps, "service_vs_today": vs_today, "ratio": conc, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, conc, TARGET)
    return result


if __name__ == "__main__":
    main()
