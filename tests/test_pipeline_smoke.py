"""The smoke pipeline (tiny random student, reference-strategist teacher) end to end through the CLI: every
stage writes its output, the report and headline exist, a re-run skips every stage, and bad configs are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).parents[1]


def smoke_config(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """configs/smoke.yaml pointed at the session's tiny model and a temporary run directory."""
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg.update(out=str(tmp_path / "run"), student=f"hf:{tiny_model_dir}")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def tomarena(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "tomarena.app.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, check=False)


@pytest.mark.slow
def test_smoke_pipeline_runs_end_to_end_and_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = smoke_config(tmp_path, tiny_model_dir)
    first = tomarena("pipeline", "--config", str(config))
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "run"
    for stage in ("teacher_sweep", "teacher_repeated", "measure_base/in_sample", "measure_base/oos_games",
                  "measure_teacher/in_sample", "measure_student/oos_games", "tournament"):
        assert (run / stage / "summary.json").is_file(), stage
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "adapter" / "tomarena_finetune.json").is_file()
    assert (run / "report" / "report.html").is_file() and (run / "report" / "report.md").is_file()
    pngs = {f.name: f.read_bytes()[:8] for f in (run / "report").glob("*.png")}
    for figure in ("bars_by_framing.png", "bars_by_game.png", "improvement_heatmap.png", "fingerprints.png",
                   "crossplay_prisoners_dilemma.png"):
        assert pngs.get(figure) == b"\x89PNG\r\n\x1a\n", figure
    assert sum(name.startswith("heatmap_") for name in pngs) == 3  # teacher, base and fine-tuned student
    html = (run / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= len(pngs)  # self-contained: every figure is inlined
    traces = (run / "traces" / "teacher.jsonl").read_text().splitlines()
    assert sorted(p.name for p in (run / "traces").iterdir()) == [  # the per-run parts are joined, then removed
        "repeated_gpt-4.jsonl", "repeated_gpt-4.parquet", "teacher.jsonl", "teacher.parquet"]
    assert pq.read_table(run / "traces" / "teacher.parquet").num_rows == len(traces)
    assert traces and all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in traces)

    result = json.loads((run / "pipeline.json").read_text())
    assert set(result["headline"]["alignment"]) >= {"in_sample", "oos_games"}
    top3 = result["headline"]["tournament_top3"]
    assert len(top3) == 3 and top3[0]["mean_payoff_per_round"] >= top3[-1]["mean_payoff_per_round"]
    assert "report:" in first.stdout and "improvement" in first.stdout and "tournament top 3" in first.stdout
    # the repeated-game stage: recorded GPT-4 decisions -> tomarena prompts -> adapter -> benchmark -> closed loop
    examples = [json.loads(x) for x in (run / "traces" / "repeated_gpt-4.jsonl").read_text().splitlines()]
    assert len(examples) == 8 and {x["policy"] for x in examples} == {"akata/gpt-4"}
    assert all(int(x["game"].split("/")[1]) % 3 != 0 for x in examples)  # training-split games only
    assert (run / "repeated" / "adapter" / "tomarena_finetune.json").is_file()
    rep = result["headline"]["repeated"]
    chosen = {r["policy"]: r for r in rep["benchmark"] if r["games"] == "chosen" and r["group"] == "all"}
    assert set(chosen) == {"option1", "repeat_own", "copy_partner", "table", "base", "student"}
    assert {r["decisions"] for r in chosen.values()} == {100}  # game 66: GPT-4's 100 held-out decisions there
    by_round = {(r["policy"], r["group"]): r["decisions"] for r in rep["benchmark"] if r["games"] == "chosen"}
    assert by_round[("student", "round 1")] == 10 and by_round[("student", "rounds 2-10")] == 90
    assert {r["decisions"] for r in rep["benchmark"] if r["games"] == "all" and r["group"] == "all"} == {4800}
    loops = sorted((r["who"], r["partner"]) for r in rep["closed_loop"])
    partners = ("classic/always_cooperate", "classic/always_defect", "classic/defect_once")
    assert loops == sorted((w, p) for w in ("base", "student") for p in partners)  # one seat each (symmetric game)
    assert all(len(r["moves"]) == 3 and set(r["moves"]) <= {"A", "B"} for r in rep["closed_loop"])
    assert {r["partner_moves"] for r in rep["closed_loop"] if r["partner"] == partners[2]} == {"BAA"}
    assert "repeated games: the student fine-tuned on gpt-4" in first.stdout and "closed-loop play" in first.stdout

    second = tomarena("pipeline", "--config", str(config))
    assert second.returncode == 0, second.stderr[-3000:]
    log = json.loads((run / "pipeline.json").read_text())["log"]
    assert log and all("complete, skipped" in line for line in log), log


def test_bad_pipeline_configs_are_one_line(tmp_path: Path) -> None:
    bad_key = tmp_path / "a.yaml"
    bad_key.write_text("out: x\nteachr: strategist/reference\n")
    bad_set = tmp_path / "b.yaml"
    bad_set.write_text(f"out: {tmp_path / 'b'}\nmeasure: {{sets: [in_sample, moon]}}\n")
    for path, needle in ((bad_key, "teachr"), (bad_set, "moon"), (tmp_path / "missing.yaml", "does not exist")):
        proc = tomarena("pipeline", "--config", str(path))
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_section_finetune_section_and_overrides(tmp_path: Path) -> None:
    from tomarena.app.pipeline import load_pipeline_config

    ft = tmp_path / "ft.yaml"
    ft.write_text("epochs: 7\nrank: 4\nseed: 99\n")
    p = tmp_path / "p.yaml"
    p.write_text(f"defaults: true\nseed: 5\nexecutor: ray\nfinetune_config: {ft}\nfinetune: {{rank: 2}}\n")
    cfg = load_pipeline_config(p, {"out": "o", "run": {"workers": 3, "ray_address": None}})
    assert (cfg.run.executor, cfg.run.workers, cfg.out) == ("ray", 3, "o")  # the older top-level key is read
    assert (cfg.finetune.epochs, cfg.finetune.rank, cfg.finetune.seed) == (7, 2, 5)  # inline > file; pipeline seed
    p.write_text("defaults: true\nfinetune: {seed: 8}\nrun: {executor: local, chunk_size: 2}\n")
    cfg = load_pipeline_config(p, {"run": {"executor": "ray"}})
    assert (cfg.run.executor, cfg.run.chunk_size, cfg.finetune.seed) == ("ray", 2, 8)


@pytest.mark.parametrize(("text", "needle"), [
    ("executor: ray\nrun: {executor: local}\n", "sets executor both at the top level and under `run:`"),
    ("run: {replicas: 0}\n", "bad pipeline value run.replicas=0 in pipeline config "),
    ("run: {slots: 2}\n", "unknown pipeline key 'run.slots' in pipeline config "),
    ("finetune: {lr: -1}\n", "bad pipeline value finetune.lr=-1 in pipeline config "),
    ("finetune_config: nowhere.yaml\n", "fine-tuning config file nowhere.yaml does not exist"),
])
def test_bad_run_and_finetune_sections_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    from tomarena.app.pipeline import load_pipeline_config
    from tomarena.errors import ConfigError

    (tmp_path / "p.yaml").write_text("defaults: true\n" + text)
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(tmp_path / "p.yaml")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_stages_are_planned_in_order_and_skip_once_complete(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tomarena.app.pipeline import ArenaStage, ReportStage, load_pipeline_config, plan

    cfg = load_pipeline_config(smoke_config(tmp_path, tiny_model_dir))
    stages = plan(cfg)
    assert [(s.key, s.label) for s in stages] == [
        ("teacher", "teacher sweep"), ("teacher", "teacher repeated"), ("teacher", "teacher traces"),
        ("measure_base", "measure base in_sample"), ("measure_base", "measure base oos_games"),
        ("measure_teacher", "measure teacher in_sample"),  # exact, not the teacher sweep's 1 sample: measured
        ("measure_teacher", "measure teacher oos_games"), ("finetune", "finetune"),
        ("measure_student", "measure student in_sample"),
        ("measure_student", "measure student oos_games"), ("tournament", "tournament"),
        ("repeated", "import akata"), ("repeated", "repeated traces (gpt-4, train split)"),
        ("repeated", "repeated finetune"), ("repeated", "benchmark on gpt-4's held-out decisions"),
        ("repeated", "closed-loop play"), ("report", "report")]
    report = stages[-1]
    assert isinstance(report, ReportStage) and len(report.runs) == 6 and report.tournament == tmp_path / "run" / \
        "tournament"
    assert "repeated" in str(stages[-4].out) and stages[-4].out.name == "adapter"  # the repeated-game adapter
    sweep = stages[0]
    assert isinstance(sweep, ArenaStage) and not sweep.complete()
    (sweep.out).mkdir(parents=True)
    (sweep.out / "summary.json").write_text("{}")
    record = sweep.execute()
    assert (record.key, record.line) == ("teacher", "teacher sweep: complete, skipped") and record.seconds < 1
    for run in [*report.runs, report.tournament, report.repeated["closed_loop"]]:
        run.mkdir(parents=True, exist_ok=True)
        (run / "summary.json").write_text("{}")
    report.repeated["benchmark"].write_text("")
    report.out.mkdir(parents=True)
    report.headline_path.write_text("{}")
    assert report.complete()
    os.utime(report.tournament / "summary.json", (time.time() + 5, time.time() + 5))  # a run newer than the report
    assert not report.complete()
