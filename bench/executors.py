"""Executors: the same tournament (and sweep) on `executor: local` and `executor: ray`; Ray's overhead as ray / local.

Tournament: the embedded SmolLM2 (exact scoring, letter protocol) against itself and three classic strategies
(tit_for_tat, always_defect, win_stay_lose_shift), the classics against each other, prisoners_dilemma in the
business framing (--quick) or three framings and ten rounds (a ~30 s local run, long enough that
Ray's fixed start-up cost, a worker process importing torch and loading the model, is amortised as in real use).
Both runs go through `arena.runner.run` with the same chunk size (two chunks), so every batch of
LLM decisions has the same composition. Local: chunks one after another in this process. Ray: a local Ray session
started beforehand (timed separately, not in the ratio, as a cluster one joins would be), the model in one actor
(loaded inside the timed run, as the local run loads it inside its run), chunks as Ray tasks, at most `workers`
at once. Model service: the model in one replica actor, two chunks in flight in a runner actor. Then a one-shot
sweep of the model alone (chunks of 16): local, today's Ray executor, and the model service's sweep path (Ray Data,
one worker holding the model). Guard: every run's trace rows equal the local run's (every column but run_id,
actions and probs included).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import guard, machine_info, parser, print_table, ratio_line, timed, write_result
from tomarena.agents.resolve import resolve_policy
from tomarena.arena.config import validate_config
from tomarena.arena.executors import ensure_ray
from tomarena.arena.runner import run
from tomarena.arena.store import RunStore

NAME = "executors"
TARGET = 1.3
LLM = "llm/smollm2-135m-instruct"
CLASSICS = ["classic/tit_for_tat", "classic/always_defect", "classic/win_stay_lose_shift"]


def config_dict(quick: bool) -> dict[str, Any]:
    """The tournament's settings (without the executor keys)."""
    policies = [LLM, *CLASSICS]
    reps = 1 if quick else 2
    matches = len(policies) * (len(policies) + 1) // 2 * reps
    framings = ["business"] if quick else ["business", "friendsharing", "team"]
    matches *= len(framings)
    return {"policies": policies, "games": ["prisoners_dilemma"], "framings": framings,
            "rounds": 3 if quick else 10, "repetitions": reps, "seed": 0, "chunk_size": math.ceil(matches / 2)}


def sweep_dict(quick: bool) -> dict[str, Any]:
    """The one-shot sweep's settings: the embedded model alone, 2 or 4 framings x 16 samples, chunks of 16."""
    framings = ["business", "friendsharing"] + ([] if quick else ["team", "none"])
    return {"kind": "sweep", "policies": [LLM], "games": ["prisoners_dilemma"], "framings": framings,
            "samples": 16, "seed": 0, "chunk_size": 16}


def cases(tournament: dict[str, Any], sweep: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(row name, settings, executor keys) of every run: local, today's Ray executor and the model service (one
    replica; for the sweep, Ray Data with one replica worker)."""
    service = {"executor": "ray", "replicas": 1, "concurrency": 2}
    return [("local", tournament, {"executor": "local"}), ("ray", tournament, {"executor": "ray"}),
            ("ray model service (1 replica, 2 chunks in flight)", tournament, service),
            ("sweep local", sweep, {"executor": "local"}), ("sweep ray", sweep, {"executor": "ray"}),
            ("sweep ray data (1 replica worker)", sweep, service)]


def run_one(settings: dict[str, Any], out: Path) -> tuple[Any, float]:
    """One run through arena.runner.run: (trace table without run_id, seconds)."""
    cfg = validate_config(settings)
    _, secs = timed(lambda: run(cfg, out, progress=False))
    return RunStore(out).read_table().drop_columns(["run_id"]), secs


def compare(a: Any, b: Any) -> dict[str, Any]:
    """Guard: the two trace tables are equal, row for row and column for column."""
    same_cols = [c for c in a.column_names if a.column(c).equals(b.column(c))]
    pa_, pb = (np.array([p if p is not None else [np.nan, np.nan] for p in t.column("probs").to_pylist()])
               for t in (a, b))
    diff = float(np.nanmax(np.abs(pa_ - pb))) if pa_.shape == pb.shape and pa_.size else float("nan")
    guard(a.num_rows == b.num_rows > 0 and a.equals(b),
          f"identical trace rows from local and ray ({a.num_rows} rows; max |probs diff| {diff:.1e}; "
          f"differing columns: {sorted(set(a.column_names) - set(same_cols)) or 'none'})")
    return {"rows": a.num_rows, "max_abs_probs_diff": diff}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/executors.json."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = config_dict(args.quick)
    resolve_policy(LLM).backend.load()  # converts the GGUF if needed and warms the page cache; not timed
    ray, t_init = timed(lambda: ensure_ray(None))
    workers = int(ray.available_resources().get("CPU", 1))
    sweep = sweep_dict(args.quick)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_one({**settings, "rounds": 1, "policies": CLASSICS}, Path(tmp) / "warm")  # imports, registries
            runs = {name: run_one({**cfg, **keys}, Path(tmp) / str(k))
                    for k, (name, cfg, keys) in enumerate(cases(settings, sweep))}
    finally:
        ray.shutdown()
    t_local, t_ray = runs["local"][1], runs["ray"][1]
    check = {name: compare(runs["sweep local" if name.startswith("sweep") else "local"][0], t)
             for name, (t, _) in runs.items() if name not in ("local", "sweep local")}
    cores = os.cpu_count()
    table = [{"executor": name, "seconds": secs, "decisions": t.num_rows,
              "llm_decisions": sum(1 for p in t.column("policy").to_pylist() if p == LLM),
              "ratio_vs_local": secs / runs["sweep local" if name.startswith("sweep") else "local"][1],
              "ratio_vs_ray_today": secs / runs["sweep ray" if name.startswith("sweep") else "ray"][1]}
             for name, (t, secs) in runs.items()]
    table.append({"executor": "ray.init (once per session, not in the ratios)", "seconds": t_init})
    print_table(table, f"tournament: {settings['rounds']} rounds x {settings['repetitions']} reps of a "
                       f"{len(settings['policies'])}-policy round-robin, chunk size {settings['chunk_size']}; sweep: "
                       f"{len(sweep['framings'])} framings x {sweep['samples']} samples, chunk size "
                       f"{sweep['chunk_size']} ({machine_info()['cpu_model']}, {cores} cores)")
    print(f"scaling: this machine has {cores} cores, so Ray has {workers} task slots and the one model actor (or "
          "replica) shares them with the driver, the raylet and the chunk workers; with one CPU-bound model the "
          "best Ray can do here is stay close to the local time. Gains need several replicas on their own cores or "
          "GPUs (a cluster via ray_address).")
    ratio = t_ray / t_local
    result = {"quick": args.quick, "config": settings, "cores": cores, "ray_task_slots": workers,
              "sweep_config": sweep, "seconds": {"local": t_local, "ray": t_ray, "ray_init": t_init},
              "table": table, "guard": check,
              "ratio": ratio, "target": TARGET, "lower_is_better": True}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET, lower_is_better=True)
    return result


if __name__ == "__main__":
    main()
