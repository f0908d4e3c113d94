"""The `tomarena` command line. Each layer adds its own sub-commands through `add_commands(subparsers)` in its
`commands` module; heavy libraries load only inside the command that needs them, so `--help` is instant.

Every user error (a TomarenaError) prints one line on stderr and exits with status 2, no traceback. Commands
that write run inside `tomarena.outputs.guard_outputs`: an output path that cannot be created or written is such
an error, and a run that fails after validation removes what it created unless it can be resumed (the message
says which).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tomarena import __version__
from tomarena.analysis.signature import format_signature
from tomarena.analysis.transfer import format_headline
from tomarena.app import catalog
from tomarena.app.commands import analysis as analysis_commands
from tomarena.app.commands import arena as arena_commands
from tomarena.app.commands import data as data_commands
from tomarena.app.commands import training as training_commands
from tomarena.app.pipeline import load_pipeline_config, run_pipeline
from tomarena.arena.config import ExecutionSettings
from tomarena.arena.store import RunStore
from tomarena.errors import ConfigError, TomarenaError
from tomarena.options import add_flags, flag_values
from tomarena.outputs import guard_outputs
from tomarena.training import partial_dir, resumable

#: layer modules that contribute sub-commands, in the order they appear in --help
COMMAND_MODULES = (arena_commands, data_commands, training_commands, analysis_commands)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line with exit status 2 (its default status)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _list(args: argparse.Namespace) -> int:
    what = args.what
    if args.axelrod:
        if what != "policies":
            raise ConfigError(f"--axelrod lists Axelrod strategies; use it with `list policies`, not `list {what}`")
        what = "axelrod"
    rows = catalog.listing(what)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(catalog.format_listing(what, rows))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    cfg = load_pipeline_config(args.config, {"out": args.out, "run": flag_values(args, ExecutionSettings)})
    root = Path(cfg.out)
    with guard_outputs([root], lambda: any(p.is_file() for p in root.rglob("*")),
                       "re-run the same command to resume"):
        result = run_pipeline(cfg)
    print_summary(result)
    return 0


def format_repeated(rep: dict[str, Any]) -> str:
    """The repeated-game headline as text: the benchmark on the model's held-out decisions (student, base,
    baselines; then the baselines on every held-out decision) and the closed-loop signatures."""
    lines = [f"\nrepeated games: the student fine-tuned on {rep['model']}'s recorded training-game decisions "
             f"({rep['adapter']}), predicting its held-out decisions:"]
    lines.append(f"  {'policy':<14} {'games':<7} {'decisions':<20} {'accuracy':>8} {'log_lik':>8}")
    for r in rep["benchmark"]:
        group = r.get("group", "all")
        n = f"{r['decisions']}" + ("" if group == "all" else f" ({group})")
        lines.append(f"  {r['policy']:<14} {r['games']:<7} {n:<20} {r['accuracy']:>8.4f} "
                     f"{r['log_likelihood']:>8.4f}")
    lines.append("closed-loop play (own moves; A = option 1):")
    lines.append(format_signature(rep["closed_loop"]))
    return "\n".join(lines)


def print_summary(result: dict[str, Any]) -> None:
    """Print where the report is and the headline figures of a pipeline run: per scenario set the student beside
    the null students and the study's own figures (one renderer: analysis.transfer.format_headline)."""
    print(f"\nreport: {result['report']}")
    print(format_headline((result.get("headline") or {}).get("alignment") or {}))
    head = result.get("headline") or {}
    top = head.get("tournament_top3") or []
    if top:
        ranked = "; ".join(f"{t['policy']} ({t['mean_payoff_per_round']:.2f}/round)" for t in top)
        print("tournament top 3: " + ranked)
    if head.get("tournament_sources"):
        print("  where the study replays' tournament decisions come from:\n  " +
              head["tournament_sources"].replace("\n", "\n  "))
    if head.get("repeated"):
        print(format_repeated(head["repeated"]))
    print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in result["timings_s"].items()))


def _outputs(args: argparse.Namespace) -> tuple[list[Path], Callable[[], bool], str, list[Path]] | None:
    """What a command writes, whether a failed run of it left resumable work, how to resume it and (runs) the run
    directory it locks; None for the commands that write nothing (the pipeline guards its own, known only once its
    config is read)."""
    out = getattr(args, "out", None)
    if out is None or args.command in ("pipeline", "list", "play", "analyze"):
        return None
    out = Path(out)
    if args.command in ("tournament", "sweep"):
        return [out], RunStore(out).resumable, "re-run with --resume to continue", [out]
    if args.command == "finetune":
        return [out, partial_dir(out)], lambda: resumable(out), "re-run with --resume to continue", []
    if args.command == "traces":
        return [out, out.with_suffix(".parquet")], lambda: False, "", []
    return [out], lambda: False, "", []


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every layer's sub-commands."""
    parser = _Parser(
        prog="tomarena",
        description="Repeated social dilemmas for LLM and classic agents: tournaments, distillation traces, "
        "LoRA fine-tuning of a student, and behavioural analysis against the teacher and Nash equilibria.",
    )
    parser.add_argument("--version", action="version", version=f"tomarena {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("list", help="list registered games, framings or policies",
                       description="Print the registered games (payoffs, equilibria), framings or policies. Policies "
                       "come with their options (name=default (type): meaning; set them as id?name=value&...) and "
                       "the spec families axelrod:<Name>, hf:<path>, openai:<url>.")
    p.add_argument("what", choices=["games", "framings", "policies"], help="which registry to list")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--axelrod", action="store_true",
                   help="with `policies`: every strategy of the installed Axelrod library, usable as axelrod:<Name>")
    p.set_defaults(func=_list)
    p = sub.add_parser("pipeline", help="teacher -> traces -> LoRA student -> tournament -> report, end to end",
                       description="Run the whole study from one config (configs/demo.yaml, configs/paper.yaml, "
                       "configs/smoke.yaml). Every stage writes under the run directory and is skipped when "
                       "complete, so re-running the same command resumes an interrupted pipeline.")
    p.add_argument("--config", required=True, help="pipeline YAML")
    p.add_argument("--out", help="run directory (overrides the config's `out`)")
    add_flags(p.add_argument_group("execution of every arena run (override the config's `run:` section)"),
              ExecutionSettings, show_defaults=False)
    p.set_defaults(func=_pipeline)
    for mod in COMMAND_MODULES:
        mod.add_commands(sub)
    return parser


def _run_command(args: argparse.Namespace) -> int:
    """Run the chosen command; one that writes runs guarded (unwritable outputs are one line, a failure removes
    what it created unless that can be resumed)."""
    outputs = _outputs(args)
    if outputs is None:
        return int(args.func(args) or 0)
    with guard_outputs(*outputs):
        return int(args.func(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tomarena` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return _run_command(args)
    except TomarenaError as exc:
        if os.environ.get("TOMARENA_DEBUG", "") not in ("", "0"):
            traceback.print_exception(exc, file=sys.stderr)  # the whole chain of causes
        print(f"tomarena: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tomarena: interrupted; re-run with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
