"""The main job, end to end: teacher -> traces -> LoRA student -> measurements -> tournament -> report.

Stages, each writing under the pipeline's run directory and skipped on re-run once its output is complete:
  teacher_sweep/, teacher_repeated/  the teacher answers the in-sample grid with motivations, and plays repeated games
  traces/teacher.jsonl               its answers exported as TRL chat data
  measure_base/, measure_teacher/    exact propensities on every scenario set (in-sample, OOS framings, OOS games,
                                     donation)
  adapter/                           the student fine-tuned with LoRA on the traces
  measure_student/                   the fine-tuned student measured the same way
  tournament/                        round-robin of teacher, base, fine-tuned student and classic strategies
  report/                            report.html, report.md, plots and tables; pipeline.json: headline and timings
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tomarena.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeacherStage(_Strict):
    """How the teacher produces training traces."""

    samples: int = Field(default=4, ge=1, description="motivated answers per in-sample scenario")
    repeated_opponents: list[str] = Field(default_factory=list, description="classic opponents in repeated games")
    repeated_games: list[str] = Field(default_factory=lambda: ["prisoners_dilemma"])
    repeated_framings: list[str] = Field(default_factory=lambda: ["business"])
    rounds: int = Field(default=5, ge=1)
    max_per_scenario: int | None = Field(default=None, ge=1)


class MeasureStage(_Strict):
    """Which scenario sets are measured, and how many samples when a policy cannot be scored exactly."""

    sets: list[str] = Field(default_factory=lambda: ["in_sample", "oos_framings", "oos_games", "donation"])
    samples: int | None = Field(default=None, ge=1)
    donation_framings: list[str] = Field(default_factory=lambda: ["none"])


class TournamentStage(_Strict):
    """The closing round-robin."""

    classics: list[str] = Field(default_factory=lambda: ["classic/tit_for_tat", "classic/always_defect"])
    games: list[str] = Field(default_factory=lambda: ["prisoners_dilemma"])
    framings: list[str] = Field(default_factory=lambda: ["business"])
    rounds: int = Field(default=5, ge=1)
    repetitions: int = Field(default=1, ge=1)


class PipelineConfig(_Strict):
    """A whole pipeline; see configs/demo.yaml, configs/paper.yaml and configs/smoke.yaml. A config file names at
    least REQUIRED_KEYS (one of each `a|b` group); `defaults: true` fills whatever it leaves out instead."""

    #: top-level keys a pipeline file must set, so an empty or truncated file never runs the default study
    REQUIRED_KEYS: ClassVar[tuple[str, ...]] = ("out", "teacher", "student", "teacher_stage", "measure",
                                                "finetune|finetune_config", "tournament")
    defaults: bool = Field(default=False, description="take the default of every key the file leaves out")
    out: str = "runs/pipeline"
    seed: int = 0
    teacher: str = "study/llama2-70b"
    student: str = "llm/smollm2-135m-instruct"
    student_adapter_option: str = Field(default="adapter", description="spec option that attaches an adapter")
    executor: str = Field(default="local", pattern="^(local|ray)$")
    ray_address: str | None = None
    teacher_stage: TeacherStage = Field(default_factory=TeacherStage)
    measure: MeasureStage = Field(default_factory=MeasureStage)
    finetune: dict[str, Any] = Field(default_factory=dict, description="training config keys (see finetune)")
    finetune_config: str | None = Field(default=None, description="YAML file of training settings")
    tournament: TournamentStage = Field(default_factory=TournamentStage)


def load_pipeline_config(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read and validate a pipeline YAML; problems become one-line ConfigErrors. Keys of the file are checked first
    (unknown keys, bad values, unknown scenario sets), then that it sets every one of REQUIRED_KEYS (after the
    overrides, so `--out` counts) unless it says `defaults: true`."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"pipeline config {p} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"pipeline config {p} is a directory, not a YAML file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline config {p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"pipeline config {p} must be a mapping, got {type(data).__name__}")
    empty = not data
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise ConfigError(f"pipeline config {p}: {where}: {e['msg']}") from exc
    scenario_sets(cfg.measure.sets, cfg.measure.donation_framings)
    missing = [k for k in PipelineConfig.REQUIRED_KEYS if not any(alt in data for alt in k.split("|"))]
    if missing and not cfg.defaults:
        names = ", ".join(k.replace("|", " (or ") + (")" if "|" in k else "") for k in missing)
        raise ConfigError(f"pipeline config {p} {'is empty' if empty else 'is partial'}: missing {names}; set "
                          "them (see configs/demo.yaml) or add `defaults: true` to take the defaults for them")
    return cfg


def scenario_sets(sets: list[str], donation_framings: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """(games, framings) of each named scenario set: the study's sets as the arena defines them, plus the
    donation game in `donation_framings`."""
    from tomarena.arena.config import scenario_set

    known = {name: scenario_set(name) for name in ("in_sample", "oos_framings", "oos_games")}
    known["donation"] = (["donation"], donation_framings)
    for s in sets:
        if s not in known:
            raise ConfigError(f"unknown scenario set {s!r}; allowed: {', '.join(known)}")
    return {s: known[s] for s in sets}


def _complete(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file()


def _run_stage(name: str, run_dir: Path, cfg_dict: dict[str, Any], log: list[str]) -> Path:
    """Run (or resume, or skip when complete) one arena run."""
    from tomarena.api import run_config
    from tomarena.arena.config import validate_config

    t0 = time.perf_counter()
    if _complete(run_dir):
        log.append(f"{name}: complete, skipped")
        return run_dir
    print(f"[pipeline] {name} -> {run_dir}", flush=True)
    run_config(validate_config(cfg_dict), run_dir, resume=(run_dir / "manifest.json").exists())
    log.append(f"{name}: {time.perf_counter() - t0:.1f}s")
    return run_dir


def student_with_adapter(cfg: PipelineConfig, adapter: Path) -> str:
    """The policy spec of the fine-tuned student: the base student's spec plus its adapter option."""
    sep = "&" if "?" in cfg.student else "?"
    return f"{cfg.student}{sep}{cfg.student_adapter_option}={adapter.resolve()}"


def _measure(cfg: PipelineConfig, root: Path, role: str, policy: str, timings: dict, log: list[str]) -> list[Path]:
    runs = []
    for set_name, (games, framings) in scenario_sets(cfg.measure.sets, cfg.measure.donation_framings).items():
        if role == "teacher" and set_name == "in_sample" and cfg.measure.samples == cfg.teacher_stage.samples:
            runs.append(root / "teacher_sweep")  # the same sweep (policy, scenarios, samples, seed): not twice
            continue
        d = {"kind": "sweep", "policies": [policy], "games": games, "framings": framings, "seed": cfg.seed,
             "samples": cfg.measure.samples, "executor": cfg.executor, "ray_address": cfg.ray_address,
             "roles": {role: policy}}
        t0 = time.perf_counter()
        runs.append(_run_stage(f"measure {role} {set_name}", root / f"measure_{role}" / set_name, d, log))
        timings[f"measure_{role}"] = timings.get(f"measure_{role}", 0.0) + time.perf_counter() - t0
    return runs


def _teacher(cfg: PipelineConfig, root: Path, timings: dict, log: list[str]) -> Path:
    from tomarena.arena.config import scenario_set
    from tomarena.arena.export import export_traces

    t0 = time.perf_counter()
    ts = cfg.teacher_stage
    games, framings = scenario_set("in_sample")
    sweep = _run_stage("teacher sweep", root / "teacher_sweep", {
        "kind": "sweep", "policies": [cfg.teacher], "games": games, "framings": framings,
        "samples": ts.samples, "seed": cfg.seed, "executor": cfg.executor, "ray_address": cfg.ray_address}, log)
    runs = [sweep]
    if ts.repeated_opponents:
        runs.append(_run_stage("teacher repeated", root / "teacher_repeated", {
            "policies": [cfg.teacher, *ts.repeated_opponents], "games": ts.repeated_games,
            "framings": ts.repeated_framings, "rounds": ts.rounds, "self_play": False, "seed": cfg.seed,
            "executor": cfg.executor, "ray_address": cfg.ray_address}, log))
    out = root / "traces" / "teacher.jsonl"
    if not out.exists():
        parts = []
        for i, r in enumerate(runs):
            part = root / "traces" / f"part{i}.jsonl"
            export_traces(r, cfg.teacher, part, max_per_scenario=ts.max_per_scenario)
            parts.append(part)
        tmp = out.with_name(".teacher.jsonl.tmp")
        tmp.write_text("".join(p.read_text(encoding="utf-8") for p in parts), encoding="utf-8")
        tmp.replace(out)
    timings["teacher"] = time.perf_counter() - t0
    return out


def _finetune(cfg: PipelineConfig, traces: Path, adapter: Path, timings: dict, log: list[str]) -> None:
    from tomarena.training.config import load_config
    from tomarena.training.finetune import finetune

    t0 = time.perf_counter()
    if (adapter / "tomarena_finetune.json").is_file():
        log.append("finetune: complete, skipped")
        return
    print(f"[pipeline] finetune -> {adapter}", flush=True)
    path = Path(cfg.finetune_config) if cfg.finetune_config else None
    ft_cfg = load_config(path, {"seed": cfg.seed, **cfg.finetune})
    resume = (adapter.parent / (adapter.name + ".partial")).is_dir()
    finetune(traces, cfg.student, adapter, ft_cfg, resume=resume)
    timings["finetune"] = time.perf_counter() - t0
    log.append(f"finetune: {timings['finetune']:.1f}s")


def check_pipeline(cfg: PipelineConfig) -> None:
    """Catch every config mistake before the first stage runs: scenario sets, games, framings, policy specs
    (without loading any model) and the fine-tuning settings."""
    from tomarena.agents.resolve import resolve_policy
    from tomarena.envs.framings import get_framing
    from tomarena.envs.games import get_game
    from tomarena.training.config import load_config

    scenario_sets(cfg.measure.sets, cfg.measure.donation_framings)
    stage = cfg.teacher_stage
    for game in [*stage.repeated_games, *cfg.tournament.games]:
        get_game(game)
    for framing in [*stage.repeated_framings, *cfg.tournament.framings, *cfg.measure.donation_framings]:
        get_framing(framing)
    for spec in [cfg.teacher, cfg.student, *stage.repeated_opponents, *cfg.tournament.classics]:
        resolve_policy(spec)  # models load lazily: this checks names, options and paths only
    load_config(Path(cfg.finetune_config) if cfg.finetune_config else None, {"seed": cfg.seed, **cfg.finetune})


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run every stage (skipping complete ones) and return the headline figures and where the report is."""
    import pandas as pd

    from tomarena.analysis.report import build_report

    check_pipeline(cfg)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    log: list[str] = []
    t_all = time.perf_counter()
    traces = _teacher(cfg, root, timings, log)
    base_runs = _measure(cfg, root, "base", cfg.student, timings, log)
    teacher_runs = _measure(cfg, root, "teacher", cfg.teacher, timings, log)
    adapter = root / "adapter"
    _finetune(cfg, traces, adapter, timings, log)
    student = student_with_adapter(cfg, adapter)
    student_runs = _measure(cfg, root, "student", student, timings, log)
    t0 = time.perf_counter()
    tour = _run_stage("tournament", root / "tournament", {
        "policies": [cfg.teacher, cfg.student, student, *cfg.tournament.classics], "games": cfg.tournament.games,
        "framings": cfg.tournament.framings, "rounds": cfg.tournament.rounds,
        "repetitions": cfg.tournament.repetitions, "seed": cfg.seed, "executor": cfg.executor,
        "ray_address": cfg.ray_address}, log)
    timings["tournament"] = time.perf_counter() - t0
    roles = {"teacher": cfg.teacher, "base": cfg.student, "student": student}
    t0 = time.perf_counter()
    report = build_report([*base_runs, *teacher_runs, *student_runs, tour], root / "report", roles=roles,
                          seed=cfg.seed)
    top3 = pd.read_csv(tour / "standings.csv").head(3)[["policy", "mean_payoff_per_round"]].to_dict("records")
    from tomarena.analysis import study_ref

    headline = {"alignment": report.headline, "study": study_ref.headline(seed=cfg.seed), "tournament_top3": top3}
    timings["report"] = time.perf_counter() - t0
    timings["total_this_session"] = time.perf_counter() - t_all
    result = {"report": str(report.html), "headline": headline, "roles": roles,
              "timings_s": {k: round(v, 1) for k, v in timings.items()}, "log": log}
    (root / "pipeline.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result


def _figures(h: dict[str, Any]) -> str:
    """A headline row's mean improvement [CI], median and r, as one fragment."""
    nan = float("nan")
    return (f"{h['mean_improvement']:7.1f}% [95% CI {h.get('ci_low', nan):.1f}, {h.get('ci_high', nan):.1f}]  "
            f"median {h.get('median', nan):.1f}%  r(student, teacher) {h.get('pearson_r', nan):.2f}")


def print_summary(result: dict[str, Any]) -> None:
    """Print where the report is and the headline figures of a pipeline run, each scenario set beside the study's
    own figures (LLaMa-2-7b -> its LoRA student vs the 70b teacher, from the shipped counts)."""
    print(f"\nreport: {result['report']}")
    study = (result.get("headline") or {}).get("study") or {}
    for name, h in (result.get("headline") or {}).get("alignment", {}).items():
        if not isinstance(h, dict) or h.get("mean_improvement") is None:
            continue
        print(f"  {name:<13} improvement {_figures(h)}  n={h.get('n_scenarios')} small-gap={h.get('n_small_gap')}")
        if study.get(name):
            print(f"  {'':<13} the study   {_figures(study[name])}  (LLaMa-2-7b -> LoRA vs 70b)")
    top = (result.get("headline") or {}).get("tournament_top3") or []
    if top:
        ranked = "; ".join(f"{t['policy']} ({t['mean_payoff_per_round']:.2f}/round)" for t in top)
        print("  tournament top 3: " + ranked)
    print("  stage times (s): " + ", ".join(f"{k} {v}" for k, v in result["timings_s"].items()))
