"""Sub-commands for recorded play: `tomarena import akata --out DIR` writes five LLMs' recorded play of the 144
Robinson-Goforth games (Akata et al.) as an ordinary run directory, and `tomarena evaluate` scores how well policies
predict one recorded model's next moves (arena/benchmark.py)."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tomarena.arena.benchmark import BASELINES, BREAKDOWNS, DATASETS, SCORE_COLUMNS, evaluate
from tomarena.arena.recorded import import_recordings
from tomarena.arena.runner import describe_run
from tomarena.envs.rg144 import CITATION, MODELS, SPLITS
from tomarena.files import write_text_atomic
from tomarena.options import CommaList, add_flags, flag_values, validate
from tomarena.outputs import guard_outputs

IMPORT_HELP = """Write a recorded data set as an ordinary run directory (traces/*.parquet, manifest.json, summary.json,
standings.csv, crossplay.csv, compositions.csv, seats.csv), so that `tomarena report`, `traces export` and the
Python API read it like a tournament. akata: Akata et al.'s recordings of GPT-4, GPT-3.5 (text-davinci-003),
Claude 2, Claude Instant 1 and Llama-2-70b-chat playing every ordered pair in all 144 Robinson-Goforth 2x2 games
(rg144/<n>) for 10 rounds: 3,600 matches, 72,000 decisions, policies akata/<model>. Option 1 is action 0 (label A);
each row keeps the letter the model answered (completion) and the order the round's question named the letters
(prompt). Data: MIT licence; cite """ + CITATION

EVALUATE_HELP = """The next-move benchmark: show each policy every recorded decision of --model in --split (the same
game from the model's seat, after the same recorded history; 48 held-out games in test, 96 in train) and score the
probability it gives the recorded choice: accuracy (argmax; a tie between k actions counts 1/k), mean log-likelihood
per decision (probabilities clipped at 1e-6), Brier score and expected calibration error. Policies that give no
probabilities count their chosen action with probability 1. The baselines option1, repeat_own, copy_partner (option
1 in round 1) and table (a lookup table over payoff features and last moves, fitted on the model's train split)
are always scored beside. --by round|family adds a score per group of decisions. --csv writes policy, decisions,
accuracy, log_likelihood, brier, ece, kind, seconds, group (all, or the --by group)."""


class EvaluateOptions(BaseModel):
    """Flags of `tomarena evaluate`."""

    model_config = ConfigDict(extra="forbid")
    policies: CommaList = Field(default_factory=list, description="policy specs to score beside the baselines "
                                f"({', '.join(BASELINES)}); comma list or repeatable (a comma inside a spec's "
                                "options stays in the value: classic/memory_one?p=1,0,1,0,classic/tit_for_tat is "
                                "two policies)")
    data: Literal[DATASETS] = Field("akata", description="recorded data set")  # type: ignore[valid-type]
    model: Literal[tuple(MODELS.values())] = Field(  # type: ignore[valid-type]
        "gpt-4", description="the recorded model whose decisions are predicted")
    split: Literal[SPLITS] = Field("test", description="games: test (48 held out, number % 3 == 0), train "  # type: ignore[valid-type]
                                   "(the other 96) or all")
    games: CommaList = Field(default_factory=list, description="score only these games of the split (rg144/<n> "
                             "or <n>; default: all); the table baseline is still fitted on the whole train split")
    by: Literal[BREAKDOWNS] | None = Field(None, description="also score each group of decisions: round (round 1 "  # type: ignore[valid-type]
                                           "vs rounds 2-10) or family (the game's family)")
    csv: str | None = Field(None, description="also write the scores to this CSV file")
    seed: int = Field(0, description="seed of the policies' rng streams")


def _import(args: argparse.Namespace) -> int:
    from tomarena.analysis.summaries import SummarySink

    out = import_recordings(args.out, SummarySink("tournament"))
    print(describe_run(out))
    with open(out / "standings.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            print(f"  {row['policy']:<24} {float(row['mean_payoff_per_round']):.4f} points per decision "
                  f"({row['rounds_played']} decisions), option 1 in {float(row['cooperation_rate']):.1%}")
    return 0


def format_scores(rows: list[dict[str, Any]]) -> str:
    """The benchmark's rows as an aligned text table, four decimals."""
    lines = [f"{'policy':<32} {'decisions':>9} {'accuracy':>8} {'log_lik':>8} {'brier':>7} {'ece':>7}  kind"]
    for r in rows:
        group = "" if r.get("group", "all") == "all" else f"  [{r['group']}]"
        lines.append(f"{r['policy']:<32} {r['decisions']:>9} {r['accuracy']:>8.4f} {r['log_likelihood']:>8.4f} "
                     f"{r['brier']:>7.4f} {r['ece']:>7.4f}  {r['kind']}{group}")
    return "\n".join(lines)


def scores_csv(rows: list[dict[str, Any]]) -> str:
    """The benchmark's rows as CSV text with SCORE_COLUMNS."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r[k] for k in SCORE_COLUMNS} for r in rows)
    return buf.getvalue()


def _evaluate(args: argparse.Namespace) -> int:
    o = validate(EvaluateOptions, flag_values(args, EvaluateOptions), "evaluate", "flags")
    rows = evaluate(o.policies, o.model, o.split, o.data, o.seed, games=o.games or None, by=o.by)
    print(f"{o.data} {o.model}, split {o.split}: {rows[0]['decisions']} recorded decisions")
    print(format_scores(rows))
    if o.csv:
        with guard_outputs([Path(o.csv)]):
            write_text_atomic(o.csv, scores_csv(rows))
        print(f"wrote {o.csv}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `import` and `evaluate` to the `tomarena` parser."""
    p = sub.add_parser("import", help="write recorded play (akata) as a run directory",
                       description=" ".join(IMPORT_HELP.split()))
    p.add_argument("source", choices=list(DATASETS), help="the recorded data set")
    p.add_argument("--out", required=True, type=Path, help="run directory to create (must not exist or be empty)")
    p.set_defaults(func=_import)
    p = sub.add_parser("evaluate", help="next-move benchmark: predict a recorded model's choices",
                       description=" ".join(EVALUATE_HELP.split()))
    add_flags(p, EvaluateOptions)
    p.set_defaults(func=_evaluate)
