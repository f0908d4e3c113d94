"""Read run directories written by the arena: manifests and complete trace shards, validated against the schema."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tomarena.errors import ConfigError, TraceError
from tomarena.schema import COLUMN_NAMES, arrow_schema, missing_columns

ROLES = ("teacher", "base", "student")


def read_manifest(run: str | os.PathLike[str]) -> dict[str, Any]:
    """RUN/manifest.json as a dict; a missing or broken manifest is a one-line TraceError."""
    path = Path(run) / "manifest.json"
    if not Path(run).is_dir():
        raise TraceError(f"run directory {run} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TraceError(f"{run} is not a run directory (no manifest.json)") from exc
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict):
        raise TraceError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def shard_paths(run: str | os.PathLike[str]) -> list[Path]:
    """Complete shards of a run (RUN/traces/*.parquet, never temp files), in name order."""
    traces = Path(run) / "traces"
    return sorted(p for p in traces.glob("*.parquet") if p.is_file() and not p.name.startswith(".")) \
        if traces.is_dir() else []


def _read_shard(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"trace shard {path} is not readable Parquet: {str(exc).splitlines()[0]}") from exc
    missing = missing_columns(table.column_names)
    if missing:
        raise TraceError(f"trace shard {path} lacks columns {', '.join(missing)}")
    table = table.select(list(COLUMN_NAMES))
    try:  # shards written before the schema dictionary-encoded its repeated strings read the same way
        return table.cast(arrow_schema())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table


def _check_shard(path: Path) -> None:
    """The footer of one shard: readable Parquet with every schema column (TraceError otherwise); no data read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(f"trace shard {path} is not readable Parquet: {str(exc).splitlines()[0]}") from exc
    missing = missing_columns(names)
    if missing:
        raise TraceError(f"trace shard {path} lacks columns {', '.join(missing)}")


def _read_column(run: str | os.PathLike[str], paths: Sequence[Path], name: str) -> Any:
    """One schema column of every shard as a pandas Series: dictionary strings as a categorical (shards' dictionaries
    unified), list columns (probs) kept in Arrow (pd.ArrowDtype: one buffer, not a numpy array per row)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    field = arrow_schema().field(name)
    chunks = []
    for path in paths:
        try:
            col = pq.read_table(path, columns=[name]).column(0)
        except (pa.ArrowException, OSError) as exc:
            raise TraceError(f"trace shard {path} is not readable Parquet: {str(exc).splitlines()[0]}") from exc
        try:
            col = col.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        chunks.extend(col.chunks)
    try:
        array = pa.chunked_array(chunks) if chunks else pa.chunked_array([], type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TraceError(f"trace shards of {run} disagree on column types: {str(exc).splitlines()[0]}") from exc
    del chunks
    lists = lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None
    return array.to_pandas(types_mapper=lists, self_destruct=True)


def load_run(run: str | os.PathLike[str], columns: Sequence[str] | None = None) -> Any:
    """All complete trace rows of one run as a DataFrame (schema columns plus `run_dir`). `columns`: only these
    schema columns (plus `run_dir`), read one column at a time so that a large run never holds its Arrow table and
    its DataFrame at once; list columns (probs) then stay Arrow-backed (pd.ArrowDtype, missing = pd.NA) and
    `run_dir` is a categorical. Every shard is still checked for every schema column."""
    import pyarrow as pa

    read_manifest(run)
    paths = shard_paths(run)
    if not paths:
        raise TraceError(f"run {run} has no complete trace shards (traces/*.parquet)")
    if columns is not None:
        return _load_columns(run, paths, columns)
    tables = [_read_shard(p) for p in paths]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TraceError(f"trace shards of {run} disagree on column types: {str(exc).splitlines()[0]}") from exc
    frame = table.to_pandas()
    if frame.empty:
        raise TraceError(f"run {run} has trace shards but no rows")
    frame["run_dir"] = str(run)
    return frame


def _load_columns(run: str | os.PathLike[str], paths: Sequence[Path], columns: Sequence[str]) -> Any:
    import pandas as pd
    import pyarrow as pa

    unknown = [c for c in columns if c not in COLUMN_NAMES]
    if unknown:
        raise TraceError(f"not trace schema columns: {', '.join(unknown)}")
    for path in paths:
        _check_shard(path)
    wanted = [c for c in COLUMN_NAMES if c in set(columns)]
    frame = pd.DataFrame({c: _read_column(run, paths, c) for c in wanted}, copy=False)
    pa.default_memory_pool().release_unused()  # the freed read buffers Arrow's pool keeps for reuse (~15% of a frame)
    if frame.empty:
        raise TraceError(f"run {run} has trace shards but no rows")
    frame["run_dir"] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), categories=[str(run)])
    return frame


def load_runs(paths: Sequence[str | os.PathLike[str]], columns: Sequence[str] | None = None) -> Any:
    """Trace rows of several runs concatenated (one DataFrame); at least one run is required. `columns`: as in
    load_run."""
    import pandas as pd

    if not paths:
        raise TraceError("no run directories given")
    frames = [load_run(p, columns) for p in paths]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def roles_from_manifests(paths: Sequence[str | os.PathLike[str]], **given: str | None) -> dict[str, str]:
    """Teacher/base/student labels: explicit values win, else the manifests' "roles" (first run that sets one)."""
    roles: dict[str, str] = {}
    for p in paths:
        for k, v in (read_manifest(p).get("roles") or {}).items():
            if k in ROLES and v:
                roles.setdefault(k, str(v))
    roles.update({k: v for k, v in given.items() if k in ROLES and v})
    return roles


STUDY_SAMPLES = 300  # the study's notebooks divided every count by its 300 samples


def read_propensity_file(path: str | os.PathLike[str], raw: bool = False) -> Any:
    """A propensity CSV made elsewhere: columns model, framing, game and either n_cooperate, n_total or
    p_cooperate; returns the propensity-table shape (model, framing, game, n_cooperate, n_valid, p_cooperate).
    `raw`: p = n_cooperate / 300, as the study's notebooks computed it, instead of n_cooperate / n_total."""
    import pandas as pd


    p = Path(path)
    try:
        df = pd.read_csv(p)
    except FileNotFoundError as exc:
        raise ConfigError(f"propensity file {p} does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"propensity file {p} is not a readable CSV: {str(exc).splitlines()[0]}") from exc
    counts = {"n_cooperate", "n_total"} <= set(df.columns)
    need = ["model", "framing", "game"] + ([] if counts or "p_cooperate" in df.columns else ["n_cooperate",
                                                                                               "n_total"])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ConfigError(f"propensity file {p} lacks columns {', '.join(missing)}; needs model, framing, game and "
                          "either n_cooperate,n_total or p_cooperate")
    if df.empty:
        raise ConfigError(f"propensity file {p} has no rows")
    return _propensity_values(df, p, counts, raw)


def _propensity_values(df: Any, p: Path, counts: bool, raw: bool = False) -> Any:
    import pandas as pd


    out = df[["model", "framing", "game"]].astype(str)
    try:
        if counts:
            k, n = pd.to_numeric(df["n_cooperate"]), pd.to_numeric(df["n_total"])
            bad = (n <= 0) | (k < 0) | (k > n) | k.isna() | n.isna()
            out = out.assign(n_cooperate=k, n_valid=n, p_cooperate=k / (STUDY_SAMPLES if raw else n))
        else:
            pc = pd.to_numeric(df["p_cooperate"])
            bad = ~pc.between(0.0, 1.0)
            out = out.assign(n_cooperate=float("nan"), n_valid=float("nan"), p_cooperate=pc)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"propensity file {p} has non-numeric counts or probabilities") from exc
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ConfigError(f"propensity file {p} row {row + 2}: need 0 <= n_cooperate <= n_total, n_total > 0 and "
                          f"0 <= p_cooperate <= 1; got {df.iloc[row].to_dict()}")
    return out
