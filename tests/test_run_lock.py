"""One run per directory: a run holds an OS lock (flock on RUN/.tomarena.lock) for its whole life, a second run on
the same --out refuses in one line (exit 2) and removes nothing, and a lock left by a dead process blocks nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import tomarena
from tomarena.app.cli import main
from tomarena.arena.store import RunStore
from tomarena.errors import ConfigError
from tomarena.outputs import LOCK_NAME, claim_run_dir, guard_outputs

# a run of ~1.5 s that costs no CPU: the simulated accelerator sleeps 0.1 s per decision batch, one shard per match
SLOW = ["tournament", "--policies", "sim:flat?latency_ms=100,classic/tit_for_tat", "--rounds", "5",
        "--chunk-size", "1", "--seed", "3", "--no-progress"]
BUSY = "is in use by another tomarena run"
#: starts the CLI once the file named by argv[1] exists (a barrier across processes)
LAUNCHER = textwrap.dedent("""
    import os, sys, time
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.001)
    from tomarena.app.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _frame(out: Path) -> pd.DataFrame:
    df = RunStore(out).read_frame()
    return df.drop(columns="run_id").reset_index(drop=True)


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The traces of the slow run made alone."""
    out = tmp_path_factory.mktemp("solo") / "run"
    assert main([*SLOW, "--out", str(out)]) == 0
    assert not (out / LOCK_NAME).exists()  # a run that ends lets go, and leaves no lock file behind
    return _frame(out)


def _launch(tmp_path: Path, go: Path, out: Path) -> subprocess.Popen:
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER)
    return subprocess.Popen([sys.executable, str(script), str(go), *SLOW, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_released_together_on_one_out(tmp_path: Path, solo: pd.DataFrame) -> None:
    """Both processes wait at a barrier, then start the same run on the same --out: one completes with the traces of
    a solo run, the other refuses in one line with exit status 2 and deletes nothing."""
    go, out = tmp_path / "go", tmp_path / "run"
    procs = [_launch(tmp_path, go, out) for _ in range(2)]
    time.sleep(1.0)  # both interpreters are up and waiting at the barrier
    go.touch()
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    err = next(r[2] for r in results if r[0] == 2)
    assert err.count("\n") == 1 and err.startswith(f"tomarena: error: run directory {out} {BUSY}"), err
    assert "removed" not in err and "Traceback" not in err
    pd.testing.assert_frame_equal(_frame(out), solo)
    assert (out / "summary.json").is_file() and not (out / LOCK_NAME).exists()


def test_a_second_run_started_mid_run_refuses_and_the_first_completes(tmp_path: Path, solo: pd.DataFrame) -> None:
    """The reported case: a second run on the same --out while the first is writing (it used to delete the first's
    directory, 'which this run had created', and crash it)."""
    go, out = tmp_path / "go", tmp_path / "fresh" / "run"
    go.touch()
    first = _launch(tmp_path, go, out)
    deadline = time.time() + 60
    while not (out / "manifest.json").exists() and time.time() < deadline:
        time.sleep(0.005)
    # freeze the first run mid-write (it keeps its lock while stopped), so the second surely meets it however slowly
    # the second interpreter starts on a loaded machine
    os.kill(first.pid, signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first run ended before it could be paused: make SLOW slower"
        second = subprocess.run([sys.executable, "-m", "tomarena.app.cli", *SLOW, "--out", str(out)],
                                capture_output=True, text=True, timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2 and second.stderr.count("\n") == 1 and BUSY in second.stderr, second.stderr
    assert first.wait(timeout=120) == 0, first.communicate()
    pd.testing.assert_frame_equal(_frame(out), solo)


def test_a_lock_left_by_a_killed_run_blocks_nobody(tmp_path: Path, solo: pd.DataFrame) -> None:
    """flock dies with its process: the lock file a SIGKILLed run leaves behind lets --resume in, which completes
    the run as if it had never stopped."""
    go, out = tmp_path / "go", tmp_path / "run"
    go.touch()
    proc = _launch(tmp_path, go, out)
    deadline = time.time() + 60
    while not list((out / "traces").glob("part-*.parquet")) and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / LOCK_NAME).read_text().strip() == str(proc.pid)  # stale: its holder is dead
    assert main([*SLOW, "--out", str(out), "--resume"]) == 0
    pd.testing.assert_frame_equal(_frame(out), solo)
    assert not (out / LOCK_NAME).exists()


def _hold_in_thread(root: Path) -> tuple[threading.Event, threading.Thread]:
    """Claim `root` in another thread (as a concurrent run would) until the returned event is set."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        claim = claim_run_dir(root)
        held.set()
        done.wait(30)
        claim.release()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(10)
    return done, thread


def test_a_held_directory_is_refused_by_every_entry_point_and_left_untouched(tmp_path: Path, capsys) -> None:
    new = tmp_path / "new" / "run"
    done, thread = _hold_in_thread(new)  # created by the other holder: not this command's, though it was missing
    try:
        before = _files(tmp_path)
        assert main(["tournament", "--policies", "classic/tit_for_tat", "--out", str(new), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err == (f"tomarena: error: run directory {new} {BUSY} (pid {os.getpid()}, this process); wait for it "
                       "to finish or choose another --out\n")
        # a bad flag found only after the claim does not clean the holder's directory away either
        assert main(["sweep", "--policies", "classic/nope", "--out", str(new)]) == 2
        assert BUSY in capsys.readouterr().err
        with pytest.raises(ConfigError, match=BUSY):
            tomarena.tournament(["classic/tit_for_tat"], out=new)
        with pytest.raises(ConfigError, match=BUSY):
            RunStore(new).open({"config": {}}, resume=False)
        assert _files(tmp_path) == before and new.is_dir()
    finally:
        done.set()
        thread.join()
    assert not (new / LOCK_NAME).exists()
    assert main(["tournament", "--policies", "classic/tit_for_tat", "--rounds", "2", "--out", str(new),
                 "--no-progress"]) == 0


def test_claims_nest_in_one_thread_and_are_released_once(tmp_path: Path) -> None:
    root = tmp_path / "a" / "run"
    outer = claim_run_dir(root)
    assert outer.created and outer.was_empty and (root / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    inner = claim_run_dir(root)  # the store's claim inside the command's
    assert not inner.released and (root / LOCK_NAME).exists()
    inner.release()
    inner.release()  # idempotent
    assert (root / LOCK_NAME).exists()  # the outer claim still holds it
    outer.release()
    assert not (root / LOCK_NAME).exists()
    again = claim_run_dir(root)
    assert not again.created and again.was_empty
    again.release()


def test_a_failed_command_never_removes_a_tree_holding_another_run(tmp_path: Path) -> None:
    """The command made `new` alone, but another run has since started inside it: `new` stays (only the command's
    own output in it goes)."""
    new, other = tmp_path / "new", tmp_path / "new" / "other"
    with pytest.raises(ConfigError, match=f"boom; removed {new / 'mine'}, which this run had created$"), \
            guard_outputs([new / "mine"]):
        done, thread = _hold_in_thread(other)
        (new / "mine").write_text("x")
        raise ConfigError("boom")
    assert other.is_dir() and not (new / "mine").exists()
    done.set()
    thread.join()
    with pytest.raises(ConfigError, match=f"boom; removed {new / 'run'}, which this run had created$"), \
            guard_outputs([new / "run"], run_dirs=[new / "run"]):
        raise ConfigError("boom")  # its own run directory under a directory that existed: only that is removed
    with pytest.raises(ConfigError, match=f"removed {tmp_path / 'x'}, which this run had created$"), \
            guard_outputs([tmp_path / "x" / "run"], run_dirs=[tmp_path / "x" / "run"]):
        raise ConfigError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_out_that_is_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "f").write_text("keep")
    assert main(["tournament", "--policies", "classic/tit_for_tat", "--out", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err == (f"tomarena: error: --out {tmp_path / 'f'} exists and is not a directory; "
                                       "choose another --out\n")
    assert (tmp_path / "f").read_text() == "keep"
