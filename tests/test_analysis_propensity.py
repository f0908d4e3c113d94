"""Reading run directories (validation, complete shards only) and the propensity / donation tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_analysis_fixtures import match_rows, row, sweep_rows, write_run
from tomarena.analysis.comparisons import donation_tests, doubled_tests, model_tests
from tomarena.analysis.load import load_runs, read_propensity_file, roles_from_manifests
from tomarena.analysis.propensity import donation_table, propensity_table
from tomarena.errors import ConfigError, TraceError


def test_load_runs_reads_complete_shards_only(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sweep_rows("m", "ir", "stag_hunt", 4, 1),
                    extra_files={".part-1.parquet.tmp": b"half written", "part-2.parquet.tmp": b"junk"})
    frame = load_runs([run])
    assert len(frame) == 4 and set(frame["run_dir"]) == {str(run)}


def test_load_runs_broken_inputs_are_one_line_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="does not exist"):
        load_runs([tmp_path / "nope"])
    (tmp_path / "nomanifest").mkdir()
    with pytest.raises(TraceError, match="no manifest.json"):
        load_runs([tmp_path / "nomanifest"])
    empty = tmp_path / "empty"
    (empty / "traces").mkdir(parents=True)
    (empty / "manifest.json").write_text("{}")
    with pytest.raises(TraceError, match="no complete trace shards"):
        load_runs([empty])
    (empty / "traces" / "part-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(TraceError, match="not readable Parquet"):
        load_runs([empty])
    (empty / "manifest.json").write_text("{bad")
    with pytest.raises(TraceError, match="not valid JSON"):
        load_runs([empty])
    with pytest.raises(TraceError, match="no run directories"):
        load_runs([])


def test_load_runs_rejects_missing_columns_and_empty_shards(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sweep_rows("m", "ir", "stag_hunt", 2, 1))
    pq.write_table(pa.table({"policy": ["m"], "game": ["stag_hunt"]}), run / "traces" / "part-1.parquet")
    with pytest.raises(TraceError, match=r"part-1.parquet lacks columns run_id, kind"):
        load_runs([run])
    run2 = write_run(tmp_path / "r2", [])
    with pytest.raises(TraceError, match="no rows"):
        load_runs([run2])


def test_roles_from_manifest_and_flags(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", sweep_rows("m", "ir", "stag_hunt", 1, 1), roles={"teacher": "t", "base": "b"})
    assert roles_from_manifests([run], student="s", base=None) == {"teacher": "t", "base": "b", "student": "s"}
    assert roles_from_manifests([run], base="b2")["base"] == "b2"


def test_propensity_counts_with_wilson_and_invalid_counted() -> None:
    frame = pd.DataFrame(sweep_rows("m", "ir", "stag_hunt", 10, 8, n_invalid=3))
    t = propensity_table(frame).iloc[0]
    assert (t["n_rows"], t["n_valid"], t["n_invalid"], t["n_cooperate"]) == (13, 10, 3, 8)
    assert t["method"] == "counts" and t["p_cooperate"] == pytest.approx(0.8)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((0.490162, 0.943318), abs=1e-6)


def test_propensity_exact_when_every_valid_row_is_scored() -> None:
    frame = pd.DataFrame(sweep_rows("m", "ir", "stag_hunt", 5, 1, p=0.37, n_invalid=1))
    t = propensity_table(frame).iloc[0]
    assert t["method"] == "exact" and t["p_cooperate"] == pytest.approx(0.37)
    assert t["ci_low"] == t["ci_high"] == pytest.approx(0.37) and t["n_invalid"] == 1


def test_propensity_by_round_and_mixed_rows_fall_back_to_counts() -> None:
    rows = match_rows("a", "b", [0, 1], [0, 0]) + [row(policy="a", game="prisoners_dilemma", framing="none",
                                                     kind="tournament", round=0, intended_action=1)]
    t = propensity_table(pd.DataFrame(rows), by_round=True)
    a0 = t[(t["model"] == "a") & (t["round"] == 0)].iloc[0]
    assert a0["method"] == "counts" and a0["p_cooperate"] == 0.5 and a0["n_valid"] == 2


def _donations(policy: str, amounts: list[int], framing: str = "business") -> list[dict]:
    return [row(policy=policy, game="donation", framing=framing, intended_action=a, action=a, action_label=str(a))
            for a in amounts]


def test_donation_table_means_and_exact_expectation() -> None:
    rows = _donations("m", [2, 4, 6]) + [row(policy="e", game="donation", framing="business", intended_action=0,
                                             action=0, action_label="0", probs=[0.5, 0.0, 0.5] + [0.0] * 8)]
    t = donation_table(pd.DataFrame(rows)).set_index("model")
    assert t.loc["m", "mean_contribution"] == 4.0 and t.loc["m", "method"] == "counts"
    assert t.loc["e", "mean_contribution"] == 1.0 and t.loc["e", "method"] == "exact"
    assert propensity_table(pd.DataFrame(rows)).empty


def test_comparison_tables() -> None:
    rows = (sweep_rows("a", "ir", "stag_hunt", 100, 60) + sweep_rows("b", "ir", "stag_hunt", 100, 45)
            + sweep_rows("a", "ir", "stag_hunt_doubled", 100, 45)
            + _donations("a", [1, 2, 3]) + _donations("b", [4, 5, 7]))
    frame = pd.DataFrame(rows)
    props = propensity_table(frame)
    z = model_tests(props, "a", "b").iloc[0]
    assert z["difference"] == pytest.approx(0.15) and z["p_value"] == pytest.approx(0.03169, abs=1e-5)
    d = doubled_tests(props).iloc[0]
    assert d["doubled"] == "stag_hunt_doubled" and d["difference"] == pytest.approx(-0.15)
    w = donation_tests(frame, "a", "b").iloc[0]
    assert w["difference"] == pytest.approx(2.0 - 16 / 3)


def test_read_propensity_file_variants_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("model,framing,game,n_cooperate,n_total\nb,ir,stag_hunt,8,10\n")
    assert read_propensity_file(f)["p_cooperate"].tolist() == [0.8]
    f.write_text("model,framing,game,p_cooperate\nb,ir,stag_hunt,0.25\n")
    assert read_propensity_file(f)["p_cooperate"].tolist() == [0.25]
    f.write_text("model,framing,n_total\nb,ir,3\n")
    with pytest.raises(ConfigError, match="lacks columns game, n_cooperate"):
        read_propensity_file(f)
    f.write_text("model,framing,game,n_cooperate,n_total\nb,ir,stag_hunt,11,10\n")
    with pytest.raises(ConfigError, match="row 2"):
        read_propensity_file(f)
    with pytest.raises(ConfigError, match="does not exist"):
        read_propensity_file(tmp_path / "none.csv")


def test_propensity_reports_format_adherence_as_other_mass() -> None:
    rows = sweep_rows("m", "ir", "stag_hunt", 2, 1, p=0.6)
    rows[0]["other_mass"], rows[1]["other_mass"] = 0.1, 0.3
    t = propensity_table(pd.DataFrame(rows)).iloc[0]
    assert t["other_mass"] == pytest.approx(0.2) and t["method"] == "exact"
    assert math.isnan(propensity_table(pd.DataFrame(sweep_rows("s", "ir", "stag_hunt", 3, 1))).iloc[0]["other_mass"])


def test_runs_mixing_plain_and_dictionary_string_shards_load(tmp_path: Path) -> None:
    from tomarena.schema import arrow_schema

    run = write_run(tmp_path / "r", sweep_rows("m", "ir", "stag_hunt", 3, 2))  # dictionary-encoded strings
    old = sweep_rows("m", "team", "stag_hunt", 2, 1)  # a shard written before the dictionary schema
    pq.write_table(pa.Table.from_pylist(old, schema=arrow_schema(decoded=True)), run / "traces" / "part-1.parquet")
    frame = load_runs([run])
    assert len(frame) == 5 and sorted(frame["framing"].unique()) == ["ir", "team"]
