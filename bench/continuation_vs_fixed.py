"""Uncertain horizons (continuation) and noise vs the same number of fixed rounds, end to end (`run_config`).

Four classic strategies (tit-for-tat, always-defect, random, win-stay-lose-shift), every pair with self-play, on the
prisoner's dilemma: fixed 10,000 rounds vs continuation 0.9999 (10,000 rounds expected, max_rounds 200,000) vs the
same with 5% noise, 2 repetitions (1 with --quick); then the issue's case, tit-for-tat and always-defect alone.
Every run goes through `tomarena.app.api.run_config` into a temporary directory (resolve, play, Parquet shards,
summary CSVs), best of 3. Seconds are compared per decision, since a continuation run's length is drawn.
Guard: on a sample of continuation-and-noise matches the vectorised rows equal the general episode loop's (which
is what these runs took before: its env rebuilds every observation from the whole history each round, so its cost
grows with the square of the match length).
RATIO = continuation-with-noise seconds per decision / fixed-rounds seconds per decision (target <= 3).
"""

from __future__ import annotations

import tempfile
from typing import Any

from bench.common import guard, machine_info, parser, print_table, ratio_line, timed, write_result

NAME = "continuation_vs_fixed"
TARGET = 3.0
REPEATS = 3
ROUNDS = 10_000
POLICIES = ["classic/tit_for_tat", "classic/always_defect", "classic/random?p=0.5", "classic/win_stay_lose_shift"]
ISSUE = POLICIES[:2]


def run_tournament(policies: list[str], reps: int, **horizon: Any) -> tuple[int, float]:
    """Best of REPEATS end-to-end runs: (decisions stored, fastest seconds)."""
    from tomarena.app.api import run_config
    from tomarena.arena.config import validate_config
    from tomarena.arena.store import RunStore

    cfg = validate_config({"policies": policies, "repetitions": reps, "seed": 0, **horizon})
    with tempfile.TemporaryDirectory() as tmp:
        times, out = [], None
        for i in range(REPEATS):
            out, secs = timed(lambda i=i: run_config(cfg, f"{tmp}/run{i}", progress=False))
            times.append(secs)
        rows = sum(t.num_rows for t in RunStore(out).iter_tables(["round"]))
        return rows, min(times)


def rows_agree() -> bool:
    """Vectorised rows equal the general loop's on 20 continuation matches with noise (lengths up to 400)."""
    from tomarena.agents.resolve import resolve_policy
    from tomarena.arena.episode import MatchSpec, play_episodes
    from tomarena.arena.fast import play_vectorised
    from tomarena.arena.rows import rows_table
    from tomarena.schema import arrow_schema

    pols = {p: resolve_policy(p) for p in POLICIES}
    specs = [MatchSpec((a, b), "prisoners_dilemma", "none", r, None, 0.99, 400, 0.05)
             for i, a in enumerate(POLICIES) for b in POLICIES[i:] for r in range(2)]
    episodes = play_episodes(specs, pols, 7, "r")
    keys = [("episode_id", "ascending"), ("round", "ascending"), ("agent", "ascending")]
    slow = rows_table(r for s in specs for r in episodes[s.episode_id]).cast(arrow_schema(decoded=True))
    fast = play_vectorised(specs, pols, 7, "r").cast(arrow_schema(decoded=True))
    return fast.sort_by(keys).equals(slow.sort_by(keys))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/continuation_vs_fixed.json."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    reps = 1 if args.quick else 2
    guard(rows_agree(), "vectorised continuation+noise rows equal the general episode loop's (20 matches)")
    run_tournament(ISSUE, 1, rounds=10)  # warm: registries, pyarrow, pandas
    uncertain = {"continuation": 1 - 1 / ROUNDS, "max_rounds": 20 * ROUNDS}
    cases = [("fixed 10000 rounds", POLICIES, {"rounds": ROUNDS}),
             ("continuation 0.9999", POLICIES, uncertain),
             ("continuation 0.9999 + noise 0.05", POLICIES, {**uncertain, "noise": 0.05}),
             ("issue: tft vs alld, fixed 10000 rounds", ISSUE, {"rounds": ROUNDS}),
             ("issue: tft vs alld, continuation 0.9999", ISSUE, uncertain)]
    table = []
    for name, pols, horizon in cases:
        decisions, secs = run_tournament(pols, reps, **horizon)
        table.append({"run": name, "decisions": decisions, "seconds": secs, "us_per_decision": 1e6 * secs / decisions})
    base = table[0]["us_per_decision"]
    for row in table:
        row["vs_fixed"] = row["us_per_decision"] / base
    print_table(table, f"{len(POLICIES)} strategies with self-play, {reps} reps, end to end, best of {REPEATS}, "
                       f"on {machine_info()['cpu_model']}")
    ratio = table[2]["vs_fixed"]
    result = {"rounds": ROUNDS, "repetitions": reps, "quick": args.quick, "table": table, "ratio": ratio,
              "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET, lower_is_better=True)
    return result


if __name__ == "__main__":
    main()
