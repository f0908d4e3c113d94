"""The trace store: a run directory with Parquet shards written atomically, a manifest, and summary tables.

Layout:  RUN/manifest.json   RUN/traces/part-*.parquet   RUN/summary.json   and the summary tables:
tournaments RUN/standings.csv, crossplay.csv, compositions.csv, seats.csv; sweeps RUN/propensities.csv (and
donations.csv when the sweep has donation scenarios).
A shard holds only complete episodes and appears under its final name only once fully written (temp file +
rename), so a killed run never leaves a shard that reads as complete; `--resume` skips every episode found in a
shard and never duplicates one. While a run writes, it holds RUN/.tomarena.lock (tomarena.outputs.claim_run_dir):
a second run on the same directory refuses instead of writing into it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tomarena.arena.rows import rows_table
from tomarena.errors import ConfigError, TraceError
from tomarena.files import atomic_path, versions, write_json_atomic
from tomarena.outputs import LOCK_NAME, RunClaim, claim_run_dir
from tomarena.schema import COLUMN_NAMES, arrow_schema


def git_sha() -> str | None:
    """The git commit of the tomarena checkout, when it is one."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def _seed_key_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """How the seed identity of a policy label differs between a stored manifest and a resuming run's ("label by X,
    this run by Y"), else None; a manifest without seed_keys seeded by the labels themselves."""
    if "seed_keys" not in new:
        return None
    before = old.get("seed_keys") or {label: label for label in old.get("policies", [])}
    for label, key in new["seed_keys"].items():
        if before.get(label, key) != key:
            return f"{label!r} by {before[label]!r}, this run by {key!r}"
    return None


class RunStore:
    """A run directory: create it (or reopen it to resume), append shards, read them back (whole or some columns)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.traces = self.root / "traces"
        self.claim: RunClaim | None = None  # held from open() until close() or the store is dropped

    def close(self) -> None:
        """Let go of the run directory (open() claimed it)."""
        if self.claim is not None:
            self.claim.release()
            self.claim = None

    @property
    def manifest_path(self) -> Path:
        """RUN/manifest.json."""
        return self.root / "manifest.json"

    def open(self, manifest: dict[str, Any], resume: bool) -> None:
        """Claim the run directory for this process for the store's life (a run directory is written by one run at
        a time), then create it, or check that an existing one holds the same config when resuming."""
        self.claim = claim_run_dir(self.root)  # nests in the command's own claim (tomarena.outputs.guard_outputs)
        try:
            self._check_or_create(manifest, resume)
        except BaseException:
            self.close()
            raise

    def _check_or_create(self, manifest: dict[str, Any], resume: bool) -> None:
        if self.manifest_path.exists():
            old = self.read_manifest()
            if not resume:
                raise ConfigError(f"run directory {self.root} already holds a run; pass --resume to continue it "
                                  "or choose another --out")
            if old.get("config") != manifest.get("config"):
                raise ConfigError(f"run directory {self.root} holds a run with a different config; "
                                  "resume with the same config or choose another --out")
            changed = _seed_key_change(old, manifest)
            if changed:
                raise ConfigError(f"run directory {self.root} seeded {changed}; the policy's files changed since, or "
                                  "the run predates seeds by content hash, so its matches would mix two seedings; "
                                  "choose another --out")
            if old.get("schedule") != manifest.get("schedule"):
                raise ConfigError(f"run directory {self.root} was scheduled as {old.get('schedule')!r}, this "
                                  f"tomarena schedules {manifest.get('schedule')!r}; choose another --out")
            return
        if any(p.name != LOCK_NAME for p in self.root.iterdir()):
            raise ConfigError(f"--out {self.root} exists and is not a tomarena run directory; choose another --out")
        self.traces.mkdir(parents=True, exist_ok=True)
        full = {**manifest, "created": datetime.now(UTC).isoformat(), "versions": versions(), "git_sha": git_sha()}
        write_json_atomic(self.manifest_path, full)

    def read_manifest(self) -> dict[str, Any]:
        """The run's manifest; a missing or broken one is a TraceError."""
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TraceError(f"{self.root} is not a run directory (no manifest.json)") from exc
        except json.JSONDecodeError as exc:
            raise TraceError(f"{self.manifest_path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc

    def complete(self) -> bool:
        """Whether the run finished: summary.json is written last, so its presence marks a complete run."""
        return (self.root / "summary.json").is_file()

    def resumable(self) -> bool:
        """Whether the directory holds a run with stored work that `resume` would keep (a manifest and at least one
        complete shard), complete or not."""
        return self.manifest_path.is_file() and bool(self.shard_paths())

    def shard_paths(self) -> list[Path]:
        """Complete shards, in name order (temp files are never listed)."""
        return sorted(self.traces.glob("part-*.parquet")) if self.traces.is_dir() else []

    def write_shard(self, rows: Iterable[dict[str, Any]] | Any) -> Path | None:
        """Write complete episodes' rows (dicts, or a pyarrow Table) as one new shard, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = rows if isinstance(rows, pa.Table) else rows_table(rows)
        if table.num_rows == 0:
            return None
        name = f"part-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        final = self.traces / name
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp, write_statistics=False)  # shards are read whole: min/max stats halve nothing
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        return final

    def iter_tables(self, columns: Sequence[str]) -> Iterator[Any]:
        """Some columns of each stored shard as a pyarrow Table, one shard at a time in name order, dictionary-
        encoded columns kept as stored (shards written before the encoding are cast to it)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([arrow_schema().field(c) for c in columns])
        for path in self.shard_paths():
            table = pq.read_table(path, columns=list(columns))
            yield table if table.schema.equals(schema) else table.cast(schema)

    def read_table(self) -> Any:
        """All stored rows as one pyarrow Table, sorted by episode, round and agent; dictionary-encoded columns come
        back as plain strings (Arrow cannot sort dictionaries; shards written before the encoding read the same)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = arrow_schema(decoded=True)
        paths = self.shard_paths()
        if not paths:
            return schema.empty_table()
        table = pa.concat_tables([pq.read_table(p).select(list(COLUMN_NAMES)).cast(schema) for p in paths])
        return table.sort_by([("episode_id", "ascending"), ("round", "ascending"), ("agent", "ascending")])

    def read_frame(self) -> Any:
        """All stored rows as a pandas DataFrame with the schema's columns."""
        return self.read_table().to_pandas()[list(COLUMN_NAMES)]
