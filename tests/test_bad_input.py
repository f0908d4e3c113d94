"""Bad input everywhere — payoffs, configs, registry ids, policy specs, paths, trace files, model directories:
each is one line on stderr naming the problem, exit status 2, no traceback, and no output that looks complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tomarena.cli import main

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
