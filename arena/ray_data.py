"""One-shot sweeps at scale with Ray Data: the sweep's chunks (scenario x sample) as a dataset, mapped by a pool of
workers that each hold one replica of every heavy policy (`map_batches` with a callable class, `concurrency` =
replicas). One-shot decisions have no sequential dependence, so there is no model service to call: each worker
plays whole chunks in-process, with the same chunks, batches and per-decision seeds as the local executor, and
returns each chunk's rows as an Arrow IPC shard. Ray Data restarts a crashed worker and retries its batch.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from tomarena.agents.base import Policy
from tomarena.arena.episode import MatchSpec
from tomarena.arena.ray_service import load_policy

#: plays one chunk: (specs, policies, run seed, run id) -> pyarrow Table
PlayChunk = Callable[[Sequence[MatchSpec], Mapping[str, Policy], int, str], Any]


def is_sweep(chunks: Sequence[Sequence[MatchSpec]]) -> bool:
    """Whether every match of `chunks` is a one-shot sweep decision (and there is at least one)."""
    return any(chunks) and all(s.kind == "sweep" for c in chunks for s in c)


def table_to_ipc(table: Any) -> bytes:
    """A pyarrow Table as Arrow IPC stream bytes (schema and dictionaries kept exactly)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_table(data: bytes) -> Any:
    """The pyarrow Table written by `table_to_ipc`."""
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class SweepWorker:
    """A Ray Data worker: loads every heavy policy once (its replica), then plays the chunks it is given."""

    def __init__(self, light: Mapping[str, Policy], heavy: Sequence[str], threads: int | None, run_seed: int,
                 run_id: str, play: PlayChunk) -> None:
        self.policies = {**light, **{label: load_policy(label, threads) for label in heavy}}
        self.run_seed, self.run_id, self.play = run_seed, run_id, play

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """Play each chunk of the batch; rows back as one IPC shard per chunk."""
        shards = [table_to_ipc(self.play(pickle.loads(blob), self.policies, self.run_seed, self.run_id))
                  for blob in batch["specs"]]
        return {"index": list(batch["index"]), "shard": shards}


def sweep_with_ray_data(chunks: Sequence[Sequence[MatchSpec]], policies: Mapping[str, Policy], run_seed: int,
                        run_id: str, play: PlayChunk, replicas: int, threads: int | None = None,
                        num_cpus: float = 0, num_gpus: float = 0) -> Iterator[tuple[int, Any]]:
    """Yield (chunk index, rows table) of a sweep's chunks as Ray Data's `replicas` workers finish them."""
    import ray.data

    items = [{"index": i, "specs": pickle.dumps(list(c))} for i, c in enumerate(chunks)]
    light = {k: p for k, p in policies.items() if not p.heavy}
    heavy = [k for k, p in policies.items() if p.heavy]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        SweepWorker, fn_constructor_kwargs={"light": light, "heavy": heavy, "threads": threads,
                                            "run_seed": run_seed, "run_id": run_id, "play": play},
        batch_size=1, concurrency=replicas, num_cpus=num_cpus, num_gpus=num_gpus or None)
    for row in ds.iter_rows():
        yield int(row["index"]), ipc_to_table(row["shard"])
