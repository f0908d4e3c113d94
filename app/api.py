"""The Python API: tournaments, sweeps and reports from a script or a notebook, through the same code as the CLI
(arena.config.validate_config -> arena.runner.run; analysis.report.build_report) and with the same guarantees
(validated settings, one-line TomarenaErrors, resumable run directories, a failed run cleans up after itself).

    import tomarena
    from tomarena.agents import Decision, Policy

    class Alternator(Policy):
        '''C on even rounds, D on odd ones.'''
        def act(self, obs, state, rng):
            return Decision(obs.round % 2), state

    res = tomarena.tournament(["classic/tit_for_tat", "classic/always_defect", Alternator()],
                              games="prisoners_dilemma", rounds=20, repetitions=3, out="runs/t1")
    res.standings                     # pandas DataFrame (also res.crossplay, res.tables, res.traces)
    sw = tomarena.sweep(["strategist/reference"], games="in_sample", framings="in_sample", out="runs/s1")
    sw.tables["propensities"]
    rep = tomarena.report([res, sw], out="runs/report")   # rep.html, rep.headline

Policies are spec strings (`classic/random?p=0.3`, `hf:DIR`, `axelrod:Grudger`; see `tomarena list policies`),
Policy objects (labelled by their `id`, or the class name when it has none), or a mapping {label: spec or
Policy}. Objects are handed to the run under their label (the policy registry is never touched), so a policy
defined in the script runs without a plugin entry point. On Ray, heavy (model-backed) policies must be given as
specs, which each Ray actor can rebuild.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tomarena.agents.base import Policy
from tomarena.agents.resolve import resolve_policy
from tomarena.analysis.report import Report, build_report
from tomarena.arena.config import RunConfig, validate_config
from tomarena.arena.runner import run
from tomarena.arena.store import RunStore
from tomarena.errors import ConfigError
from tomarena.options import split_list
from tomarena.outputs import guard_outputs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Result", "report", "sweep", "tournament"]


@dataclass
class Result:
    """A finished run: its directory, summary.json, and every summary table of the run as a DataFrame."""

    path: Path
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]

    @classmethod
    def load(cls, path: str | Path) -> Result:
        """Read a run directory written by `tournament`, `sweep` or the CLI (TraceError if it is not one)."""
        import pandas as pd

        root = Path(path)
        store = RunStore(root)
        store.read_manifest()
        summary = json.loads((root / "summary.json").read_text(encoding="utf-8")) if store.complete() else {}
        tables = {p.stem: pd.read_csv(p) for p in sorted(root.glob("*.csv"))}
        return cls(root, summary, tables)

    @property
    def standings(self) -> pd.DataFrame:
        """Per policy: matches, rounds, mean payoff per round, cooperation rate (tournaments; empty for sweeps)."""
        return self._table("standings")

    @property
    def crossplay(self) -> pd.DataFrame:
        """Per policy x opponent x game x framing results (tournaments; empty for sweeps)."""
        return self._table("crossplay")

    @property
    def propensities(self) -> pd.DataFrame:
        """P(C) per model x framing x game (sweeps; empty for tournaments)."""
        return self._table("propensities")

    @cached_property
    def traces(self) -> pd.DataFrame:
        """Every stored decision, one row per (episode, round, agent); read on first use."""
        return RunStore(self.path).read_frame()

    def _table(self, name: str) -> pd.DataFrame:
        import pandas as pd

        return self.tables[name] if name in self.tables else pd.DataFrame()

    def __fspath__(self) -> str:
        return str(self.path)


def tournament(policies: Sequence[str | Policy] | Mapping[str, str | Policy], *,
               games: str | Sequence[str] = "prisoners_dilemma", framings: str | Sequence[str] = "none",
               rounds: int = 10, repetitions: int = 1, out: str | Path | None = None, executor: str = "local",
               seed: int = 0, resume: bool = False, progress: bool = False, **settings: Any) -> Result:
    """Round-robin of `policies` in every game x framing, into the run directory `out` (a new temporary one if
    None); the other RunConfig keys (continuation, noise, self_play, ray_address, workers, ...) go in `settings`."""
    return _run("tournament", policies, out, resume, progress, {
        "games": games, "framings": framings, "rounds": rounds, "repetitions": repetitions,
        "executor": executor, "seed": seed, **settings})


def sweep(policies: Sequence[str | Policy] | Mapping[str, str | Policy], *,
          games: str | Sequence[str] = "prisoners_dilemma", framings: str | Sequence[str] = "none",
          samples: int | None = None, out: str | Path | None = None, executor: str = "local", seed: int = 0,
          resume: bool = False, progress: bool = False, **settings: Any) -> Result:
    """Ask each policy every game x framing scenario once (exact scoring) or `samples` times, as `tomarena sweep`;
    named scenario sets (tomarena.envs.scenarios: in_sample, all, rg144, ...) work in `games` and `framings`."""
    return _run("sweep", policies, out, resume, progress, {
        "games": games, "framings": framings, "samples": samples, "executor": executor, "seed": seed, **settings})


def report(runs: Sequence[str | Path | Result] | str | Path | Result, out: str | Path, *,
           teacher: str | None = None, base: str | None = None, student: str | None = None,
           min_gap: float = 0.0, seed: int = 0) -> Report:
    """Analyse run directories into `out` (report.html, report.md, tables, figures), as `tomarena report`; roles
    default to the runs' manifests. Returns the Report (paths, roles used, headline alignment figures)."""
    if isinstance(runs, (str, Path, Result)):
        runs = [runs]
    paths = [r.path if isinstance(r, Result) else Path(r) for r in runs]
    with guard_outputs([Path(out)]):
        return build_report(paths, out, roles={"teacher": teacher, "base": base, "student": student},
                            min_gap=min_gap, seed=seed)


def run_config(cfg: RunConfig, out: str | Path, resume: bool = False, progress: bool = True,
               policies: Mapping[str, Policy] | None = None) -> Path:
    """Play a validated run config into the run directory `out` (resuming if asked) and write its summary tables
    (standings, cross-play, ... or propensities); the one way every command, the pipeline and the API run one.
    `policies` are Policy objects played under their labels (see arena.runner.run)."""
    from tomarena.analysis.summaries import SummarySink

    return run(cfg, out, resume=resume, progress=progress, sink=SummarySink(cfg.kind), policies=policies)


def _run(kind: str, policies: Any, out: str | Path | None, resume: bool, progress: bool,
         settings: dict[str, Any]) -> Result:
    labels, objects = _labels(policies)
    data = {k: ([v] if isinstance(v, str) and k in ("games", "framings") else v) for k, v in settings.items()
            if v is not None}
    cfg = validate_config({**data, "kind": kind, "policies": labels})
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"tomarena-{kind}-"))
    hint = "call again with resume=True to continue"
    with guard_outputs([root], RunStore(root).resumable, hint, run_dirs=[root]):  # held for the run's life
        run_config(cfg, root, resume=resume, progress=progress, policies=objects)
    return Result.load(root)


def _labels(policies: Any) -> tuple[list[str], dict[str, Policy]]:
    """Run labels in order, and the Policy objects to play under theirs."""
    if isinstance(policies, str):
        policies = split_list(policies)  # "a,b" as on the command line (classic/memory_one?p=1,0,1,0 stays one)
    elif isinstance(policies, Policy):
        policies = [policies]
    items = list(policies.items()) if isinstance(policies, Mapping) else [(None, p) for p in policies]
    if not items:
        raise ConfigError("no policies given")
    labels: list[str] = []
    objects: dict[str, Policy] = {}
    for label, pol in items:
        if not isinstance(pol, (str, Policy)):
            raise ConfigError(f"a policy must be a spec string or a Policy, got {type(pol).__name__}")
        if label is None:
            label = pol if isinstance(pol, str) else _object_label(pol)
        elif not isinstance(label, str) or not label.strip():
            raise ConfigError(f"policy labels must be non-empty strings, got {label!r}")
        if split_list(label) != [label.strip()]:
            raise ConfigError(f"policy label {label!r} reads as {split_list(label)} in a list of policies; give "
                              "one policy per item (a comma may stay inside a spec's options: a?p=1,0,1,0)")
        if label in labels:
            raise ConfigError(f"policy label {label!r} is given twice; pass a mapping {{label: policy}} to tell "
                              "them apart")
        labels.append(label)
        if isinstance(pol, Policy) or pol != label:
            objects[label] = resolve_policy(pol)
    return labels, objects


def _object_label(pol: Policy) -> str:
    pid = getattr(pol, "id", None)
    return pid if isinstance(pid, str) and pid.strip() and pid != "policy" else type(pol).__name__
