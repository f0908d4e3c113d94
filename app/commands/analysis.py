"""Sub-commands of the analysis layer: `tomarena report`, `tomarena analyze alignment` and `tomarena analyze
equilibria`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from tomarena.analysis import alignment, study_ref, transfer
from tomarena.analysis.load import load_runs, read_propensity_file
from tomarena.analysis.render import md_table
from tomarena.analysis.report import EQUILIBRIUM_CAPTIONS, build_report, equilibrium_tables
from tomarena.analysis.training_fit import read_training
from tomarena.errors import ConfigError
from tomarena.files import write_text_atomic
from tomarena.outputs import guard_outputs

REPORT_HELP = """Analyse one or more run directories (written by `tomarena tournament`, `sweep` or `import`, or
by a pipeline's arena stages) and write DIR/report.html (self-contained, figures embedded), DIR/report.md, the PNG
figures and every table as CSV: propensities p(C) per
model x framing x game (exact or Wilson CIs), alignment of the fine-tuned student with the teacher (the study's
improvement, gap closure, JSD, Pearson r, bootstrap CIs) per scenario set, z-tests, Nash distances, logit-QRE
lambda, memory-one fingerprints, standings per game (and per run) with CIs and each game's winner and runner-up,
where the decisions come from (trace source per policy), cross-play matrices and Moran/replicator outcomes, and for
play of the Robinson-Goforth games (rg144/<n>, e.g. `tomarena import akata`) Akata et al.'s findings recomputed:
score per game family against the best achievable, forgiveness in the PD family, coordination in the
Battle-of-the-Sexes-like games. Per-game figures are drawn for at most 12 games; tables and CSVs hold every game.
The report opens with the alignment summary per scenario set beside the study's own figures and one figure of
base and student p(C) against the teacher's per scenario; the long tables follow, folded. The headline alignment
figures are printed. Roles default to the manifests' "roles"; a label given here must name a policy of the runs.
Re-running into the same DIR first removes the files the previous report wrote there (listed in
DIR/.tomarena-report-files), never other files. Runs of 200,000 trace rows or more print a line per step on
stderr."""

ALIGN_HELP = """Alignment metrics from a propensity CSV produced anywhere (columns model,framing,game and either
n_cooperate,n_total or p_cooperate), or from the study's shipped counts with `--propensities study` (models
llama2-70b, llama2-7b, llama2-7b-lora, llama2-70b-letter; the donation game included). Prints the per-scenario
table and, per scenario set, the student beside null students computed by the same code (the base; a constant at
the teacher's mean over the in_sample set, the training scenarios; the teacher's mean per training framing): gap
closure 1 - mean|s - t| / mean|b - t| and the margin over the best null, the study's mean improvement
100*(p_ft - p_base)/(p_teacher - p_base) over every scenario (none dropped), its median, Pearson r and r within
framings and games, each with a 95% two-level bootstrap interval (scenarios, and the answers within a scenario when
counts are given). The in_sample set is the training set: it is labelled a training fit. --csv writes every figure
as rows; scenarios with |p_teacher - p_base| < 0.05 are flagged (small_gap) but kept."""


def _report(args: argparse.Namespace) -> int:
    training = read_training(args.training) if args.training else None
    rep = build_report(args.runs, args.out, roles={"teacher": args.teacher, "base": args.base,
                                                   "student": args.student}, min_gap=args.min_gap, seed=args.seed,
                       training=training)
    print(transfer.format_headline(rep.headline))
    print(f"wrote {rep.html} and {rep.markdown} (+{len(rep.files)} tables and figures)")
    return 0


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v.item() if hasattr(v, "item") else v


def _alignment(args: argparse.Namespace) -> int:
    import pandas as pd

    roles = dict(zip(("base", "student", "teacher"), (args.base, args.student, args.teacher), strict=True))
    if args.propensities == "study":
        table = study_ref.scenario_table(args.raw_counts, roles, min_gap=args.min_gap)
        rows = study_ref.transfer_rows(args.raw_counts, roles, seed=args.seed)
    else:
        table = alignment.scenario_table(read_propensity_file(args.propensities, raw=args.raw_counts),
                                         *roles.values(), min_gap=args.min_gap)
        rows = transfer.transfer_table(table, seed=args.seed)
    study_rows = study_ref.study_transfer(args.seed)
    show_study = args.propensities != "study" or roles != study_ref.ROLES
    heads = transfer.headline(rows, study_rows if show_study else None)
    if args.csv:
        both = pd.concat([rows, study_rows], ignore_index=True) if show_study else rows
        write_text_atomic(args.csv, both.to_csv(index=False, float_format="%.10g"))
    if args.json:
        sums = alignment.summarize_sets(table)
        data = {"scenarios": [{k: _clean(v) for k, v in r.items()} for r in table.to_dict("records")],
                "summary": {s: {k: _clean(v) for k, v in d.items()} for s, d in sums.items()},
                "metrics": [{k: _clean(v) for k, v in r.items()} for r in rows.to_dict("records")]}
        print(json.dumps(data, indent=2))
        return 0
    print(md_table(table))
    print()
    print(transfer.format_headline(heads))
    if args.csv:
        print(f"wrote {args.csv}")
    return 0


EQUILIBRIA_HELP = """Print the stage-game tables `tomarena report` computes in its section 'Equilibria (one-shot)', from
the one-shot decisions of the runs (sweep rows and one-round matches; repeated rounds are not a stage game): the
distance of each p(C) to the nearest Nash equilibrium, the symmetric one and the payoff-/risk-dominant ones, one logit
QRE lambda per model fitted jointly by maximum likelihood (with the uniform, constant and saturated log-likelihoods),
the lambda per cell ('no λ ≥ 0' where none reaches p(C)) and, for games with a `_doubled` twin, p(C) doubled minus
original. n (n_a, n_b) is the number of valid decisions behind each p(C). --csv DIR also writes each table as
DIR/<name>.csv."""


def _equilibria(args: argparse.Namespace) -> int:
    tables = equilibrium_tables(load_runs(args.runs))
    if not tables:
        raise ConfigError(f"{', '.join(args.runs)}: no one-shot decisions of 2x2 games (sweep rows or one-round "
                          "matches), so there is nothing to compare with stage-game equilibria; repeated play is "
                          "analysed by `tomarena report`")
    if args.csv:
        with guard_outputs([Path(args.csv)]):
            Path(args.csv).mkdir(parents=True, exist_ok=True)
            for name, table in tables.items():
                write_text_atomic(Path(args.csv) / f"{name}.csv", table.to_csv(index=False, float_format="%.10g"))
    for name, table in tables.items():
        if name == "doubled_tests" and table.empty:
            continue
        print(f"## {EQUILIBRIUM_CAPTIONS[name]}\n\n{md_table(table, max_rows=None)}\n")
    if args.csv:
        print(f"wrote {len(tables)} tables to {args.csv}")
    return 0


def _roles(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--teacher", required=required, metavar="LABEL", help="policy label of the teacher")
    p.add_argument("--base", required=required, metavar="LABEL", help="policy label of the base student")
    p.add_argument("--student", required=required, metavar="LABEL", help="policy label of the fine-tuned student")
    p.add_argument("--min-gap", type=float, default=0.0,
                   help="leave out scenarios whose |p_teacher - p_base| is below this (default 0: none, the study's "
                   "definition; scenarios under 0.05 are flagged small_gap either way)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add this layer's sub-commands to the `tomarena` parser."""
    p = sub.add_parser("report", help="analyse run directories into an HTML/Markdown report with figures",
                       description=REPORT_HELP)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (with manifest.json and traces/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory for report.html, report.md, "
                   "PNGs and CSVs")
    _roles(p, required=False)
    p.add_argument("--training", metavar="ADAPTER_DIR", help="the student's adapter directory (written by "
                   "`tomarena finetune`): its manifest names the trained scenarios and traces, so sets evaluated on "
                   "training prompts are labelled 'training fit' and held-out in-sample framings form the set "
                   "in_sample_holdout (default: the study's protocol, trained on the whole in_sample set)")
    p.set_defaults(func=_report)
    a = sub.add_parser("analyze", help="single analyses: alignment of a propensity CSV, equilibria of runs",
                       description="Single analyses printed on the terminal: alignment metrics from a propensity "
                       "CSV made anywhere, and the equilibrium tables of run directories.")
    asub = a.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=type(a))
    al = asub.add_parser("alignment", help="alignment metrics from a propensity CSV", description=ALIGN_HELP)
    al.add_argument("--propensities", required=True, metavar="FILE", help="CSV: model,framing,game,"
                    "n_cooperate,n_total (or p_cooperate); 'study' = the study's shipped counts")
    al.add_argument("--raw-counts", action="store_true", help="divide n_cooperate by 300 (the study's notebooks) "
                    "instead of n_total (proportions, the default); changes cells with fewer valid answers")
    _roles(al, required=True)
    al.add_argument("--json", action="store_true", help="print JSON (scenarios, summary, metrics) instead of text")
    al.add_argument("--csv", metavar="FILE", help="write every metric as rows set,who,metric,value,ci_low,ci_high "
                    "(+ n_scenarios, training_fit); who: student, base, null_constant, null_framing, and the "
                    "study's own as study, study_base, study_null_*")
    al.set_defaults(func=_alignment)
    eq = asub.add_parser("equilibria", help="Nash distance and logit-QRE tables of run directories",
                         description=EQUILIBRIA_HELP)
    eq.add_argument("runs", nargs="+", metavar="RUN", help="run directories (with manifest.json and traces/)")
    eq.add_argument("--csv", metavar="DIR", help="also write every table as DIR/<name>.csv")
    eq.set_defaults(func=_equilibria)
    a.set_defaults(func=lambda args: (a.print_help(), 0)[1])
