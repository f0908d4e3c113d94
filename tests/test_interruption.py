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
    return [sys.executable, "-m", "tomarena.cli", *ARGS, "--out", str(out)] + (["--resume"] if resume else [])


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
