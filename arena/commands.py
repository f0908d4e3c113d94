"""Arena sub-commands: `tournament`, `sweep`, `play` and `traces export`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tomarena.errors import ConfigError

SETS_HELP = ("named scenario sets expand on either axis: in_sample (the 4 study games / the 5 in-sample framings), "
             "oos_games (the doubled games), oos_framings (sports, roomsharing, ventcap), all")


#: RunConfig's defaults as --help shows them (kept here so --help does not import pydantic; a test compares them)
HELP_DEFAULTS = {"games": "prisoners_dilemma", "framings": "none", "seed": "0", "executor": "local",
                 "chunk_size": "64", "rounds": "10", "max_rounds": "1000", "repetitions": "1", "noise": "0.0"}


def _default(key: str) -> str:
    """The RunConfig default of `key`, as --help shows it."""
    return HELP_DEFAULTS[key]


def _run_flags(p: argparse.ArgumentParser, kind: str) -> None:
    d = _default
    p.add_argument("--config", type=Path, help="YAML file with any of the settings below (flags override it)")
    p.add_argument("--policies", action="append",
                   help="comma list of policy ids or inline specs (classic/tit_for_tat, strategist/reference, "
                   "llm/smollm2-135m-instruct, hf:PATH?adapter=DIR, openai:URL?model=NAME, axelrod:Grudger); "
                   "repeatable; required here or in --config")
    p.add_argument("--game", "--games", dest="games", action="append",
                   help=f"game ids (see `tomarena list games`) or scenario sets; comma list or repeatable; {SETS_HELP} "
                   f"(default: {d('games')})")
    p.add_argument("--framing", "--framings", dest="framings", action="append",
                   help="framing ids (see `tomarena list framings`) or scenario sets (as for --game); comma list or "
                   f"repeatable (default: {d('framings')})")
    p.add_argument("--seed", type=int, help=f"run seed; every match's seed derives from it (default: {d('seed')})")
    p.add_argument("--executor", choices=["local", "ray"], help=f"where matches run (default: {d('executor')})")
    p.add_argument("--ray-address", help="join this Ray cluster instead of starting a local session")
    p.add_argument("--workers", type=int, help="Ray: chunks in flight at once (default: the cluster's CPUs)")
    p.add_argument("--chunk-size", type=int,
                   help=f"matches per batch and per stored shard (default: {d('chunk_size')})")
    p.add_argument("--out", type=Path, required=True, help="run directory to create (or resume)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if kind == "tournament":
        p.add_argument("--rounds", type=int, help=f"rounds per match (fixed horizon; default: {d('rounds')})")
        p.add_argument("--continuation", type=float,
                       help="probability of another round after each one, in [0,1): uncertain horizon "
                       "(default: none, fixed horizon)")
        p.add_argument("--max-rounds", type=int,
                       help=f"cap on rounds with --continuation (default: {d('max_rounds')})")
        p.add_argument("--repetitions", type=int, help=f"repetitions of every match (default: {d('repetitions')})")
        p.add_argument("--noise", type=float,
                       help=f"probability that an action is flipped (trembling hand; default: {d('noise')})")
        p.add_argument("--self-play", action=argparse.BooleanOptionalAction, default=None,
                       help="include groups of one policy only (each policy against itself; default: yes)")
    else:
        p.add_argument("--samples", type=int,
                       help="sampled answers per scenario (default: none = exact scoring, one decision per scenario)")


def _overrides(args: argparse.Namespace, kind: str) -> dict:
    keys = ["policies", "games", "framings", "seed", "executor", "ray_address", "workers", "chunk_size"]
    keys += ["rounds", "continuation", "max_rounds", "repetitions", "noise", "self_play"] if kind == "tournament" \
        else ["samples"]
    out = {k: getattr(args, k, None) for k in keys}
    out["kind"] = kind
    return out


def _run(args: argparse.Namespace, kind: str) -> int:
    from tomarena.api import run_config
    from tomarena.arena.config import load_config
    from tomarena.arena.runner import describe_run

    cfg = load_config(args.config, _overrides(args, kind))
    if "policies" not in cfg.model_fields_set:
        raise ConfigError("no policies given; pass --policies or set `policies:` in --config")
    out = run_config(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(describe_run(out))
    import pandas as pd

    if kind == "tournament":
        print(pd.read_csv(out / "standings.csv").to_string(index=False))
        print(f"per composition and per seat: {out / 'compositions.csv'}, {out / 'seats.csv'}")
        return 0
    tables = {n: pd.read_csv(out / f"{n}.csv") for n in ("propensities", "donations") if (out / f"{n}.csv").is_file()}
    for name, table in tables.items():
        if len(table) or len(tables) == 1:
            print(f"{name} ({out / f'{name}.csv'}):")
            print(short_table(table))
    return 0


#: columns of a propensity / donation table printed at the end of a sweep
SHORT_COLUMNS = ["model", "game", "framing", "p_cooperate", "mean_contribution", "ci_low", "ci_high", "other_mass",
                 "n_invalid"]


def short_table(table: Any, max_rows: int = 40) -> str:
    """A sweep's table as text: the key columns to 3 decimals, at most `max_rows` rows (then a count of the rest)."""
    if table.empty:
        return "  (no scenarios)"
    cols = [c for c in SHORT_COLUMNS if c in table.columns]
    text = table[cols].head(max_rows).to_string(index=False, float_format=lambda x: f"{x:.3f}")
    more = len(table) - max_rows
    return text + (f"\n  ... {more} more rows in the CSV" if more > 0 else "")


def _play(args: argparse.Namespace) -> int:
    from tomarena.agents.resolve import resolve_policy
    from tomarena.arena.config import validate_config
    from tomarena.arena.episode import MatchSpec, play_episode

    cfg = validate_config({"policies": [args.a, args.b], "games": [args.game], "framings": [args.framing],
                           "rounds": args.rounds, "seed": args.seed, "noise": args.noise})
    pols = {p: resolve_policy(p) for p in dict.fromkeys(cfg.policies)}
    rows = play_episode(MatchSpec((args.a, args.b), args.game, args.framing, 0, cfg.rounds, noise=cfg.noise),
                        pols, cfg.seed)
    print(f"{args.game} in framing {args.framing}: {args.a} (player_0) vs {args.b} (player_1)")
    for r in rows:
        p = "" if r["p_cooperate"] is None else f"  p(C)={r['p_cooperate']:.3f}"
        print(f"round {r['round'] + 1:>3} {r['agent']}: {r['action_label']}  +{r['reward']:g} "
              f"(total {r['cumulative_reward']:g}){p}")
        if args.show_text and r["completion"]:
            print("    " + r["completion"].replace("\n", "\n    "))
    return 0


def _split(values: list[str] | None) -> list[str]:
    return [x.strip() for item in values or [] for x in item.split(",") if x.strip()]


def _rounds(values: list[str] | None) -> list[int]:
    try:
        return [int(x) for x in _split(values)]
    except ValueError as exc:
        raise ConfigError(f"--rounds takes round indices (integers from 0), got {values}") from exc


def _export(args: argparse.Namespace) -> int:
    from tomarena.arena.export import export_traces

    n = export_traces(args.run, args.policy, args.out, parse_ok_only=not args.include_failed,
                      games=_split(args.games), framings=_split(args.framings),
                      rounds=_rounds(args.rounds), max_per_scenario=args.max_per_scenario)
    print(f"wrote {n} examples to {args.out} and {Path(args.out).with_suffix('.parquet')}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the arena's sub-commands to the `tomarena` parser."""
    t = sub.add_parser("tournament", help="round-robin of policies in repeated games, stored as traces",
                       description="Play every group of policies (with or without self-play) in every game x framing, "
                       "repeated, into a run directory: traces/*.parquet, manifest.json, standings.csv, crossplay.csv, "
                       "compositions.csv, seats.csv. A group is every multiset of the game's seats drawn from "
                       "--policies (pairs in two-player games); in n-player and asymmetric games each group also "
                       "plays every cyclic rotation of its seats, so every policy sits in every seat equally often. "
                       "Standings do not depend on the order of --policies. Cooperation: share of C in C/D games, "
                       "share of the endowment given in the donation game.")
    _run_flags(t, "tournament")
    t.set_defaults(func=lambda a: _run(a, "tournament"))
    s = sub.add_parser("sweep", help="one-shot scenario grid per policy (the study's propensity measurement)",
                       description="Ask each policy alone every game x framing scenario once (exact scoring) or "
                       "--samples times (sampled answers), as the study did. Exact scoring: P(C) = P(first answer "
                       "token = C | first token in {C, D}) under the letter prompt, from one forward pass (no "
                       "temperature, top-p or parser; the mass on neither letter is recorded as other_mass). The "
                       "study's own estimator: --samples 300 with a policy spec ending "
                       "'mode=generate&protocol=letter&decoding=study' (temperature 0.8, top-p 0.9, repetition "
                       "penalty 1.1, D iff a standalone D appears). Writes propensities.csv (P(C), CI, other_mass per "
                       "model x framing x game; donations.csv for donation scenarios) and prints it.")
    _run_flags(s, "sweep")
    s.set_defaults(func=lambda a: _run(a, "sweep"))
    p = sub.add_parser("play", help="one match with a readable transcript",
                       description="Play one repeated match between two policies and print it round by round.")
    p.add_argument("a", help="policy of player_0")
    p.add_argument("b", help="policy of player_1")
    p.add_argument("--game", default="prisoners_dilemma", help="game id (default prisoners_dilemma)")
    p.add_argument("--framing", default="none", help="framing id (default none)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--noise", type=float, default=0.0, help="action flip probability (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--show-text", action="store_true", help="print each completion / motivation")
    p.set_defaults(func=_play)
    tr = sub.add_parser("traces", help="work with stored traces").add_subparsers(dest="traces_cmd", metavar="ACTION")
    e = tr.add_parser("export", help="write a policy's decisions as TRL chat JSONL (+ Parquet) for fine-tuning",
                      description="Export one policy's prompts and answers from a run directory as conversational "
                      "JSONL (messages with system/user/assistant) plus the teacher's action probabilities.")
    e.add_argument("run", type=Path, help="run directory")
    e.add_argument("--policy", required=True, help="label of the policy whose answers become targets")
    e.add_argument("--out", required=True, type=Path, help="output .jsonl (a .parquet twin is written beside it)")
    e.add_argument("--include-failed", action="store_true", help="keep answers that failed to parse")
    e.add_argument("--games", action="append", help="only these games (comma list)")
    e.add_argument("--framings", action="append", help="only these framings (comma list)")
    e.add_argument("--rounds", action="append", help="only these round indices (comma list, from 0)")
    e.add_argument("--max-per-scenario", type=int, help="at most this many examples per game x framing")
    e.set_defaults(func=_export)
