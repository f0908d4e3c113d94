"""Classic round-robin through the `tomarena` command line, end to end, vs the Axelrod library's Match loop.

Ten classic strategies, every pair (self-play included), 200 turns x 100 repetitions (1.1 M turns; --quick: 10
repetitions) on prisoners_dilemma_axelrod (R=3, S=0, T=5, P=1, Axelrod's default game). Axelrod plays
`axelrod.Match(...).play()` for the same pairs and repetitions in this process, results kept in memory (its
import not timed). tomarena runs `tomarena tournament ...` as a fresh process with default settings: start-up,
imports, play, Parquet shards, summary CSVs. The two alternate, so both see the same load; best of 2 each. That
ratio is the RATIO line. Also shown: tomarena's vectorised play in memory (`arena.fast.play_vectorised`, the trace
table) and its simulation step alone, in this process, best of 3. Guard: identical mean payoff per turn for every
pair of deterministic strategies, read from the command's stored traces.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import guard, machine_info, parser, print_table, ratio_line, timed, write_result

NAME = "classic_cli_vs_axelrod"
TARGET = 3.0
#: tomarena id -> Axelrod class name
STRATEGIES = {
    "tit_for_tat": "TitForTat", "always_cooperate": "Cooperator", "always_defect": "Defector",
    "grim_trigger": "Grudger", "win_stay_lose_shift": "WinStayLoseShift", "tit_for_two_tats": "TitFor2Tats",
    "two_tits_for_tat": "TwoTitsForTat", "suspicious_tit_for_tat": "SuspiciousTitForTat",
    "alternator": "Alternator", "random": "Random",
}
STOCHASTIC = {"random"}
REPEATS = 3
GAME = "prisoners_dilemma_axelrod"


def tomarena_config(turns: int, reps: int) -> Any:
    """The RunConfig of the round-robin."""
    from tomarena.arena.config import validate_config

    return validate_config({"policies": [f"classic/{k}" for k in STRATEGIES], "games": [GAME], "rounds": turns,
                            "repetitions": reps, "seed": 0, "chunk_size": 10_000})


def cli_command(out: str, turns: int, reps: int) -> list[str]:
    """The `tomarena tournament` command of the round-robin, default settings, into `out`."""
    return [sys.executable, "-m", "tomarena.app.cli", "tournament", "--policies",
            ",".join(f"classic/{k}" for k in STRATEGIES), "--game", GAME, "--rounds", str(turns), "--repetitions",
            str(reps), "--seed", "0", "--out", out, "--no-progress"]


def run_cli(out: str, turns: int, reps: int) -> float:
    """Wall seconds of one `tomarena tournament` process (a failure is a guard failure)."""
    t0 = time.perf_counter()
    res = subprocess.run(cli_command(out, turns, reps), capture_output=True, text=True, check=False)
    secs = time.perf_counter() - t0
    guard(res.returncode == 0, f"`tomarena tournament` exits 0 ({res.stderr.strip()[-300:]})")
    return secs


def best_of(fn: Any, n: int = REPEATS) -> tuple[Any, float]:
    """(result of the last call, fastest wall seconds) over n calls."""
    runs = [timed(fn) for _ in range(n)]
    return runs[-1][0], min(t for _, t in runs)


def run_core(cfg: Any) -> tuple[int, float, float]:
    """The vectorised path in memory: (trace rows, seconds with the trace table, seconds of the simulation alone)."""
    import numpy as np

    from tomarena.agents.resolve import resolve_policy
    from tomarena.arena.config import build_specs
    from tomarena.arena.episode import derive_seed
    from tomarena.arena.fast import _simulate, play_vectorised, vectorisable

    policies = {p: resolve_policy(p) for p in cfg.policies}
    specs = build_specs(cfg, {GAME: 2})
    guard(vectorisable(specs, policies), "the classic round-robin takes the vectorised path")
    table, secs = best_of(lambda: play_vectorised(specs, policies, cfg.seed, "bench"))
    seeds = np.array([derive_seed(cfg.seed, s.match_key, s.repetition) for s in specs], dtype=np.int64)
    lengths = np.full(len(specs), cfg.rounds, dtype=np.int64)
    _, sim = best_of(lambda: _simulate(specs, policies, lengths, seeds, [None] * len(specs)))
    return table.num_rows, secs, sim


def axelrod_loop(turns: int, reps: int) -> Any:
    """A function playing Axelrod's Match loop over every pair: {(a, b): mean score per turn of each}."""
    import axelrod as axl

    game = axl.Game(r=3, s=0, t=5, p=1)
    pairs = list(itertools.combinations_with_replacement(STRATEGIES, 2))

    def play() -> dict[tuple[str, str], tuple[float, float]]:
        out = {}
        for a, b in pairs:
            totals = [0.0, 0.0]
            for rep in range(reps):
                players = (getattr(axl, STRATEGIES[a])(), getattr(axl, STRATEGIES[b])())
                match = axl.Match(players, turns=turns, game=game, seed=rep)
                match.play()
                s = match.final_score_per_turn()
                totals[0] += s[0]
                totals[1] += s[1]
            out[(a, b)] = (totals[0] / reps, totals[1] / reps)
        return out

    return play


def tomarena_means(frame: Any) -> dict[tuple[str, str], tuple[float, float]]:
    """Mean payoff per turn of each seat, per (seat-0 strategy, seat-1 strategy)."""
    out = {}
    frame = frame.assign(pair=frame["match_key"].str.split(" | ", regex=False).str[0])
    for pair, g in frame.groupby("pair"):
        a, b = (x.removeprefix("classic/") for x in pair.split(","))
        means = g.groupby("agent")["reward"].mean()
        out[(a, b)] = (float(means["player_0"]), float(means["player_1"]))
    return out


def check(fast: dict, base: dict) -> None:
    """Guard: identical mean payoffs for every deterministic pair."""
    det = [k for k in base if not (set(k) & STOCHASTIC)]
    # tomarena seats each composition in its own (sorted) order: look the pair up either way round
    seated = {**{(b, a): (y, x) for (a, b), (x, y) in fast.items()}, **fast}
    bad = [(k, seated.get(k), base[k]) for k in det
           if seated.get(k) is None or max(abs(x - y) for x, y in zip(seated[k], base[k])) > 1e-12]
    guard(not bad, f"mean payoffs identical for all {len(det)} deterministic pairs" +
          (f"; mismatches: {bad[:5]}" if bad else ""))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/classic_cli_vs_axelrod.json."""
    from tomarena.arena.store import RunStore

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    turns, reps = 200, (10 if args.quick else 100)
    n_turns = len(list(itertools.combinations_with_replacement(STRATEGIES, 2))) * reps * turns
    play_axelrod = axelrod_loop(turns, reps)
    t_cli, t_axl, base = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):  # alternate, so that both see the same load
            t_cli.append(run_cli(f"{tmp}/run{i}", turns, reps))
            base, secs = timed(play_axelrod)
            t_axl.append(secs)
        frame = RunStore(f"{tmp}/run0").read_frame()
    guard(len(frame) == 2 * n_turns, f"{n_turns} turns -> {2 * n_turns} trace rows")
    check(tomarena_means(frame), base)
    rows, t_core, t_sim = run_core(tomarena_config(turns, reps))
    cli, axl_s = min(t_cli), min(t_axl)
    table = [
        {"path": "axelrod.Match loop (in memory, import not timed)", "seconds": axl_s,
         "turns_per_s": n_turns / axl_s, "ratio": 1.0},
        {"path": "tomarena tournament (CLI process: start-up, play, Parquet, CSVs)", "seconds": cli,
         "turns_per_s": n_turns / cli, "ratio": axl_s / cli},
        {"path": "  in memory: play_vectorised (trace table)", "seconds": t_core, "turns_per_s": n_turns / t_core,
         "ratio": axl_s / t_core},
        {"path": "  in memory: its simulation alone", "seconds": t_sim, "turns_per_s": n_turns / t_sim,
         "ratio": axl_s / t_sim},
    ]
    print_table(table, f"classic round-robin: {len(STRATEGIES)} strategies, {turns} turns, {reps} reps "
                       f"({n_turns} turns) on {machine_info()['cpu_model']}")
    print(f"ratio = Axelrod seconds / tomarena seconds; CLI runs {[round(t, 2) for t in t_cli]} s, Axelrod runs "
          f"{[round(t, 2) for t in t_axl]} s (best of 2 each, alternated)")
    result = {"turns": turns, "repetitions": reps, "match_turns": n_turns, "quick": args.quick, "table": table,
              "ratio_cli_end_to_end": axl_s / cli, "ratio_core": axl_s / t_core, "ratio_simulation": axl_s / t_sim,
              "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, axl_s / cli, TARGET)
    return result


if __name__ == "__main__":
    main()
