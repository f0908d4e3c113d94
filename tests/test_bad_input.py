"""Bad input everywhere — payoffs, configs, registry ids, policy specs, paths, trace files, model directories:
each is one line on stderr naming the problem, exit status 2, no traceback, and no output that looks complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tomarena.app.cli import main

TFT = "classic/tit_for_tat"


def write(path: Path, text: str) -> str:
    """Write `text` to `path` and return the path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def bad_parquet(path: Path) -> str:
    """A Parquet file with the wrong schema for training traces."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), path)
    return str(path)


# (id, argv builder taking tmp_path, words that the message must contain)
CASES = [
    ("unknown policy", lambda t: ["tournament", "--policies", "classic/tit_for_tatt", "--out", str(t / "o")],
     ["classic/tit_for_tatt", "did you mean"]),
    ("rounds out of range", lambda t: ["tournament", "--policies", TFT, "--rounds", "0", "--out", str(t / "o")],
     ["rounds"]),
    ("unknown game", lambda t: ["tournament", "--policies", TFT, "--games", "chess", "--out", str(t / "o")],
     ["chess"]),
    ("unknown framing", lambda t: ["tournament", "--policies", TFT, "--framings", "moon", "--out", str(t / "o")],
     ["moon"]),
    ("payoffs break the PD ordering", lambda t: ["tournament", "--policies", TFT, "--games",
                                                 "prisoners_dilemma?R=3&S=0&T=2&P=1", "--out", str(t / "o")],
     ["T > R > P > S"]),
    ("payoff not a number", lambda t: ["play", TFT, TFT, "--game", "stag_hunt?R=ten"], ["R='ten'"]),
    ("donation multiplier", lambda t: ["play", TFT, TFT, "--game", "donation?multiplier=0.5"], ["multiplier"]),
    ("config unknown key", lambda t: ["tournament", "--config", write(t / "c.yaml", "policies: [x]\nroundz: 3\n"),
                                      "--out", str(t / "o")], ["roundz"]),
    ("config wrong type", lambda t: ["tournament", "--config", write(t / "c.yaml", f"policies: [{TFT}]\n"
                                                                     "rounds: ten\n"), "--out", str(t / "o")],
     ["rounds"]),
    ("config out of range", lambda t: ["tournament", "--config", write(t / "c.yaml", f"policies: [{TFT}]\n"
                                                                       "noise: 2\n"), "--out", str(t / "o")],
     ["noise"]),
    ("config missing", lambda t: ["tournament", "--policies", TFT, "--config", str(t / "nope.yaml"),
                                  "--out", str(t / "o")], ["nope.yaml"]),
    ("config not YAML", lambda t: ["tournament", "--config", write(t / "c.yaml", "policies: [a\n  b: }"),
                                   "--out", str(t / "o")], ["YAML"]),
    ("unknown policy option", lambda t: ["sweep", "--policies", "classic/random?q=1", "--out", str(t / "o")],
     ["'q'", "p"]),
    ("policy option out of range", lambda t: ["sweep", "--policies", "classic/random?p=2", "--out", str(t / "o")],
     ["p"]),
    ("missing model path", lambda t: ["sweep", "--policies", f"hf:{t / 'no-model'}", "--out", str(t / "o")],
     ["no-model"]),
    ("malformed endpoint URL", lambda t: ["sweep", "--policies", "openai:ftp:/x?model=m", "--out", str(t / "o")],
     ["URL"]),
    ("unknown framing in play", lambda t: ["play", TFT, TFT, "--framing", "atlantis"], ["atlantis"]),
    ("bad flag value", lambda t: ["play", TFT, TFT, "--rounds", "many"], ["--rounds", "many"]),
    ("unknown registry", lambda t: ["list", "strategies"], ["strategies", "games"]),
    ("export from a missing run", lambda t: ["traces", "export", str(t / "missing"), "--policy", TFT,
                                             "--out", str(t / "x.jsonl")], ["missing"]),
    ("export from a broken run", lambda t: ["traces", "export", str(Path(write(t / "run" / "manifest.json",
                                                                              "{broken")).parent),
                                            "--policy", TFT, "--out", str(t / "x.jsonl")], ["manifest"]),
    ("report on a missing run", lambda t: ["report", str(t / "missing"), "--out", str(t / "rep")], ["missing"]),
    ("alignment CSV malformed", lambda t: ["analyze", "alignment", "--propensities",
                                           write(t / "p.csv", "who,what\n1,2\n"), "--teacher", "a", "--base", "b",
                                           "--student", "c"], ["column"]),
    ("empty trace file", lambda t: ["finetune", "--traces", write(t / "t.jsonl", ""), "--base", str(t),
                                    "--out", str(t / "o")], ["no examples"]),
    ("malformed trace file", lambda t: ["finetune", "--traces", write(t / "t.jsonl", "{oops\n"), "--base", str(t),
                                        "--out", str(t / "o")], ["t.jsonl:1", "JSON"]),
    ("trace file with the wrong schema", lambda t: ["finetune", "--traces", bad_parquet(t / "t.parquet"),
                                                    "--base", str(t), "--out", str(t / "o")], ["messages"]),
    ("missing base model", lambda t: ["finetune", "--traces", write(t / "t.jsonl", json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "C"}]}) + "\n"),
        "--base", str(t / "nomodel"), "--out", str(t / "o")], ["nomodel", "not found"]),
    ("fine-tuning value out of range", lambda t: ["finetune", "--traces", str(t / "t.jsonl"), "--base", str(t),
                                                  "--out", str(t / "o"), "--lr", "-1"], ["lr"]),
    ("pipeline unknown key", lambda t: ["pipeline", "--config", write(t / "p.yaml", "studnet: x\n")], ["studnet"]),
    ("pipeline unknown scenario set", lambda t: ["pipeline", "--config", write(
        t / "p.yaml", f"out: {t / 'o'}\nmeasure: {{sets: [in_sample, mars]}}\n")], ["mars", "in_sample"]),
]


@pytest.mark.parametrize("argv_of, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(tmp_path: Path, capsys, argv_of, needles: list[str]) -> None:
    argv = argv_of(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    out = tmp_path / "o"
    assert not (out / "summary.json").exists() and not (out / "adapter_config.json").exists()
    assert not (out / "pipeline.json").exists()


def test_a_finished_run_is_never_overwritten_by_mistake(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["tournament", "--policies", f"{TFT},classic/always_defect", "--rounds", "3", "--out", str(out),
                 "--no-progress"]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    for argv in (["tournament", "--policies", TFT, "--rounds", "3", "--out", str(out)],
                 ["tournament", "--policies", TFT, "--rounds", "3", "--out", str(out), "--resume"]):
        assert main(argv) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


# every command that writes, with an output path that cannot be created: /proc refuses new entries even to root,
# and a path under a regular file is not a directory
def _writers(t: Path, out: str) -> list[list[str]]:
    cfg = write(t / "pipe.yaml", f"defaults: true\nout: {out}\n")
    return [["tournament", "--policies", TFT, "--out", out], ["sweep", "--policies", TFT, "--out", out],
            ["traces", "export", str(t), "--policy", TFT, "--out", f"{out}/t.jsonl"],
            ["finetune", "--traces", str(t / "t.jsonl"), "--base", str(t), "--out", out],
            ["report", str(t), "--out", out], ["pipeline", "--config", cfg]]


@pytest.mark.parametrize("where", ["/proc/forbidden/x", "afile/x"])
@pytest.mark.parametrize("command", ["tournament", "sweep", "traces", "finetune", "report", "pipeline"])
def test_unwritable_output_is_one_line_for_every_writing_command(tmp_path: Path, capsys, where: str,
                                                                 command: str) -> None:
    (tmp_path / "afile").write_text("not a directory")
    out = where if where.startswith("/") else str(tmp_path / where)
    argv = next(a for a in _writers(tmp_path, out) if a[0] == command)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"tomarena: error: cannot create output {out}"), err
    assert (tmp_path / "afile").read_text() == "not a directory"


@pytest.mark.parametrize("text, flags, missing", [
    ("", [], "is empty: missing out, teacher, student, teacher_stage, measure, finetune (or finetune_config), "
             "tournament;"),
    ("# only a comment\n", ["--out", "o"], "is empty: missing teacher, student, teacher_stage, measure,"),
    ("teacher: strategist/reference\nstudent: llm/smollm2-135m-instruct\nmeasure: {sets: [in_sample]}\n", [],
     "is partial: missing out, teacher_stage, finetune (or finetune_config), tournament;"),
])
def test_empty_or_partial_pipeline_config_names_the_missing_keys(tmp_path: Path, capsys, monkeypatch, text: str,
                                                                 flags: list[str], missing: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline", "--config", write(tmp_path / "p.yaml", text), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and "`defaults: true`" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_pipeline_defaults_true_takes_the_defaults_and_the_shipped_configs_are_complete() -> None:
    from tomarena.app.pipeline import PipelineConfig, load_pipeline_config

    root = Path(__file__).parents[1] / "configs"
    for name in ("demo", "paper", "smoke"):
        assert not load_pipeline_config(root / f"{name}.yaml").defaults
    path = root.parent / "tests" / ".defaults-only.yaml"  # a file in the checkout: not under tmp_path's cleanup
    try:
        path.write_text("defaults: true\n")
        assert load_pipeline_config(path) == PipelineConfig(defaults=True)
    finally:
        path.unlink()


class _Crasher:
    """A registered policy whose backend goes away at its `after`-th decision (after validation, mid-run)."""

    def __init__(self, after: int) -> None:
        from tomarena.agents import Decision, Policy
        from tomarena.errors import BackendError

        class Crashing(Policy):
            calls = 0

            def act(self, obs, state, rng):
                type(self).calls += 1
                if type(self).calls >= after:
                    raise BackendError("backend went away")
                return Decision(0), state

        self.cls = Crashing

    def __enter__(self) -> str:
        from tomarena.agents import POLICIES, PolicyInfo

        POLICIES.register("test/crashing", PolicyInfo("test/crashing", self.cls, "", "test"))
        return "test/crashing"

    def __exit__(self, *exc: object) -> None:
        from tomarena.agents import POLICIES

        POLICIES._entries.pop("test/crashing")


def test_a_run_failing_after_validation_removes_what_it_created(tmp_path: Path, capsys) -> None:
    out = tmp_path / "new" / "run"
    with _Crasher(after=1) as crashing:
        assert main(["tournament", "--policies", f"{TFT},{crashing}", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == f"tomarena: error: backend went away; removed {tmp_path / 'new'}, which this run had created\n"
    assert list(tmp_path.iterdir()) == []
    # the same --out is free for the next run
    assert main(["tournament", "--policies", TFT, "--rounds", "2", "--out", str(out), "--no-progress"]) == 0


def test_a_run_failing_after_validation_with_completed_work_is_kept_for_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()  # an empty directory given as --out is the run's to fill
    argv = ["tournament", "--policies", f"{TFT},test/crashing", "--rounds", "2", "--chunk-size", "1",
            "--out", str(out), "--no-progress"]
    with _Crasher(after=5):  # TFT self-play, then 2 decisions vs TFT, then it fails in its self-play
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"tomarena: error: backend went away; kept {out}, which holds completed work: re-run with "
                   "--resume to continue\n")
    assert len(list((out / "traces").glob("part-*.parquet"))) == 2
    with _Crasher(after=10**6):
        assert main([*argv, "--resume"]) == 0
    assert (out / "summary.json").is_file()


def test_a_failed_export_or_report_leaves_no_partial_output(tmp_path: Path, capsys) -> None:
    assert main(["traces", "export", str(tmp_path / "missing"), "--policy", TFT,
                 "--out", str(tmp_path / "new" / "t.jsonl")]) == 2
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "rep" / "x")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 2
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_fails_mid_write_is_one_line_and_its_new_twin_is_removed(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["tournament", "--policies", "strategist/reference", "--rounds", "1", "--out", str(run),
                 "--no-progress"]) == 0
    (tmp_path / "t.parquet").mkdir()  # the Parquet twin's name is taken by a directory: its rename fails
    capsys.readouterr()
    assert main(["traces", "export", str(run), "--policy", "strategist/reference",
                 "--out", str(tmp_path / "t.jsonl")]) == 2  # without --force an existing twin is refused up front
    assert "already exists; choose another --out or pass --force" in capsys.readouterr().err
    assert main(["traces", "export", str(run), "--policy", "strategist/reference",
                 "--out", str(tmp_path / "t.jsonl"), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tomarena: error: cannot write output {tmp_path / 't.parquet'}: ") and \
        err.endswith(f"; removed {tmp_path / 't.jsonl'}, which this run had created\n") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "t.parquet"]
    assert not any((tmp_path / "t.parquet").iterdir())


def test_debug_switch_shows_the_chain_of_causes(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["play", TFT, "classic/nope"]
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1  # the default stays one line
    monkeypatch.setenv("TOMARENA_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "direct cause" in err  # the registry's cause is kept
    assert err.splitlines()[-1] == "tomarena: error: unknown policy 'classic/nope'; did you mean classic/random, " \
        "classic/pavlov, classic/grudger?"
