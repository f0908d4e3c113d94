"""Classic round-robin: tomarena's vectorised arena vs the Axelrod library's Match loop, same strategies.

Ten classic strategies, every pair (self-play included), 200 turns, 10 repetitions, on prisoners_dilemma_axelrod
(R=3, S=0, T=5, P=1, Axelrod's default game). Axelrod plays `axelrod.Match(...).play()` for the same pairs and
repetitions in this process, results kept in memory. tomarena's vectorised path, `arena.fast.play_vectorised`,
plays the same matches and returns the full trace table (one row per turn and seat) in memory: that is the
ratio. Also shown: its simulation step alone (`arena.fast._simulate`, no trace table) and the whole
`arena.runner.run` (resolve, play, Parquet shard, read-back, summary CSVs). Each timing is the best of 3.
A turn = one round of one match. Guard: identical mean payoff per turn for every pair of deterministic strategies.
"""

from __future__ import annotations

import itertools
import tempfile
from typing import Any

from bench.common import guard, machine_info, parser, print_table, ratio_line, timed, write_result

NAME = "classic"
TARGET = 10.0
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


def run_tomarena(cfg: Any) -> tuple[Any, float]:
    """End to end: arena.runner.run into a temporary directory; (trace frame, seconds)."""
    from tomarena.api import run_config as run
    from tomarena.arena.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        outs = iter(range(REPEATS))
        out, secs = best_of(lambda: run(cfg, f"{tmp}/classic{next(outs)}", progress=False))
        frame = RunStore(out).read_frame()
    return frame, secs


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
    _, sim = best_of(lambda: _simulate(specs, policies, cfg.rounds, seeds))
    return table.num_rows, secs, sim


def run_axelrod(turns: int, reps: int) -> tuple[dict[tuple[str, str], tuple[float, float]], float]:
    """Axelrod's Match loop over the same pairs: ({(a, b): mean score per turn of each}, seconds)."""
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

    return best_of(play)


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
    """Run the benchmark and write bench/results/classic.json."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    turns, reps = 200, (2 if args.quick else 10)
    cfg = tomarena_config(turns, reps)
    n_turns = len(list(itertools.combinations_with_replacement(STRATEGIES, 2))) * reps * turns
    run_tomarena(tomarena_config(5, 1))  # warm imports and registries outside the timing
    frame, t_e2e = run_tomarena(cfg)
    rows, t_core, t_sim = run_core(cfg)
    base, t_axl = run_axelrod(turns, reps)
    guard(rows == len(frame) == 2 * n_turns, f"{n_turns} turns -> {2 * n_turns} trace rows")
    check(tomarena_means(frame), base)
    table = [
        {"path": "axelrod.Match loop (results in memory)", "seconds": t_axl, "turns_per_s": n_turns / t_axl,
         "ratio": 1.0},
        {"path": "tomarena play_vectorised (trace table in memory)", "seconds": t_core,
         "turns_per_s": n_turns / t_core, "ratio": t_axl / t_core},
        {"path": "  of which the simulation (_simulate)", "seconds": t_sim, "turns_per_s": n_turns / t_sim,
         "ratio": t_axl / t_sim},
        {"path": "tomarena arena.runner.run (end to end, Parquet)", "seconds": t_e2e,
         "turns_per_s": n_turns / t_e2e, "ratio": t_axl / t_e2e},
    ]
    print_table(table, f"classic round-robin: {len(STRATEGIES)} strategies, {turns} turns, {reps} reps "
                       f"({n_turns} turns) on {machine_info()['cpu_model']}")
    print(f"ratio = Axelrod seconds / play_vectorised seconds (both in memory); end to end: {t_axl / t_e2e:.2f}x, "
          f"simulation alone: {t_axl / t_sim:.2f}x; best of {REPEATS} runs each")
    result = {"turns": turns, "repetitions": reps, "match_turns": n_turns, "quick": args.quick, "table": table,
              "ratio_end_to_end": t_axl / t_e2e, "ratio_core": t_axl / t_core, "ratio_simulation": t_axl / t_sim,
              "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, t_axl / t_core, TARGET)
    return result


if __name__ == "__main__":
    main()
