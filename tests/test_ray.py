"""Ray executor: identical traces to the local executor (classic, strategist and a tiny LLM in actors), and a
policy actor killed mid-run is restarted, its calls retried, and the result equals the fault-free run."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.app.api import run_config as run
from tomarena.arena.config import validate_config
from tomarena.arena.executors import LocalExecutor, RayExecutor
from tomarena.arena.runner import EXECUTION_KEYS
from tomarena.arena.store import RunStore

pytestmark = pytest.mark.slow


def _policies(tiny: str) -> list[str]:
    return ["classic/tit_for_tat", "classic/random?p=0.5", "strategist/reference", f"hf:{tiny}?temperature=1.0"]


def _content(run_dir) -> pa.Table:
    t = RunStore(run_dir).read_table()
    return t.drop_columns(["run_id"])


def test_local_and_ray_write_identical_traces(tmp_path, tiny_model_dir, ray_session):
    """The local model scores one prompt per forward (batch-invariant), so the traces are the same bits whether
    each match is its own chunk on the local executor or chunks of 5 share model calls on Ray's replicas."""
    base = {"policies": _policies(str(tiny_model_dir)), "games": ["prisoners_dilemma", "stag_hunt"],
            "framings": ["business"], "rounds": 3, "seed": 4}
    local = run(validate_config({**base, "chunk_size": 1}), tmp_path / "local", progress=False)
    remote = run(validate_config({**base, "executor": "ray", "workers": 2, "chunk_size": 5}), tmp_path / "ray",
                 progress=False)
    a, b = _content(local), _content(remote)
    assert a.num_rows == b.num_rows > 0
    assert a.equals(b)
    assert (local / "standings.csv").read_text() == (remote / "standings.csv").read_text()
    assert not set(base) & EXECUTION_KEYS - {"chunk_size"}


def test_killed_policy_actor_is_restarted_and_results_equal_fault_free(tmp_path, tiny_model_dir, ray_session):
    from tomarena.arena.config import build_specs
    from tomarena.arena.runner import chunks as cut

    cfg = validate_config({"policies": [f"hf:{tiny_model_dir}", "classic/tit_for_tat", "classic/always_defect"],
                           "rounds": 3, "repetitions": 2, "seed": 1})
    specs = build_specs(cfg, {"prisoners_dilemma": 2})
    chunks = cut(specs, 2)
    pols = {p: resolve_policy(p) for p in cfg.policies}
    expected = {i: t for i, t in LocalExecutor(pols).run(chunks, cfg.seed, "r")}
    ex = RayExecutor(pols, workers=1)
    ex.start()
    (handle,) = ex.actors.values()
    first_pid = ray_session.get(handle.pid.remote())
    got = {}
    for i, table in ex.run(chunks, cfg.seed, "r"):
        got[i] = table
        if len(got) == 1:
            ray_session.kill(handle, no_restart=False)  # the model's actor dies mid-run
    assert ray_session.get(handle.pid.remote()) != first_pid  # it was restarted
    ex.close()
    assert sorted(got) == sorted(expected)
    for i in expected:
        for col in expected[i].column_names:
            assert got[i].column(col).to_pylist() == expected[i].column(col).to_pylist(), (i, col)
