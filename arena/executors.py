"""Executors run chunks of matches and yield their trace rows: in-process (local) or on Ray.

On Ray, each heavy policy (an LLM) lives in actors that load it once (arena/ray_service.py); the other policies
travel with the chunks. Default: one actor per heavy policy, chunks as Ray tasks, so within a chunk every round's
decisions for one model go out as one batch. With `replicas` set, each heavy policy becomes a model service of
`replicas` async actors that merge the requests of every chunk in flight; chunks then run in threaded runner actors,
`concurrency` chunks in flight at once (bounded: back-pressure on the driver), each routed by the driver to the
replica with the fewest chunks in flight. One-shot sweeps on the model service go through Ray Data instead
(arena/ray_data.py). Since episodes are pure functions of their seeds, a retried or resubmitted chunk gives exactly
the rows the first attempt would have: actors restart after a crash, their calls are retried, and a chunk whose
result is lost with its node is played again.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from tomarena.agents.base import Policy
from tomarena.arena.config import ExecutionSettings
from tomarena.arena.episode import MatchSpec, play_episodes
from tomarena.arena.fast import play_vectorised, vectorisable
from tomarena.arena.ray_data import is_sweep, sweep_with_ray_data
from tomarena.arena.ray_service import RESTARTS, RemotePolicy, policy_actor_class, replica_class
from tomarena.arena.rows import rows_table
from tomarena.envs.framings import FRAMINGS
from tomarena.envs.games import GAMES
from tomarena.errors import ConfigError
from tomarena.options import validate

#: CPUs a replica asks for when none are set: Ray's SPREAD spreads only actors that ask for some resource (zero-CPU
#: replicas all landed on one node of two in tests/test_cluster.py)
SPREAD_CPU = 0.01


def play_chunk(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], run_seed: int, run_id: str,
               on_decisions: Callable[[int], None] | None = None) -> Any:
    """Play a chunk of matches and return its rows as one pyarrow Table (the shard to write); `on_decisions` hears
    the decisions of each round on the episode loop (the vectorised engine plays a chunk in one go)."""
    if vectorisable(specs, policies):
        return play_vectorised(specs, policies, run_seed, run_id)
    episodes = play_episodes(specs, policies, run_seed, run_id, on_decisions)
    return rows_table(r for s in specs for r in episodes[s.episode_id])


class LocalExecutor:
    """Runs chunks one after another in this process."""

    def __init__(self, policies: Mapping[str, Policy]) -> None:
        self.policies = policies

    def run(self, chunks: Iterable[Sequence[MatchSpec]], run_seed: int, run_id: str,
            on_decisions: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
        """Yield (chunk index, rows table) as each chunk finishes, taking the next chunk only then (so chunks may be
        cut as the run goes); `on_decisions` hears each round's decisions."""
        for i, chunk in enumerate(chunks):
            yield i, play_chunk(chunk, self.policies, run_seed, run_id, on_decisions)

    def close(self) -> None:
        """Nothing to release."""


def load_registries() -> None:
    """Fill the lazy game and framing registries of this process (a module function, so that Ray workers call it on
    their own registries, not on copies pickled with a class defined inside a function)."""
    FRAMINGS.ids(), GAMES.ids()


def runner_class() -> Any:
    """The Ray actor class that plays chunks against the model service, many at once in threads."""
    import ray

    @ray.remote(num_cpus=0, max_restarts=RESTARTS, max_task_retries=RESTARTS)
    class ChunkRunner:
        """Plays chunks in threads (set per actor with max_concurrency), so many chunks wait on the model service
        at once without a process each."""

        def __init__(self) -> None:
            load_registries()  # before threads race to do it

        def play(self, chunk: list, policies: Mapping[str, Policy], run_seed: int, run_id: str, route: int) -> Any:
            routed = {k: p.routed(route) if isinstance(p, RemotePolicy) else p for k, p in policies.items()}
            return play_chunk(chunk, routed, run_seed, run_id)

        def node_id(self) -> str:
            return ray.get_runtime_context().get_node_id()

    return ChunkRunner


def _driver_threads() -> int:
    """torch's intra-op thread count in this process (its default when torch is not loaded yet)."""
    import torch

    return torch.get_num_threads()


def ensure_ray(address: str | None, num_cpus: int | None = None) -> Any:
    """Join the Ray cluster at `address`, or start a local session with this machine's cores (no dashboard)."""
    import ray

    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot start or join Ray (address {address!r}): {str(exc).splitlines()[0]}") from exc
    return ray


class RayExecutor:
    """Runs chunks on Ray: heavy policies in one actor each (default), or as a model service of `replicas` async
    actors each (`replicas` set, spread over the cluster's nodes), with `concurrency` chunks in flight."""

    def __init__(self, policies: Mapping[str, Policy], address: str | None = None, workers: int | None = None,
                 replicas: int | None = None, concurrency: int | None = None, max_batch: int = 64,
                 batch_wait_ms: float = 2.0, num_cpus: float = 0, num_gpus: float = 0,
                 sweep_path: str = "ray_data") -> None:
        validate(ExecutionSettings, {"workers": workers, "replicas": replicas, "concurrency": concurrency,
                                     "max_batch": max_batch, "batch_wait_ms": batch_wait_ms, "replica_cpus": num_cpus,
                                     "replica_gpus": num_gpus, "sweep_path": sweep_path}, "executor setting")
        self.ray = ray = ensure_ray(address)
        self.service, self.n_routes, self.local_policies = replicas is not None, replicas or 1, dict(policies)
        self.sweep_path = sweep_path
        self.threads = None if address else _driver_threads()
        self.max_batch, self.batch_wait_ms, self.num_cpus, self.num_gpus = max_batch, batch_wait_ms, num_cpus, num_gpus
        self.workers = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        self.concurrency = concurrency or self.workers
        self._task = ray.remote(num_cpus=1, max_retries=RESTARTS, retry_exceptions=True)(play_chunk)
        self.replicas: dict[str, list[Any]] = {}
        self.runners: list[Any] = []
        self.policies: dict[str, Policy] = {}

    @property
    def actors(self) -> dict[str, Any]:
        """The one actor of each heavy policy (default path; empty before the first run)."""
        return {} if self.service else {label: hs[0] for label, hs in self.replicas.items()}

    def start(self) -> None:
        """Start the heavy policies' actors (and the chunk runners of the model service) unless they are up."""
        if self.policies:
            return
        ray = self.ray
        self.replicas = self._start_models(self.local_policies)
        initial = {label: ray.get(hs[0].initial_state.remote()) for label, hs in self.replicas.items()}
        self.policies = {label: RemotePolicy(self.replicas[label], label, initial[label])
                         if label in self.replicas else pol for label, pol in self.local_policies.items()}
        if self.service:
            self.per_runner, n = -(-self.concurrency // self.workers), min(self.workers, self.concurrency)
            self.runners = [runner_class().options(max_concurrency=self.per_runner).remote() for _ in range(n)]

    def _start_models(self, policies: Mapping[str, Policy]) -> dict[str, list[Any]]:
        """Start the actors of every heavy policy: one PolicyActor, or `replicas` ModelReplicas spread over nodes."""
        out = {}
        for label, pol in policies.items():
            if not pol.heavy:
                continue
            if not self.service:
                out[label] = [policy_actor_class().remote(label, self.threads)]
                continue
            cls = replica_class(self.num_cpus or SPREAD_CPU, self.num_gpus).options(scheduling_strategy="SPREAD")
            out[label] = [cls.remote(label, self.threads, self.max_batch, self.batch_wait_ms)
                          for _ in range(self.n_routes)]
        return out

    def _replace_runner(self, k: int) -> None:
        """A fresh runner in slot `k` when the one there is gone for good (its restarts spent or its node lost)."""
        if not self.service:
            return
        try:
            self.ray.get(self.runners[k].node_id.remote(), timeout=30)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
            self.runners[k] = runner_class().options(max_concurrency=self.per_runner).remote()

    def _submit(self, runner: int, route: int, chunk: Sequence[MatchSpec], pol_ref: Any, run_seed: int,
                run_id: str) -> Any:
        if self.service:
            return self.runners[runner].play.remote(list(chunk), pol_ref, run_seed, run_id, route)
        return self._task.remote(list(chunk), pol_ref, run_seed, run_id)

    def run(self, chunks: Iterable[Sequence[MatchSpec]], run_seed: int, run_id: str,
            on_decisions: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
        """Yield (chunk index, rows table) as chunks finish, keeping at most `concurrency` chunks in flight and taking
        the next chunk only when a slot frees (the rest are not even cut yet, so memory stays bounded by the chunks
        in flight). A one-shot sweep on the model service runs through Ray Data instead. Decisions are played
        remotely, so `on_decisions` is not called."""
        chunks = iter(chunks)
        first = next(chunks, None)
        if first is None:
            return
        chunks = itertools.chain([first], chunks)
        heavy = any(p.heavy for p in self.local_policies.values())
        if self.service and self.sweep_path == "ray_data" and heavy and is_sweep([first]):
            self.close()  # the sweep's workers hold their own replicas (and the GPUs)
            yield from sweep_with_ray_data(list(chunks), self.local_policies, run_seed, run_id, play_chunk,
                                           self.n_routes, self.threads, self.num_cpus, self.num_gpus)
            return
        yield from self._run_chunks(chunks, run_seed, run_id)

    def _run_chunks(self, chunks: Iterator[Sequence[MatchSpec]], run_seed: int,
                    run_id: str) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        self.start()
        pol_ref = ray.put(self.policies)
        queue = enumerate(chunks)
        # ref -> (chunk index, chunk, runner, route, attempt)
        running: dict[Any, tuple[int, Sequence[MatchSpec], int, int, int]] = {}
        load, routed = [0] * max(1, len(self.runners)), [0] * self.n_routes
        more = True
        while more or running:
            while more and len(running) < self.concurrency:
                i, chunk = next(queue, (None, None))
                if chunk is None:
                    more = False
                    break
                k, r = min(range(len(load)), key=load.__getitem__), min(range(self.n_routes), key=routed.__getitem__)
                load[k], routed[r] = load[k] + 1, routed[r] + 1
                running[self._submit(k, r, chunk, pol_ref, run_seed, run_id)] = (i, chunk, k, r, 0)
            if not running:
                break
            (ref,), _ = ray.wait(list(running), num_returns=1)
            i, chunk, k, r, attempt = running.pop(ref)
            load[k], routed[r] = load[k] - 1, routed[r] - 1
            try:
                table = ray.get(ref)
            except (ray.exceptions.ObjectLostError, ray.exceptions.RayActorError):
                if attempt >= RESTARTS:  # a chunk lost with its node (or its runner) is played again
                    raise
                self._replace_runner(k)
                load[k], routed[r] = load[k] + 1, routed[r] + 1
                running[self._submit(k, r, chunk, pol_ref, run_seed, run_id)] = (i, chunk, k, r, attempt + 1)
                continue
            yield i, table

    def close(self) -> None:
        """Release the actors (the Ray session stays up for the caller)."""
        for handle in [*(h for hs in self.replicas.values() for h in hs), *self.runners]:
            self.ray.kill(handle)
        self.replicas, self.runners, self.policies = {}, [], {}
