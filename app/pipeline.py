"""The main job, end to end: teacher -> traces -> LoRA student -> measurements -> tournament -> report.

Stages, each writing under the pipeline's run directory and skipped on re-run once its output is complete:
  teacher_sweep/, teacher_repeated/  the teacher answers the in-sample grid with motivations, and plays repeated games
  traces/teacher.jsonl               its answers exported as TRL chat data
  measure_base/, measure_teacher/    exact propensities on every scenario set (in-sample, OOS framings, OOS games,
                                     donation)
  adapter/                           the student fine-tuned with LoRA on the traces
  measure_student/                   the fine-tuned student measured the same way
  tournament/                        round-robin of teacher, base, fine-tuned student and classic strategies
  recorded/akata/, traces/repeated_<model>.jsonl, repeated/
                                     with `repeated.model` set: recorded LLM play imported, the model's training-
                                     game decisions exported in tomarena's prompts, the student fine-tuned on them
                                     (repeated/adapter), benchmarked on held-out games (repeated/benchmark.csv) and
                                     played against fixed partners (repeated/closed_loop)
  report/                            report.html, report.md, plots and tables; pipeline.json: headline and timings

Each stage is a small object (`Stage`): one completeness check over what it writes, its own timing and its own log
line. `plan` lists them in order; `run_pipeline` executes each (or skips it when complete) and writes pipeline.json.
"""

from __future__ import annotations

import json
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tomarena.agents.resolve import resolve_policy
from tomarena.analysis.load import load_runs
from tomarena.analysis.provenance import replay_note
from tomarena.analysis.report import build_report
from tomarena.analysis.signature import closed_loop_signature
from tomarena.analysis.training_fit import read_training
from tomarena.app.api import run_config
from tomarena.arena.benchmark import evaluate
from tomarena.arena.config import ExecutionSettings, RunConfig, validate_config
from tomarena.arena.export import export_traces
from tomarena.arena.recorded import import_recordings
from tomarena.envs.framings import get_framing
from tomarena.envs.games import get_game
from tomarena.envs.rg144 import rg144_ids
from tomarena.envs.scenarios import STUDY_SETS, scenario_set
from tomarena.errors import ConfigError
from tomarena.files import write_text_atomic
from tomarena.options import CommaList, read_yaml, validate
from tomarena.training.config import FinetuneConfig
from tomarena.training.finetune import finetune


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeacherStage(_Strict):
    """How the teacher produces training traces."""

    samples: int = Field(default=4, ge=1, description="motivated answers per in-sample scenario")
    repeated_opponents: CommaList = Field(default_factory=list,
                                          description="classic opponents in repeated games (none: one-shot only)")
    repeated_games: CommaList = Field(default_factory=lambda: ["prisoners_dilemma"],
                                      description="games of the repeated matches")
    repeated_framings: CommaList = Field(default_factory=lambda: ["business"],
                                         description="framings of the repeated matches")
    rounds: int = Field(default=5, ge=1, description="rounds per repeated match")
    max_per_scenario: int | None = Field(default=None, ge=1,
                                         description="at most this many training examples per game x framing")


class MeasureStage(_Strict):
    """Which scenario sets are measured, and how many samples when a policy cannot be scored exactly."""

    sets: CommaList = Field(default_factory=lambda: ["in_sample", "oos_framings", "oos_games", "donation"],
                            description="scenario sets measured for the base, teacher and fine-tuned student")
    samples: int | None = Field(default=None, ge=1,
                                description="sampled answers per scenario (none: exact scoring)")
    donation_framings: CommaList = Field(default_factory=lambda: ["none"],
                                         description="framings of the donation set")


class TournamentStage(_Strict):
    """The closing round-robin."""

    classics: CommaList = Field(default_factory=lambda: ["classic/tit_for_tat", "classic/always_defect"],
                                description="classic strategies beside teacher, base and fine-tuned student")
    games: CommaList = Field(default_factory=lambda: ["prisoners_dilemma"], description="games of the round-robin")
    framings: CommaList = Field(default_factory=lambda: ["business"], description="framings of the round-robin")
    rounds: int = Field(default=5, ge=1, description="rounds per match")
    repetitions: int = Field(default=1, ge=1, description="repetitions of every match")


class RepeatedStage(_Strict):
    """Repeated-game distillation from recorded LLM play (Akata et al., `tomarena import akata`): the student is
    fine-tuned on one model's decisions in training-split games (tomarena's prompt for that game and history -> the
    recorded choice), scored with the next-move benchmark on held-out games beside the base and the baselines, and
    played for `rounds` rounds of `game` against each of `partners` (its closed-loop signature)."""

    model: str | None = Field(default=None, description="recorded model the student learns (e.g. gpt-4); none: "
                              "no repeated-game stage")
    train_examples: int | None = Field(default=None, ge=1, description="decisions drawn at random (seeded) from the "
                                       "model's training-split games; none: all of them")
    test_games: CommaList = Field(default_factory=list, description="held-out games the benchmark scores (rg144/<n> "
                                  "in the test split); empty: all 48")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig, description="fine-tuning settings; they "
                                     "override those of finetune_config")
    finetune_config: str | None = Field(default=None, description="YAML file of the fine-tuning settings")
    game: str = Field(default="rg144/67", description="game of the closed-loop matches")
    partners: CommaList = Field(default_factory=lambda: ["classic/always_cooperate", "classic/always_defect",
                                                         "classic/defect_once"],
                                description="fixed partners of the closed-loop matches")
    rounds: int = Field(default=10, ge=1, description="rounds of each closed-loop match")


class PipelineConfig(_Strict):
    """A whole pipeline; see configs/demo.yaml, configs/paper.yaml and configs/smoke.yaml. A config file names at
    least REQUIRED_KEYS (one of each `a|b` group); `defaults: true` fills whatever it leaves out instead."""

    #: top-level keys a pipeline file must set, so an empty or truncated file never runs the default study
    REQUIRED_KEYS: ClassVar[tuple[str, ...]] = ("out", "teacher", "student", "teacher_stage", "measure",
                                                "finetune|finetune_config", "tournament")
    defaults: bool = Field(default=False, description="take the default of every key the file leaves out")
    out: str = Field(default="runs/pipeline", description="run directory of the whole pipeline")
    seed: int = Field(default=0, description="seed of every arena run and (unless finetune sets one) the "
                      "fine-tuning")
    teacher: str = Field(default="study/llama2-70b", description="policy spec of the teacher")
    student: str = Field(default="llm/smollm2-135m-instruct", description="policy spec of the base student")
    student_adapter_option: str = Field(default="adapter", description="spec option that attaches an adapter")
    run: ExecutionSettings = Field(default_factory=ExecutionSettings,
                                   description="execution settings of every arena run (the execution flags of "
                                   "`tomarena tournament --help`: executor, ray_address, replicas, ...)")
    teacher_stage: TeacherStage = Field(default_factory=TeacherStage, description="how the teacher makes traces")
    measure: MeasureStage = Field(default_factory=MeasureStage, description="the propensity measurements")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig,
                                     description="fine-tuning settings (see `tomarena finetune --help`); they "
                                     "override those of finetune_config")
    finetune_config: str | None = Field(default=None, description="YAML file of fine-tuning settings")
    tournament: TournamentStage = Field(default_factory=TournamentStage, description="the closing round-robin")
    repeated: RepeatedStage = Field(default_factory=RepeatedStage,
                                    description="repeated-game distillation from recorded LLM play (off unless "
                                    "`model` is set)")

    @model_validator(mode="before")
    @classmethod
    def _finetune_seed(cls, data: Any) -> Any:
        """The fine-tuning seeds are the pipeline's unless a `finetune:` section sets its own."""
        if isinstance(data, dict) and isinstance(data.get("finetune", {}), dict):
            data = {**data, "finetune": {"seed": data.get("seed", 0), **data.get("finetune", {})}}
        rep = data.get("repeated") if isinstance(data, dict) else None
        if isinstance(rep, dict) and isinstance(rep.get("finetune", {}), dict):
            data = {**data, "repeated": {**rep, "finetune": {"seed": data.get("seed", 0), **rep.get("finetune", {})}}}
        return data


#: top-level keys of older pipeline files, now read into `run:`
LEGACY_RUN_KEYS = ("executor", "ray_address")


def _merge_sections(data: dict[str, Any], where: Path, run: dict[str, Any]) -> None:
    """Fold older top-level run keys and the `run` overrides into `run:`, and the finetune_config file under the
    inline `finetune:` keys (the file's seed gives way to the pipeline's, as the inline keys do not)."""
    moved = {k: data.pop(k) for k in LEGACY_RUN_KEYS if k in data}
    section = data.get("run", {})
    if isinstance(section, dict) and (moved or run):
        clash = sorted(set(moved) & set(section))
        if clash:
            raise ConfigError(f"pipeline config {where} sets {', '.join(clash)} both at the top level and under "
                              "`run:`; keep the one under `run:`")
        data["run"] = {**section, **moved, **run}
    for section in (data, data.get("repeated")):
        if isinstance(section, dict):
            _merge_finetune_file(section)


def _merge_finetune_file(section: dict[str, Any]) -> None:
    """Fold the `finetune_config` file of a section under its inline `finetune:` keys (the file's seed gives way)."""
    if isinstance(section.get("finetune_config"), str) and isinstance(section.get("finetune", {}), dict):
        ft_path = Path(section["finetune_config"])
        values = read_yaml(ft_path, "fine-tuning config file", section="finetune")
        validate(FinetuneConfig, values, "fine-tuning", f"config file {ft_path}")
        values.pop("seed", None)
        section["finetune"] = {**values, **section.get("finetune", {})}


def load_pipeline_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read and validate a pipeline YAML; problems become one-line ConfigErrors. `overrides` (flags): `out` and
    `run` (execution settings), None values ignored. Keys of the file are checked first (unknown keys, bad
    values, unknown scenario sets), then that it sets every one of REQUIRED_KEYS (after the overrides, so `--out`
    counts) unless it says `defaults: true`."""
    p = Path(path)
    data = read_yaml(p, "pipeline config")
    empty = not data
    flags = {k: v for k, v in (overrides or {}).items() if v is not None and k != "run"}
    data.update(flags)
    _merge_sections(data, p, {k: v for k, v in ((overrides or {}).get("run") or {}).items() if v is not None})
    cfg = validate(PipelineConfig, data, "pipeline", f"pipeline config {p}", flags)
    scenario_sets(cfg.measure.sets, cfg.measure.donation_framings)
    missing = [k for k in PipelineConfig.REQUIRED_KEYS if not any(alt in data for alt in k.split("|"))]
    if missing and not cfg.defaults:
        names = ", ".join(k.replace("|", " (or ") + (")" if "|" in k else "") for k in missing)
        raise ConfigError(f"pipeline config {p} {'is empty' if empty else 'is partial'}: missing {names}; set "
                          "them (see configs/demo.yaml) or add `defaults: true` to take the defaults for them")
    return cfg


def scenario_sets(sets: list[str], donation_framings: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """(games, framings) of each named set, which must be one of the study's sets (tomarena.envs.scenarios); the
    donation set in `donation_framings`."""
    for s in sets:
        if s not in STUDY_SETS:
            raise ConfigError(f"unknown scenario set {s!r}; allowed: {', '.join(STUDY_SETS)}")
    return {s: scenario_set(s, donation_framings) for s in sets}


def student_with_adapter(cfg: PipelineConfig, adapter: Path) -> str:
    """The policy spec of the fine-tuned student: the base student's spec plus its adapter option."""
    sep = "&" if "?" in cfg.student else "?"
    return f"{cfg.student}{sep}{cfg.student_adapter_option}={adapter.resolve()}"


# ---- stages ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageRecord:
    """What one stage did this session: its timings key, its log line and its seconds."""

    key: str
    line: str
    seconds: float


@dataclass
class Stage(ABC):
    """One step of the pipeline, writing `out`: `complete()` says whether `out` is done (then it is skipped),
    `build()` makes it; `key` names the pipeline.json timing it counts toward, `label` its log line."""

    key: str
    label: str
    out: Path

    @abstractmethod
    def complete(self) -> bool:
        """Whether this stage's output is complete."""

    @abstractmethod
    def build(self) -> None:
        """Make (or resume) this stage's output."""

    def execute(self) -> StageRecord:
        """Build the output unless it is complete; the stage's log line and time."""
        t0 = time.perf_counter()
        if self.complete():
            return StageRecord(self.key, f"{self.label}: complete, skipped", time.perf_counter() - t0)
        print(f"[pipeline] {self.label} -> {self.out}", flush=True)
        self.build()
        seconds = time.perf_counter() - t0
        return StageRecord(self.key, f"{self.label}: {seconds:.1f}s", seconds)


@dataclass
class ArenaStage(Stage):
    """One arena run (sweep or tournament); complete once its summary.json exists."""

    config: RunConfig

    def complete(self) -> bool:
        """summary.json is written last, so it marks a complete run."""
        return (self.out / "summary.json").is_file()

    def build(self) -> None:
        """Play the run (resuming a started one) and write its summary tables."""
        run_config(self.config, self.out, resume=(self.out / "manifest.json").exists())


@dataclass
class TracesStage(Stage):
    """The teacher's answers in `runs` exported as one TRL chat JSONL."""

    runs: list[Path]
    teacher: str
    filters: dict[str, Any] = field(default_factory=dict)

    def complete(self) -> bool:
        """The JSONL is written atomically, so its presence marks it complete."""
        return self.out.is_file()

    def build(self) -> None:
        """Export each run into a part file (with `filters`: see export_traces), then join the parts into `out`."""
        parts = [self.out.with_name(f"{self.out.stem}.part{i}.jsonl") for i in range(len(self.runs))]
        for run, part in zip(self.runs, parts, strict=True):
            export_traces(run, self.teacher, part, overwrite=True, **self.filters)
        write_text_atomic(self.out, "".join(p.read_text(encoding="utf-8") for p in parts))
        import pyarrow as pa
        import pyarrow.parquet as pq

        twin, tmp = self.out.with_suffix(".parquet"), self.out.with_name(f".{self.out.stem}.parquet.tmp")
        pq.write_table(pa.concat_tables([pq.read_table(p.with_suffix(".parquet")) for p in parts]), tmp)
        tmp.replace(twin)
        for part in parts:
            part.unlink(missing_ok=True)
            part.with_suffix(".parquet").unlink(missing_ok=True)


@dataclass
class ImportStage(Stage):
    """A recorded data set written as a run directory (`tomarena import`); complete once its summary.json exists."""

    def complete(self) -> bool:
        """summary.json is written last."""
        return (self.out / "summary.json").is_file()

    def build(self) -> None:
        """Import the recordings, with the run's summary tables (a half-written import is started afresh)."""
        from tomarena.analysis.summaries import SummarySink

        if self.out.exists():
            shutil.rmtree(self.out)
        import_recordings(self.out, SummarySink("tournament"))


@dataclass
class BenchmarkStage(Stage):
    """The next-move benchmark of the base and fine-tuned students on a recorded model's held-out decisions
    (benchmark.csv, the baselines first); complete once the CSV exists."""

    policies: list[str]
    model: str
    games: list[str]
    seed: int

    def complete(self) -> bool:
        """The CSV is written atomically, last."""
        return self.out.is_file()

    def build(self) -> None:
        """Score the policies and the baselines on the chosen held-out games, and the baselines on all of them."""
        import pandas as pd

        rows = evaluate(self.policies, self.model, "test", seed=self.seed, games=self.games or None, by="round")
        scope = "chosen" if self.games else "all"
        frame = pd.DataFrame([{**r, "games": scope} for r in rows])
        if self.games:  # the baselines on every held-out decision too, for scale
            frame = pd.concat([frame, pd.DataFrame([{**r, "games": "all"} for r in evaluate([], self.model, "test")])])
        write_text_atomic(self.out, frame.to_csv(index=False))


@dataclass
class FinetuneStage(Stage):
    """The LoRA student trained on the teacher's traces; complete once its adapter manifest exists."""

    traces: Path
    base: str
    config: FinetuneConfig

    def complete(self) -> bool:
        """The adapter's manifest is written last."""
        return (self.out / "tomarena_finetune.json").is_file()

    def build(self) -> None:
        """Fine-tune, resuming from the checkpoint an interrupted session left."""
        resume = (self.out.parent / (self.out.name + ".partial")).is_dir()
        finetune(self.traces, self.base, self.out, self.config, resume=resume)


@dataclass
class ReportStage(Stage):
    """The report over every measurement and the tournament, and the headline figures (report/headline.json);
    complete when the headline is newer than every run it was made from."""

    runs: list[Path]
    tournament: Path
    adapter: Path
    roles: dict[str, str]
    seed: int
    repeated: dict[str, Any] | None = None

    @property
    def headline_path(self) -> Path:
        """Where the headline figures are kept."""
        return self.out / "headline.json"

    def complete(self) -> bool:
        """The headline exists and no run was completed after it."""
        if not self.headline_path.is_file():
            return False
        made = self.headline_path.stat().st_mtime
        inputs = [r / "summary.json" for r in [*self.runs, self.tournament]]
        if self.repeated:
            inputs += [self.repeated["benchmark"], self.repeated["closed_loop"] / "summary.json"]
        return all(p.stat().st_mtime <= made for p in inputs)

    def build(self) -> None:
        """Write the report, then the headline: alignment per set, the study's own figures, the top 3."""
        import pandas as pd

        report = build_report([*self.runs, self.tournament], self.out, roles=self.roles, seed=self.seed,
                              training=read_training(self.adapter))
        top3 = pd.read_csv(self.tournament / "standings.csv").head(3)[["policy", "mean_payoff_per_round"]]
        headline = {"alignment": report.headline, "tournament_top3": top3.to_dict("records"),
                    "tournament_sources": replay_note(load_runs([self.tournament]))}
        if self.repeated:
            headline["repeated"] = repeated_headline(self.repeated)
        write_text_atomic(self.headline_path, json.dumps(headline, indent=2, default=_plain))

    def headline(self) -> dict[str, Any]:
        """The headline figures the last build wrote."""
        return json.loads(self.headline_path.read_text(encoding="utf-8"))


def repeated_headline(paths: dict[str, Any]) -> dict[str, Any]:
    """The repeated-game figures: the benchmark (base, student and baselines on the chosen held-out games, the
    baselines on all of them) and the closed-loop signature of base and student against each partner."""
    import pandas as pd

    names = {paths["base"]: "base", paths["student"]: "student"}
    bench = pd.read_csv(paths["benchmark"])
    bench["policy"] = bench["policy"].map(lambda p: names.get(p, p))
    frame = load_runs([paths["closed_loop"]])
    signature = closed_loop_signature(frame, {"base": paths["base"], "student": paths["student"]},
                                      paths["partners"])
    cols = ["policy", "games", "group", "decisions", "accuracy", "log_likelihood", "brier", "ece"]
    return {"model": paths["model"], "adapter": str(paths["adapter"]),
            "benchmark": bench[cols].to_dict("records"), "closed_loop": signature}


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers for JSON, anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)


def plan(cfg: PipelineConfig) -> list[Stage]:
    """Every stage of the pipeline in the order they run; the report comes last."""
    root = Path(cfg.out)
    ts = cfg.teacher_stage

    def arena(key: str, label: str, out: str, **settings: Any) -> ArenaStage:
        config = validate_config({**cfg.run.model_dump(), "seed": cfg.seed, **settings})
        return ArenaStage(key, label, root / out, config=config)

    games, framings = scenario_set("in_sample")
    teacher = [arena("teacher", "teacher sweep", "teacher_sweep", kind="sweep", policies=[cfg.teacher],
                     games=games, framings=framings, samples=ts.samples)]
    if ts.repeated_opponents:
        teacher.append(arena("teacher", "teacher repeated", "teacher_repeated",
                             policies=[cfg.teacher, *ts.repeated_opponents], games=ts.repeated_games,
                             framings=ts.repeated_framings, rounds=ts.rounds, self_play=False))
    traces = TracesStage("teacher", "teacher traces", root / "traces" / "teacher.jsonl",
                         runs=[s.out for s in teacher], teacher=cfg.teacher,
                         filters={"max_per_scenario": ts.max_per_scenario})
    adapter = FinetuneStage("finetune", "finetune", root / "adapter", traces=traces.out, base=cfg.student,
                            config=cfg.finetune)
    student = student_with_adapter(cfg, adapter.out)
    measured: list[Path] = []
    measures: dict[str, list[Stage]] = {}
    for role, policy in (("base", cfg.student), ("teacher", cfg.teacher), ("student", student)):
        measures[role] = []
        for name, (games, framings) in scenario_sets(cfg.measure.sets, cfg.measure.donation_framings).items():
            if role == "teacher" and name == "in_sample" and cfg.measure.samples == ts.samples:
                measured.append(teacher[0].out)  # the same sweep (policy, scenarios, samples, seed): not twice
                continue
            measures[role].append(arena(f"measure_{role}", f"measure {role} {name}", f"measure_{role}/{name}",
                                        kind="sweep", policies=[policy], games=games, framings=framings,
                                        samples=cfg.measure.samples, roles={role: policy}))
            measured.append(measures[role][-1].out)
    t = cfg.tournament
    tour = arena("tournament", "tournament", "tournament", policies=[cfg.teacher, cfg.student, student, *t.classics],
                 games=t.games, framings=t.framings, rounds=t.rounds, repetitions=t.repetitions)
    repeated = repeated_stages(cfg, arena)
    report = ReportStage("report", "report", root / "report", runs=measured, tournament=tour.out, adapter=adapter.out,
                         seed=cfg.seed, roles={"teacher": cfg.teacher, "base": cfg.student, "student": student},
                         repeated=repeated_paths(cfg) if repeated else None)
    return [*teacher, traces, *measures["base"], *measures["teacher"], adapter, *measures["student"], tour,
            *repeated, report]


def repeated_paths(cfg: PipelineConfig) -> dict[str, Any]:
    """Where the repeated-game stages write, and the roles they compare (one place for plan and report)."""
    root, model = Path(cfg.out), cfg.repeated.model
    adapter = root / "repeated" / "adapter"
    return {"model": model, "recorded": root / "recorded" / "akata",
            "traces": root / "traces" / f"repeated_{model}.jsonl",
            "adapter": adapter, "benchmark": root / "repeated" / "benchmark.csv",
            "closed_loop": root / "repeated" / "closed_loop", "base": cfg.student,
            "student": student_with_adapter(cfg, adapter), "partners": list(cfg.repeated.partners)}


def repeated_stages(cfg: PipelineConfig, arena: Any) -> list[Stage]:
    """The repeated-game distillation stages (none unless `repeated.model` is set): import the recordings, export
    the model's training-split decisions, fine-tune the student on them, benchmark base and student on held-out
    games, and play the closed-loop matches."""
    rep = cfg.repeated
    if rep.model is None:
        return []
    paths = repeated_paths(cfg)
    recorded = ImportStage("repeated", "import akata", paths["recorded"])
    filters = {"games": rg144_ids("train"), "sample": rep.train_examples, "seed": cfg.seed}
    traces = TracesStage("repeated", f"repeated traces ({rep.model}, train split)", paths["traces"],
                         runs=[recorded.out], teacher=f"akata/{rep.model}", filters=filters)
    adapter = FinetuneStage("repeated", "repeated finetune", paths["adapter"], traces=traces.out, base=cfg.student,
                            config=rep.finetune)
    bench = BenchmarkStage("repeated", f"benchmark on {rep.model}'s held-out decisions", paths["benchmark"],
                           policies=[paths["base"], paths["student"]], model=rep.model, games=list(rep.test_games),
                           seed=cfg.seed)
    loop = arena("repeated", "closed-loop play", "repeated/closed_loop",
                 policies=[paths["base"], paths["student"], *rep.partners], games=[rep.game], framings=["none"],
                 rounds=rep.rounds, self_play=False)
    return [recorded, traces, adapter, bench, loop]


def check_pipeline(cfg: PipelineConfig) -> None:
    """Catch every config mistake before the first stage runs: scenario sets, games, framings and policy specs
    (without loading any model); the fine-tuning settings were checked when the config was read."""
    scenario_sets(cfg.measure.sets, cfg.measure.donation_framings)
    stage = cfg.teacher_stage
    for game in [*stage.repeated_games, *cfg.tournament.games]:
        get_game(game)
    for framing in [*stage.repeated_framings, *cfg.tournament.framings, *cfg.measure.donation_framings]:
        get_framing(framing)
    for spec in [cfg.teacher, cfg.student, *stage.repeated_opponents, *cfg.tournament.classics]:
        resolve_policy(spec)  # models load lazily: this checks names, options and paths only


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run every stage (skipping complete ones), write pipeline.json and return it: where the report is, the
    headline figures, the roles, each stage's seconds this session and the log."""
    check_pipeline(cfg)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    stages = plan(cfg)
    records = [stage.execute() for stage in stages]
    report = next(s for s in stages if isinstance(s, ReportStage))
    timings: dict[str, float] = {}
    for r in records:
        timings[r.key] = timings.get(r.key, 0.0) + r.seconds
    timings["total_this_session"] = time.perf_counter() - t_all
    result = {"report": str(report.out / "report.html"), "headline": report.headline(), "roles": report.roles,
              "timings_s": {k: round(v, 1) for k, v in timings.items()}, "log": [r.line for r in records]}
    write_text_atomic(root / "pipeline.json", json.dumps(result, indent=2, default=str))
    return result
