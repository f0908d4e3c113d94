"""A run's summary tables, written beside its traces when it completes: a tournament's standings, cross-play,
per-composition and per-seat results; a sweep's propensities and, for donation scenarios, donations.

The traces are read back with only the columns the tables use, their repeated strings kept dictionary-encoded
(pandas categoricals), so summarising a tournament of millions of rows costs a fraction of playing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tomarena.analysis import tournament
from tomarena.analysis.load import shard_paths
from tomarena.analysis.propensity import donation_table, propensity_table
from tomarena.files import write_atomic
from tomarena.schema import COLUMN_NAMES, arrow_schema

#: the trace columns each kind of run's tables read (a sweep's donation table needs the answer distributions)
COLUMNS = {
    "tournament": ["kind", "episode_id", "game", "framing", "agent", "policy", "opponents", "action",
                   "action_label", "reward"],
    "sweep": list(COLUMN_NAMES),
}


def read_columns(root: str | Path, columns: list[str]) -> pd.DataFrame:
    """Some columns of a run's stored traces as a DataFrame (shard order; repeated strings as categoricals)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = shard_paths(root)
    if not paths:
        return arrow_schema().empty_table().select(columns).to_pandas()
    schema = pa.schema([arrow_schema().field(c) for c in columns])
    tables = [pq.read_table(p, columns=columns) for p in paths]  # shards written before the encoding: cast
    return pa.concat_tables([t if t.schema.equals(schema) else t.cast(schema) for t in tables]).to_pandas()


def summary_tables(frame: pd.DataFrame, kind: str) -> dict[str, pd.DataFrame]:
    """The run's summary tables by file stem, from its trace frame; `kind` is "tournament" or "sweep"."""
    if kind == "sweep":
        tables = {"propensities": propensity_table(frame)}
        donations = donation_table(frame)
        return {**tables, "donations": donations} if len(donations) else tables
    seat_results = tournament.prepare(frame)
    return {"standings": tournament.standings(seat_results), "crossplay": tournament.crossplay(seat_results),
            "compositions": tournament.composition_table(seat_results), "seats": tournament.seat_table(seat_results)}


def write_csv_atomic(path: Path, table: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV atomically (floats to 10 significant digits)."""
    return write_atomic(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.10g"))


def write_summaries(root: str | Path, kind: str = "tournament", frame: Any = None) -> dict[str, Path]:
    """Write the run's summary tables as ROOT/<name>.csv (atomically) and return their paths; the traces are read
    from ROOT unless their `frame` is given."""
    frame = read_columns(root, COLUMNS[kind]) if frame is None else frame
    return {name: write_csv_atomic(Path(root) / f"{name}.csv", table)
            for name, table in summary_tables(frame, kind).items()}
