"""Axelrod-strategy tournament vs the same-size classic tournament, end to end (`tomarena.app.api.run_config`).

Seven deterministic strategies as tomarena classic policies, and the same seven as Axelrod-library strategies
(`axelrod:TitForTat`, ...), every pair with self-play, 200 rounds, 10 repetitions (2 with --quick) on
prisoners_dilemma_axelrod. Both runs go through `tomarena.app.api.run_config` into a temporary directory (resolve, play,
Parquet shard, summary CSVs), best of 3, after one warm-up run that imports the Axelrod library; the
library's one-time import is timed separately in a fresh interpreter. Also shown: the issue's case (six classic
strategies plus one Axelrod strategy) and a stochastic Axelrod strategy, which takes the per-decision path.
Guard: the Axelrod tournament's mean payoff per turn equals the classic one's for every pair.
RATIO = Axelrod seconds / classic seconds (target <= 2).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import Any

from bench.common import guard, machine_info, parser, print_table, ratio_line, timed, write_result

NAME = "axelrod_library_vs_classic"
TARGET = 2.0
REPEATS = 3
GAME = "prisoners_dilemma_axelrod"
#: classic id -> its Axelrod twin (same moves, verified by the guard)
TWINS = {"tit_for_tat": "TitForTat", "always_cooperate": "Cooperator", "always_defect": "Defector",
         "grim_trigger": "Grudger", "win_stay_lose_shift": "WinStayLoseShift", "tit_for_two_tats": "TitFor2Tats",
         "alternator": "Alternator"}
CLASSIC = [f"classic/{k}" for k in TWINS]
AXELROD = [f"axelrod:{v}" for v in TWINS.values()]
MIXED = [*CLASSIC[:6], "axelrod:Gradual"]
STOCHASTIC = [*CLASSIC[:6], "axelrod:GTFT"]


def run_tournament(policies: list[str], turns: int, reps: int, n: int = REPEATS) -> tuple[Any, float]:
    """Best of n end-to-end runs: (trace frame of the last, fastest seconds)."""
    from tomarena.app.api import run_config as run
    from tomarena.arena.config import validate_config
    from tomarena.arena.store import RunStore

    cfg = validate_config({"policies": policies, "games": [GAME], "rounds": turns, "repetitions": reps, "seed": 0,
                           "chunk_size": 10_000})
    with tempfile.TemporaryDirectory() as tmp:
        times, out = [], None
        for i in range(n):
            out, secs = timed(lambda i=i: run(cfg, f"{tmp}/run{i}", progress=False))
            times.append(secs)
        return RunStore(out).read_frame(), min(times)


def pair_means(frame: Any) -> dict[tuple[str, str], tuple[float, float]]:
    """Mean payoff per turn of each strategy per pair (both orders), labels mapped to the classic names."""
    names = {**{c: c.removeprefix("classic/") for c in CLASSIC}, **{a: c for a, c in zip(AXELROD, TWINS, strict=True)}}
    frame = frame.assign(pair=frame["match_key"].str.split(" | ", regex=False).str[0])
    out = {}
    for pair, g in frame.groupby("pair"):
        a, b = (names[x] for x in pair.split(","))
        means = g.groupby("agent")["reward"].mean()
        out[(a, b)] = (float(means["player_0"]), float(means["player_1"]))
        out.setdefault((b, a), out[(a, b)][::-1])  # pairs are keyed by label order, which differs between runs
    return out


def cold_import_seconds() -> dict[str, float]:
    """Seconds to import the Axelrod library in a fresh interpreter: plain, and through the adapter."""
    code = ("import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)")
    out = {}
    for key, stmt in (("plain `import axelrod`", "import axelrod"),
                      ("adapter import_axelrod()",
                       "from tomarena.agents.strategies.axelrod_adapter import import_axelrod; import_axelrod()")):
        res = subprocess.run([sys.executable, "-c", code.format(stmt)], capture_output=True, text=True, check=True)
        out[key] = float(res.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/axelrod.json."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    turns, reps = 200, (2 if args.quick else 10)
    run_tournament([*AXELROD, "axelrod:GTFT"], 5, 1, n=1)  # warm: imports the library and the registries
    classic, t_classic = run_tournament(CLASSIC, turns, reps)
    axl, t_axl = run_tournament(AXELROD, turns, reps)
    _, t_mixed = run_tournament(MIXED, turns, reps)
    _, t_stoch = run_tournament(STOCHASTIC, turns, reps, n=1)
    base, got = pair_means(classic), pair_means(axl)
    guard(len(axl) == len(classic), f"same trace size ({len(classic)} rows)")
    bad = [k for k in base if got.get(k) != base[k]]
    n_pairs = len({frozenset(k) for k in base})
    guard(not bad, f"identical mean payoffs for all {n_pairs} pairs" + (f"; mismatches: {bad[:5]}" if bad else ""))
    turns_total = len(classic) // 2
    table = [{"tournament": name, "seconds": t, "turns_per_s": turns_total / t, "vs_classic": t / t_classic}
             for name, t in (("7 classic", t_classic), ("7 Axelrod twins (vectorised)", t_axl),
                             ("6 classic + axelrod:Gradual", t_mixed),
                             ("6 classic + axelrod:GTFT (stochastic, per decision; 1 run)", t_stoch))]
    print_table(table, f"{len(CLASSIC)} strategies, {turns} rounds, {reps} reps ({turns_total} turns), end to end, "
                       f"best of {REPEATS}, on {machine_info()['cpu_model']}")
    imports = cold_import_seconds()
    print_table([{"import": k, "seconds": v} for k, v in imports.items()], "one-time library import (fresh process)")
    result = {"turns": turns, "repetitions": reps, "quick": args.quick, "table": table, "import_seconds": imports,
              "ratio": t_axl / t_classic, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, t_axl / t_classic, TARGET, lower_is_better=True)
    return result


if __name__ == "__main__":
    main()
