"""load_run(columns=...): the report's lean read of large runs (only the columns it needs, strings categorical,
probs Arrow-backed), with the same values and the same shard checks as the full read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_analysis_fixtures import row, sweep_rows, write_run
from tomarena.analysis.comparisons import donation_tests
from tomarena.analysis.load import load_runs
from tomarena.analysis.propensity import donation_table, propensity_table
from tomarena.analysis.report import REPORT_COLUMNS, report_columns
from tomarena.errors import TraceError


def _donations(policy: str, probs: list[float] | None) -> list[dict]:
    return [row(policy=policy, game="donation", episode_id=f"{policy}#{i}", intended_action=a, action=a,
                action_label=str(a), probs=probs) for i, a in enumerate((2, 5))]


def test_lean_read_keeps_values_and_compacts_types(tmp_path: Path) -> None:
    rows = sweep_rows("m", "ir", "stag_hunt", 4, 1, p=0.25) + _donations("d", [0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    run = write_run(tmp_path / "r", rows + _donations("e", None))
    full, lean = load_runs([run]), load_runs([run], columns=REPORT_COLUMNS)
    assert list(lean.columns) == [*REPORT_COLUMNS, "run_dir"]
    assert "prompt" not in lean.columns and "prompt" in report_columns(training=object())  # type: ignore[arg-type]
    for c in ("policy", "game", "episode_id", "run_dir"):
        assert isinstance(lean[c].dtype, pd.CategoricalDtype)
    assert isinstance(lean["probs"].dtype, pd.ArrowDtype)
    assert lean["probs"].isna().tolist() == full["probs"].isna().tolist()
    for c in ("policy", "game", "run_dir", "round", "intended_action"):
        assert lean[c].astype(object).tolist() == full[c].astype(object).tolist(), c
    pd.testing.assert_series_equal(lean["p_cooperate"], full["p_cooperate"])
    pd.testing.assert_frame_equal(propensity_table(lean), propensity_table(full))
    pd.testing.assert_frame_equal(donation_table(lean), donation_table(full))
    assert set(donation_table(lean)["method"]) == {"exact", "counts"}
    pd.testing.assert_frame_equal(donation_tests(lean, "d", "e"), donation_tests(full, "d", "e"))


def test_lean_read_checks_every_shard_as_the_full_read_does(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sweep_rows("m", "ir", "stag_hunt", 2, 1))
    with pytest.raises(TraceError, match="not trace schema columns: nope"):
        load_runs([run], columns=["policy", "nope"])
    pq.write_table(pa.table({"policy": ["m"], "game": ["stag_hunt"]}), run / "traces" / "part-1.parquet")
    with pytest.raises(TraceError, match=r"part-1.parquet lacks columns run_id, kind"):
        load_runs([run], columns=["policy"])
    (run / "traces" / "part-1.parquet").write_bytes(b"not parquet")
    with pytest.raises(TraceError, match="not readable Parquet"):
        load_runs([run], columns=["policy"])
    with pytest.raises(TraceError, match="no rows"):
        load_runs([write_run(tmp_path / "r2", [])], columns=["policy"])
