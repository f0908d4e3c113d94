"""The Python API (tomarena.tournament / sweep / report): the same runs as the CLI, with Policy objects defined in
the caller's code as well as spec strings, results as pandas frames, and the CLI's error and cleanup rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tomarena
from tomarena.agents import POLICIES, Decision, Policy
from tomarena.app.cli import main
from tomarena.errors import BackendError, ConfigError, RegistryError

TFT, ALLD = "classic/tit_for_tat", "classic/always_defect"


class Alternator(Policy):
    """C on even rounds, D on odd ones (defined here, never registered)."""

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        return Decision(obs.round % 2, probs=(1.0, 0.0) if obs.round % 2 == 0 else (0.0, 1.0)), state


class Crasher(Policy):
    """Fails in its `after`-th decision, as a model backend that goes away mid-run."""

    id = "test/crasher"

    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        self.calls += 1
        if self.calls >= self.after:
            raise BackendError("backend went away")
        return Decision(0), state


def test_tournament_with_a_policy_object_equals_the_cli_run_of_the_same_policy_registered(tmp_path: Path) -> None:
    res = tomarena.tournament([TFT, ALLD, Alternator()], rounds=4, repetitions=2, out=tmp_path / "api", seed=3)
    assert isinstance(res, tomarena.Result) and res.path == tmp_path / "api"
    # per round (PD T=10 R=5 P=3 S=2; self-play from both seats): TFT 70/16, Alternator and ALLD 69/16 (by name)
    assert list(res.standings["policy"]) == [TFT, "Alternator", ALLD]
    assert list(res.standings["mean_payoff_per_round"]) == [70 / 16, 69 / 16, 69 / 16]
    assert set(res.standings.columns) >= {"policy", "mean_payoff_per_round", "cooperation_rate"}
    assert set(res.crossplay["policy"]) == {TFT, ALLD, "Alternator"}
    assert len(res.traces) == res.summary["rows"] == 6 * 2 * 4 * 2  # 6 pairings x 2 reps x 4 rounds x 2 seats
    assert "Alternator" not in POLICIES  # registered for the run only

    POLICIES.register("Alternator", tomarena.agents.PolicyInfo("Alternator", Alternator, "", "test"))
    try:
        assert main(["tournament", "--policies", f"{TFT},{ALLD},Alternator", "--rounds", "4", "--repetitions", "2",
                     "--seed", "3", "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    finally:
        POLICIES._entries.pop("Alternator")
    for name in ("standings", "crossplay"):
        assert (tmp_path / "api" / f"{name}.csv").read_text() == (tmp_path / "cli" / f"{name}.csv").read_text()
    cols = [c for c in res.traces.columns if c != "run_id"]
    cli = tomarena.Result.load(tmp_path / "cli").traces
    pd.testing.assert_frame_equal(res.traces[cols], cli[cols])


def test_sweep_and_report_through_the_api(tmp_path: Path) -> None:
    sw = tomarena.sweep({"alt": Alternator(), "ref": "strategist/reference"}, games=["prisoners_dilemma",
                        "stag_hunt"], framings="business", out=tmp_path / "sweep")
    assert sw.standings.empty and len(sw.traces) == 4  # 2 policies x 2 games x 1 framing, one decision each
    assert set(sw.traces["policy"]) == {"alt", "ref"}
    assert sw.tables and all(isinstance(t, pd.DataFrame) for t in sw.tables.values())
    tour = tomarena.tournament([TFT, Alternator()], rounds=3, out=tmp_path / "tour")
    rep = tomarena.report([sw, tour.path], out=tmp_path / "rep")
    assert rep.html.is_file() and rep.html.parent == tmp_path / "rep"


def test_api_errors_are_tomarena_errors_and_leave_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="did you mean"):
        tomarena.tournament([TFT, "classic/tit_for_tatt"], out=tmp_path / "a")
    with pytest.raises(ConfigError, match="rounds"):
        tomarena.tournament([TFT], rounds=0, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="given twice"):
        tomarena.tournament([Alternator(), Alternator()], out=tmp_path / "a")
    with pytest.raises(ConfigError, match="cannot create output /proc/forbidden/x"):
        tomarena.tournament([TFT], out="/proc/forbidden/x")
    with pytest.raises(BackendError, match=r"backend went away; removed .*/new, which this run had created"):
        tomarena.tournament([TFT, Crasher(after=1)], out=tmp_path / "new" / "run")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BackendError, match=r"kept .*/run, which holds completed work: call again with resume=True"):
        tomarena.tournament([TFT, Crasher(after=5)], rounds=2, chunk_size=1, out=tmp_path / "run")
    assert (tmp_path / "run" / "manifest.json").is_file() and list((tmp_path / "run" / "traces").iterdir())
    assert "test/crasher" not in POLICIES


def test_import_tomarena_stays_light() -> None:
    code = ("import sys, tomarena; tomarena.tournament; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'ray', 'transformers', 'peft'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


class Counting(Policy):
    """Always C, counting its decisions as a model backend counts its calls."""

    def __init__(self) -> None:
        self.decisions = 0

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        self.decisions += 1
        return Decision(0), state

    def stats(self) -> dict[str, Any]:
        return {"decisions": self.decisions}


def test_policy_objects_are_played_without_touching_the_registry(tmp_path: Path, monkeypatch) -> None:
    """An object runs under its label (even a registered id's) and the registry is neither changed nor written."""
    before = {k: POLICIES.peek(k) for k in POLICIES.ids()}

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the registry was written during an API run")

    monkeypatch.setattr(POLICIES, "register", refuse)
    monkeypatch.setattr(POLICIES, "unregister", refuse)
    res = tomarena.tournament({"classic/always_cooperate": Alternator(), "alt?x=1": Alternator(), "d": ALLD},
                              rounds=2, out=tmp_path / "run")
    assert {k: POLICIES.peek(k) for k in POLICIES.ids()} == before
    # Alternator plays C then D: the object, not the registered always_cooperate, played under that id
    first = res.traces[(res.traces["policy"] == "classic/always_cooperate") & (res.traces["round"] == 1)]
    assert set(first["action"]) == {1}
    assert set(res.standings["policy"]) == {"classic/always_cooperate", "alt?x=1", "d"}


def test_runner_plays_given_objects_and_reports_their_stats(tmp_path: Path) -> None:
    from tomarena.arena.config import validate_config
    from tomarena.arena.runner import run

    counting = Counting()
    cfg = validate_config({"policies": ["counter", TFT], "rounds": 3})
    run(cfg, tmp_path / "run", progress=False, policies={"counter": counting})
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert counting.decisions == 3 * 2 + 3  # self-play decides from both seats, then 3 rounds against TFT
    assert summary["backend_stats"] == {"counter": {"decisions": 9}}
    with pytest.raises(ConfigError, match=r"^policy objects given under 'ghost', which the run does not play; its "
                                          r"policies are 'counter', 'classic/tit_for_tat'$"):
        run(cfg, tmp_path / "other", progress=False, policies={"ghost": counting})
