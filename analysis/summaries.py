"""A run's summary tables, written beside its traces when it completes: a tournament's standings, cross-play,
per-composition and per-seat results; a sweep's propensities and, for donation scenarios, donations.

`SummarySink` takes the run's stored tables one at a time as the arena writes them (only the columns the tables
use, repeated strings as categoricals): a tournament's chunk is reduced at once to one seat result per episode,
so summarising millions of rows costs a fraction of playing them and nothing is read back from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tomarena.analysis import tournament
from tomarena.analysis.propensity import donation_table, propensity_table
from tomarena.files import write_atomic
from tomarena.schema import COLUMN_NAMES, arrow_schema

#: the trace columns each kind of run's tables read (a sweep's donation table needs the answer distributions)
COLUMNS = {
    "tournament": ("kind", "episode_id", "game", "framing", "agent", "policy", "opponents", "action", "reward"),
    "sweep": COLUMN_NAMES,
}


#: seat results a tournament's sink holds before it merges episodes that differ only in their sums
COMPACT_ROWS = 200_000


class SummarySink:
    """Collects a run's tables (`add`) and writes its summary CSVs (`finish`); see arena.runner.RunSink."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.columns = COLUMNS[kind]
        self._parts: list[Any] = []
        self._rows = 0

    def add(self, table: Any) -> None:
        """Take one stored table: a tournament's is reduced to seat results now (and, past COMPACT_ROWS of them,
        to one row per distinct seat, so memory does not grow with repetitions), a sweep's kept whole."""
        frame = table.select(list(self.columns)).to_pandas()
        self._parts.append(tournament.prepare(frame) if self.kind == "tournament" else frame)
        self._rows += len(self._parts[-1])
        if self.kind == "tournament" and self._rows > COMPACT_ROWS:
            self._parts = [tournament.compact(pd.concat([p for p in self._parts if len(p)], ignore_index=True))]
            self._rows = len(self._parts[0])

    def tables(self) -> dict[str, pd.DataFrame]:
        """The summary tables of everything added so far, by file stem."""
        parts = [p for p in self._parts if len(p)]  # an empty frame's object columns would spoil the dtypes
        if not parts:
            return summary_tables(arrow_schema().empty_table().select(list(self.columns)).to_pandas(), self.kind)
        return summary_tables(parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True), self.kind)

    def finish(self, out: Path) -> None:
        """Write the summary tables as OUT/<name>.csv, atomically."""
        for name, table in self.tables().items():
            write_csv_atomic(Path(out) / f"{name}.csv", table)


def summary_tables(frame: pd.DataFrame, kind: str) -> dict[str, pd.DataFrame]:
    """The run's summary tables by file stem, from trace rows (or a tournament's seat results, see
    `tournament.prepare`); `kind` is "tournament" or "sweep"."""
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
