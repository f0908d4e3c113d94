"""Arena sub-commands: `tournament`, `sweep`, `play` and `traces export`."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tomarena.agents.resolve import resolve_policy
from tomarena.app.api import run_config
from tomarena.arena.config import (
    SWEEP_ONLY,
    TOURNAMENT_ONLY,
    ExecutionSettings,
    RunConfig,
    load_config,
    validate_config,
)
from tomarena.arena.episode import MatchSpec, play_episode
from tomarena.arena.export import export_traces
from tomarena.arena.runner import describe_run
from tomarena.envs.games import get_game
from tomarena.envs.scenarios import expand_sets
from tomarena.errors import ConfigError
from tomarena.options import CommaList, add_flags, flag_values, split_commas, split_list, validate


class PlayOptions(BaseModel):
    """Flags of `tomarena play`; the match is then checked as a RunConfig (same ranges and registries)."""

    model_config = ConfigDict(extra="forbid")
    game: str = Field("prisoners_dilemma", description="game id")
    framing: str = Field("none", description="framing id")
    rounds: int = Field(5, description="rounds")
    noise: float = Field(0.0, description="action flip probability")
    seed: int = Field(0, description="seed")
    show_text: bool = Field(False, description="print each completion / motivation")


class ExportOptions(BaseModel):
    """Filters of `tomarena traces export`."""

    model_config = ConfigDict(extra="forbid")
    include_failed: bool = Field(False, description="keep answers that failed to parse")
    games: CommaList = Field(default_factory=list, description="only these games (comma list; scenario sets such "
                             "as rg144_train stand for their games)")
    framings: CommaList = Field(default_factory=list, description="only these framings (comma list; scenario sets "
                                "stand for their framings)")
    rounds: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(split_commas)] = Field(
        default_factory=list, description="only these round indices (comma list, from 0)")
    max_per_scenario: int | None = Field(None, ge=1, description="at most this many examples per game x framing")
    sample: int | None = Field(None, ge=1, description="keep this many examples drawn at random after the filters")
    seed: int = Field(0, description="seed of --sample")
    force: bool = Field(False, description="replace OUT (and its .parquet twin) when it exists")


#: `tomarena tournament` and `tomarena sweep`: (one-line help, description)
RUN_COMMANDS = {
    "tournament": ("round-robin of policies in repeated games, stored as traces", """
Play every group of policies (with or without self-play) in every game x framing, repeated, into a run directory:
traces/*.parquet, manifest.json, standings.csv, crossplay.csv, compositions.csv, seats.csv. A group is every
multiset of the game's seats drawn from --policies (pairs in two-player games); in n-player and asymmetric games
each group also plays every cyclic rotation of its seats, so every policy sits in every seat equally often.
Standings do not depend on the order of --policies. Cooperation: share of C in C/D games, share of the endowment
given in the donation game."""),
    "sweep": ("one-shot scenario grid per policy (the study's propensity measurement)", """
Ask each policy alone every game x framing scenario once (exact scoring) or --samples times (sampled answers), as
the study did. Exact scoring: P(C) = P(first answer token = C | first token in {C, D}) under the letter prompt, from
one forward pass (no temperature, top-p or parser; the mass on neither letter is recorded as other_mass). The
study's own estimator: --samples 300 with a policy spec ending 'mode=generate&protocol=letter&decoding=study'
(temperature 0.8, top-p 0.9, repetition penalty 1.1, D iff a standalone D appears). Writes propensities.csv (P(C),
CI, other_mass per model x framing x game; donations.csv for donation scenarios) and prints it."""),
}

#: what both run commands say about size and interruption
RUN_SIZE = """
Matches are stored in shards as they finish, about every --save-every seconds; Ctrl-C keeps every stored shard
and --resume continues from there. A run of over a million decisions, or with an LLM, first prints its size
(matches, decisions, trace bytes, memory, time); one whose traces cannot fit on the disk of --out is refused."""


def _run_flags(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--config", type=Path, help="YAML file with any of the settings below (flags override it)")
    p.add_argument("--out", type=Path, required=True, help="run directory to create (or resume)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    skip = ("kind", "roles", *ExecutionSettings.model_fields, *(SWEEP_ONLY if kind == "tournament" else
                                                                 TOURNAMENT_ONLY))
    add_flags(p.add_argument_group(f"{kind} settings (also YAML keys of --config)"), RunConfig, exclude=skip,
              aliases={"games": ["--game"], "framings": ["--framing"]})
    add_flags(p.add_argument_group("execution (results never depend on these)"), ExecutionSettings)


def _run(args: argparse.Namespace, kind: str) -> int:
    cfg = load_config(args.config, {**flag_values(args, RunConfig), "kind": kind})
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
    o = validate(PlayOptions, flag_values(args, PlayOptions), "play", "flags")
    for who, spec in (("player_0", args.a), ("player_1", args.b)):
        if len(split_list(spec)) != 1:
            raise ConfigError(f"{who} must be one policy spec, got {spec!r} (read as {split_list(spec)}); `play` "
                              "takes two policies, one per player")
    cfg = validate_config({"policies": list(dict.fromkeys([args.a, args.b])), "games": [o.game],
                           "framings": [o.framing], "rounds": o.rounds, "seed": o.seed, "noise": o.noise}, "flags")
    pols = {p: resolve_policy(p) for p in dict.fromkeys(cfg.policies)}
    rows = play_episode(MatchSpec((args.a, args.b), o.game, o.framing, 0, cfg.rounds, noise=cfg.noise),
                        pols, cfg.seed)
    first = get_game(o.game).action_labels[0]
    print(f"{o.game} in framing {o.framing}: {args.a} (player_0) vs {args.b} (player_1)")
    print("[source] of each decision: rule, llm, strategist, replay (the study's recorded counts), replay-model "
          "(modelled beyond them), fallback")
    for r in rows:
        p = "" if r["p_cooperate"] is None else f"  p({first})={r['p_cooperate']:.3f}"
        print(f"round {r['round'] + 1:>3} {r['agent']}: {r['action_label']}  +{r['reward']:g} "
              f"(total {r['cumulative_reward']:g}){p}  [{r['source']}]")
        if o.show_text and r["completion"]:
            print("    " + r["completion"].replace("\n", "\n    "))
    return 0


def _export(args: argparse.Namespace) -> int:
    o = validate(ExportOptions, flag_values(args, ExportOptions), "export", "flags")
    n = export_traces(args.run, args.policy, args.out, parse_ok_only=not o.include_failed,
                      games=expand_sets(o.games, "games"), framings=expand_sets(o.framings, "framings"),
                      rounds=o.rounds, max_per_scenario=o.max_per_scenario, sample=o.sample,
                      seed=o.seed, overwrite=o.force)
    print(f"wrote {n} examples to {args.out} and {Path(args.out).with_suffix('.parquet')}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the arena's sub-commands to the `tomarena` parser."""
    for kind, (short, description) in RUN_COMMANDS.items():
        p = sub.add_parser(kind, help=short, description=" ".join((description + RUN_SIZE).split()))
        _run_flags(p, kind)
        p.set_defaults(func=functools.partial(_run, kind=kind))
    p = sub.add_parser("play", help="one match with a readable transcript",
                       description="Play one repeated match between two policies and print it round by round.")
    p.add_argument("a", help="policy of player_0")
    p.add_argument("b", help="policy of player_1")
    add_flags(p, PlayOptions)
    p.set_defaults(func=_play)
    tr = sub.add_parser("traces", help="work with stored traces").add_subparsers(dest="traces_cmd", metavar="ACTION")
    e = tr.add_parser("export", help="write a policy's decisions as TRL chat JSONL (+ Parquet) for fine-tuning",
                      description="Export one policy's prompts and answers from a run directory as conversational "
                      "JSONL (messages with system/user/assistant) plus the teacher's action probabilities. "
                      "Recorded play (a run written by `tomarena import`, e.g. --policy akata/gpt-4) is exported as "
                      "tomarena's own letter prompt for that game and history answered with the recorded letter "
                      "(teacher_probs one-hot on it). An existing OUT is refused unless --force.")
    e.add_argument("run", type=Path, help="run directory")
    e.add_argument("--policy", required=True, help="label of the policy whose answers become targets")
    e.add_argument("--out", required=True, type=Path, help="output .jsonl (a .parquet twin is written beside it)")
    add_flags(e, ExportOptions)
    e.set_defaults(func=_export)
