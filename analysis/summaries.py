"""A run's summary tables, written beside its traces when it completes: a tournament's standings, cross-play,
per-composition and per-seat results; a sweep's propensities and, for donation scenarios, donations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tomarena.analysis import tournament
from tomarena.analysis.propensity import donation_table, propensity_table
from tomarena.files import write_atomic


def summary_tables(frame: pd.DataFrame, kind: str) -> dict[str, pd.DataFrame]:
    """The run's summary tables by file stem, from its trace frame; `kind` is "tournament" or "sweep"."""
    if kind == "sweep":
        tables = {"propensities": propensity_table(frame)}
        donations = donation_table(frame)
        return {**tables, "donations": donations} if len(donations) else tables
    frame = tournament.prepare(frame)
    return {"standings": tournament.standings(frame), "crossplay": tournament.crossplay(frame),
            "compositions": tournament.composition_table(frame), "seats": tournament.seat_table(frame)}


def write_csv_atomic(path: Path, table: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV atomically (floats to 10 significant digits)."""
    return write_atomic(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.10g"))


def write_summaries(root: Path, frame: Any, kind: str = "tournament") -> dict[str, Path]:
    """Write the run's summary tables as ROOT/<name>.csv (atomically) and return their paths."""
    return {name: write_csv_atomic(Path(root) / f"{name}.csv", table)
            for name, table in summary_tables(frame, kind).items()}
