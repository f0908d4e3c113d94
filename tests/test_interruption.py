"""A tournament killed with SIGKILL at random points and resumed ends identical to an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from tomarena.arena.store import RunStore

ARGS = ["tournament", "--policies",
        "classic/tit_for_tat,classic/random?p=0.5,classic/win_stay_lose_shift,strategist/reference",
        "--games", "prisoners_dilemma,stag_hunt", "--framings", "business,team", "--rounds", "8",
        "--repetitions", "3", "--chunk-size", "3", "--seed", "9", "--no-progress"]


def _cmd(out: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "tomarena.app.cli", *ARGS, "--out", str(out)] + (["--resume"] if resume else [])


def _kill_after_shards(out: Path, resume: bool, min_shards: int, rng: random.Random) -> bool:
    """Start a run, SIGKILL it once it has written `min_shards` shards (plus a random delay); False if it finished."""
    proc = subprocess.Popen(_cmd(out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "traces").glob("part-*.parquet"))) >= min_shards:
            time.sleep(rng.uniform(0, 0.05))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path):
    rng = random.Random(1234)
    full = tmp_path / "full"
    assert subprocess.run(_cmd(full, False), capture_output=True, timeout=300).returncode == 0
    out = tmp_path / "killed"
    kills = 0
    for attempt, shards in enumerate((1, 4, 9)):
        kills += _kill_after_shards(out, resume=attempt > 0, min_shards=shards, rng=rng)
    assert kills >= 2
    res = subprocess.run(_cmd(out, True), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    a, b = RunStore(full).read_frame(), RunStore(out).read_frame()
    assert not b.duplicated(["episode_id", "round", "agent"]).any()
    cols = [c for c in a.columns if c != "run_id"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert (out / "standings.csv").read_text() == (full / "standings.csv").read_text()


def test_pipeline_killed_at_random_points_then_resumed_equals_uninterrupted(tmp_path, tiny_model_dir):
    import json

    import numpy as np
    import yaml
    from safetensors.numpy import load_file

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / "smoke.yaml").read_text())
    cfg["student"] = f"hf:{tiny_model_dir}"
    config = tmp_path / "smoke.yaml"
    config.write_text(yaml.safe_dump(cfg))

    def cmd(out: Path) -> list[str]:
        return [sys.executable, "-m", "tomarena.app.cli", "pipeline", "--config", str(config), "--out", str(out)]

    # both runs use the same directory: the student's label (hence its seeds) names its adapter's path
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert subprocess.run(cmd(cut), capture_output=True, timeout=600).returncode == 0
    cut.rename(full)
    rng = random.Random(77)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(cmd(cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(2.0, 7.0))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 1
    res = subprocess.run(cmd(cut), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]

    stages = sorted(p.parent.relative_to(full) for p in full.rglob("summary.json"))
    assert stages == sorted(p.parent.relative_to(cut) for p in cut.rglob("summary.json")) and len(stages) >= 7
    for stage in stages:
        a, b = RunStore(full / stage).read_frame(), RunStore(cut / stage).read_frame()
        assert not b.duplicated(["episode_id", "round", "agent"]).any(), stage
        cols = [c for c in a.columns if c != "run_id"]
        pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert (full / "traces" / "teacher.jsonl").read_bytes() == (cut / "traces" / "teacher.jsonl").read_bytes()
    wa, wb = (load_file(str(d / "adapter" / "adapter_model.safetensors")) for d in (full, cut))
    assert wa.keys() == wb.keys() and all(np.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert json.loads((cut / "pipeline.json").read_text())["headline"]
