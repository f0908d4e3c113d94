"""Executors run chunks of matches and yield their trace rows: in-process (local) or on Ray.

On Ray, each heavy policy (an LLM) lives in one actor that loads it once; chunks of matches run as tasks that
call the actors, so within a chunk every round's decisions for one model go out as one batch. Actors restart
after a crash and their calls are retried; since episodes are pure functions of their seeds, a retried chunk
gives exactly the rows the first attempt would have.

With `replicas` set, each heavy policy becomes a model service instead: `replicas` async actors (ModelReplica), each
merging the requests of every chunk in flight into one batch (up to `max_batch` decisions, waiting at most
`batch_wait_ms` for more) when the policy's backend declares `batch_invariant` (its results do not depend on what
else is in the call), else deciding each request on its own, in arrival order. Every request carries its decisions'
rng states, so each decision keeps its own seeded stream and traces equal the local executor's. Chunks then run in
threaded runner actors, `concurrency` chunks in flight at once (bounded: back-pressure on the driver).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tomarena.agents.base import Decision, Policy
from tomarena.arena.episode import MatchSpec, play_episodes
from tomarena.errors import ConfigError

Rows = dict[str, list[dict[str, Any]]]


def play_chunk(specs: Sequence[MatchSpec], policies: Mapping[str, Policy], run_seed: int, run_id: str) -> Any:
    """Play a chunk of matches and return its rows as one pyarrow Table (the shard to write)."""
    import pyarrow as pa

    from tomarena.arena.fast import play_vectorised, vectorisable
    from tomarena.schema import arrow_schema

    if vectorisable(specs, policies):
        return play_vectorised(specs, policies, run_seed, run_id)
    episodes = play_episodes(specs, policies, run_seed, run_id)
    return pa.Table.from_pylist([r for s in specs for r in episodes[s.episode_id]], schema=arrow_schema())


class LocalExecutor:
    """Runs chunks one after another in this process."""

    def __init__(self, policies: Mapping[str, Policy]) -> None:
        self.policies = policies

    def run(self, chunks: Sequence[Sequence[MatchSpec]], run_seed: int, run_id: str) -> Iterator[tuple[int, Any]]:
        """Yield (chunk index, rows table) as each chunk finishes."""
        for i, chunk in enumerate(chunks):
            yield i, play_chunk(chunk, self.policies, run_seed, run_id)

    def close(self) -> None:
        """Nothing to release."""


class RemotePolicy(Policy):
    """A stand-in that forwards batched decisions to the Ray actor holding the real (heavy) policy."""

    def __init__(self, handle: Any, label: str, initial: Any) -> None:
        self.handle, self.id, self._initial = handle, label, initial

    def initial_state(self) -> Any:
        """The real policy's initial state (fetched once when the actor started)."""
        return self._initial

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """One decision through the actor."""
        return self.act_batch([obs], [state], [rng])[0]

    def act_batch(self, observations: Sequence[Any], states: Sequence[Any],
                  rngs: Sequence[np.random.Generator]) -> list[tuple[Decision, Any]]:
        """Send the whole batch to the actor; the rngs come back advanced exactly as the actor used them."""
        import ray

        results, rng_states = ray.get(self.handle.act_batch.remote(list(observations), list(states),
                                                                   [r.bit_generator.state for r in rngs]))
        for r, st in zip(rngs, rng_states, strict=True):
            r.bit_generator.state = st
        return results


def _rngs(rng_states: Sequence[Any]) -> list[np.random.Generator]:
    out = []
    for st in rng_states:
        r = np.random.default_rng()
        r.bit_generator.state = st
        out.append(r)
    return out


def batch_invariant(policy: Policy) -> bool:
    """Whether a policy's decisions do not depend on what else is in its batch (its backend declares it)."""
    return bool(getattr(policy, "batch_invariant", False) or getattr(getattr(policy, "backend", None),
                                                                     "batch_invariant", False))


class ServicePolicy(Policy):
    """A stand-in that sends each batch of decisions to the replica of a model service with the fewest requests in
    flight from this process (ties: round-robin)."""

    def __init__(self, handles: Sequence[Any], label: str, initial: Any) -> None:
        self.handles, self.id, self._initial = list(handles), label, initial
        self._setup()

    def _setup(self) -> None:
        self._lock, self._load, self._turn = threading.Lock(), [0] * len(self.handles), itertools.count()

    def __getstate__(self) -> dict[str, Any]:
        return {"handles": self.handles, "id": self.id, "_initial": self._initial}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def initial_state(self) -> Any:
        """The real policy's initial state (fetched once when the service started)."""
        return self._initial

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """One decision through the service."""
        return self.act_batch([obs], [state], [rng])[0]

    def _pick(self) -> int:
        with self._lock:
            n, start = len(self.handles), next(self._turn)
            i = min(((start + k) % n for k in range(n)), key=lambda j: self._load[j])
            self._load[i] += 1
            return i

    def act_batch(self, observations: Sequence[Any], states: Sequence[Any],
                  rngs: Sequence[np.random.Generator]) -> list[tuple[Decision, Any]]:
        """Send the batch to one replica; the rngs come back advanced exactly as the replica used them."""
        import ray

        i = self._pick()
        try:
            results, rng_states = ray.get(self.handles[i].act_batch.remote(
                list(observations), list(states), [r.bit_generator.state for r in rngs]))
        finally:
            with self._lock:
                self._load[i] -= 1
        for r, st in zip(rngs, rng_states, strict=True):
            r.bit_generator.state = st
        return results


def _replica_class(num_cpus: float, num_gpus: float) -> Any:
    import ray

    @ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=3, max_task_retries=3, max_concurrency=1000)
    class ModelReplica:
        """One replica of a heavy policy: an async actor that decides the requests of every chunk in flight, merged
        into batches of up to `max_batch` decisions when the policy is batch-invariant."""

        def __init__(self, spec: str, threads: int | None, max_batch: int, batch_wait_ms: float) -> None:
            from tomarena.agents.resolve import resolve_policy

            if threads:
                import torch

                torch.set_num_threads(threads)
            self.policy = resolve_policy(spec)
            self.merge, self.max_batch, self.wait = batch_invariant(self.policy), max_batch, batch_wait_ms / 1000
            self.queue: asyncio.Queue | None = None
            self.carry: tuple | None = None
            self.stats = {"calls": 0, "requests": 0, "decisions": 0}

        async def act_batch(self, observations: list, states: list, rng_states: list) -> tuple[list, list]:
            if self.queue is None:
                self.queue = asyncio.Queue()
                self.server = asyncio.get_running_loop().create_task(self._serve())
            fut = asyncio.get_running_loop().create_future()
            await self.queue.put((observations, states, rng_states, fut))
            return await fut

        async def _collect(self) -> list[tuple]:
            assert self.queue is not None
            first, self.carry = self.carry or await self.queue.get(), None
            batch, n = [first], len(first[0])
            if not self.merge:
                return batch
            deadline = asyncio.get_running_loop().time() + self.wait
            while n < self.max_batch:
                try:
                    left = deadline - asyncio.get_running_loop().time()
                    item = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if n + len(item[0]) > self.max_batch:
                    self.carry = item
                    break
                batch.append(item)
                n += len(item[0])
            return batch

        def _decide(self, batch: list[tuple]) -> list[tuple[list, list]]:
            obs = [o for b in batch for o in b[0]]
            rngs = _rngs([st for b in batch for st in b[2]])
            out = self.policy.act_batch(obs, [s for b in batch for s in b[1]], rngs)
            self.stats["calls"] += 1
            self.stats["requests"] += len(batch)
            self.stats["decisions"] += len(obs)
            res, k = [], 0
            for b in batch:
                m = len(b[0])
                res.append((out[k:k + m], [r.bit_generator.state for r in rngs[k:k + m]]))
                k += m
            return res

        async def _serve(self) -> None:
            while True:
                batch = await self._collect()
                try:
                    results = await asyncio.to_thread(self._decide, batch)
                except Exception as exc:  # every waiting request gets the error
                    for b in batch:
                        if not b[3].done():
                            b[3].set_exception(exc)
                    continue
                for b, r in zip(batch, results, strict=True):
                    if not b[3].done():
                        b[3].set_result(r)

        async def initial_state(self) -> Any:
            return self.policy.initial_state()

        async def service_stats(self) -> dict[str, int]:
            return dict(self.stats)

        async def pid(self) -> int:
            return os.getpid()

    return ModelReplica


def _runner_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)
    class ChunkRunner:
        """Plays chunks in threads (set per actor with max_concurrency), so many chunks wait on the model service
        at once without a process each."""

        def __init__(self) -> None:
            from tomarena.envs.framings import FRAMINGS
            from tomarena.envs.games import GAMES

            FRAMINGS.ids(), GAMES.ids()  # load the lazy registries before threads race to do it

        def play(self, chunk: list, policies: Mapping[str, Policy], run_seed: int, run_id: str) -> Any:
            return play_chunk(chunk, policies, run_seed, run_id)

    return ChunkRunner


def _actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)
    class PolicyActor:
        """Holds one heavy policy, loaded once."""

        def __init__(self, spec: str, threads: int | None) -> None:
            from tomarena.agents.resolve import resolve_policy

            if threads:  # same intra-op threads as the driver, so float reductions match the local executor
                import torch

                torch.set_num_threads(threads)
            self.policy = resolve_policy(spec)

        def initial_state(self) -> Any:
            return self.policy.initial_state()

        def act_batch(self, observations: list, states: list, rng_states: list) -> tuple[list, list]:
            rngs = _rngs(rng_states)
            out = self.policy.act_batch(observations, states, rngs)
            return out, [r.bit_generator.state for r in rngs]

        def pid(self) -> int:
            return os.getpid()

    return PolicyActor


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


def check_service(replicas: int | None, concurrency: int | None, max_batch: int, batch_wait_ms: float,
                  num_cpus: float = 0, num_gpus: float = 0) -> None:
    """Raise a one-line ConfigError for a model-service knob out of its range."""
    checks = [("replicas", replicas, 1, 1024, True), ("concurrency", concurrency, 1, 100_000, True),
              ("max_batch", max_batch, 1, 1_000_000, False), ("batch_wait_ms", batch_wait_ms, 0, 60_000, False),
              ("num_cpus per replica", num_cpus, 0, 1024, False), ("num_gpus per replica", num_gpus, 0, 64, False)]
    for name, v, lo, hi, optional in checks:
        if v is None and optional:
            continue
        whole = name in ("replicas", "concurrency", "max_batch")
        ok = isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi and (
            not whole or float(v).is_integer())
        if not ok:
            kind = "a whole number" if whole else "a number"
            raise ConfigError(f"{name} must be {kind} in [{lo}, {hi}], got {v!r}")


class RayExecutor:
    """Runs chunks on Ray: heavy policies in one actor each (default), or as a model service of `replicas` async
    actors each (`replicas` set), with `concurrency` chunks in flight."""

    def __init__(self, policies: Mapping[str, Policy], address: str | None = None, workers: int | None = None,
                 replicas: int | None = None, concurrency: int | None = None, max_batch: int = 64,
                 batch_wait_ms: float = 2.0, num_cpus: float = 0, num_gpus: float = 0) -> None:
        check_service(replicas, concurrency, max_batch, batch_wait_ms, num_cpus, num_gpus)
        ray = ensure_ray(address)
        self.ray = ray
        self.actors: dict[str, Any] = {}
        self.replicas: dict[str, list[Any]] = {}
        self.policies: dict[str, Policy] = {}
        threads = None if address else _driver_threads()
        actor_cls = _actor_class() if replicas is None else _replica_class(num_cpus, num_gpus)
        for label, pol in policies.items():
            if not pol.heavy:
                self.policies[label] = pol
            elif replicas is None:
                handle = actor_cls.remote(label, threads)
                self.actors[label] = handle
                self.policies[label] = RemotePolicy(handle, label, ray.get(handle.initial_state.remote()))
            else:
                handles = [actor_cls.remote(label, threads, max_batch, batch_wait_ms) for _ in range(replicas)]
                self.replicas[label] = handles
                initial = ray.get([h.initial_state.remote() for h in handles])[0]
                self.policies[label] = ServicePolicy(handles, label, initial)
        self.workers = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        self.concurrency = concurrency or self.workers
        self.service = replicas is not None
        self._task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=True)(play_chunk)
        self.runners: list[Any] = []
        if self.service:
            per = -(-self.concurrency // self.workers)
            n = min(self.workers, self.concurrency)
            self.runners = [_runner_class().options(max_concurrency=per).remote() for _ in range(n)]

    def _submit(self, k: int, chunk: Sequence[MatchSpec], pol_ref: Any, run_seed: int, run_id: str) -> Any:
        if self.service:
            return self.runners[k].play.remote(list(chunk), pol_ref, run_seed, run_id)
        return self._task.remote(list(chunk), pol_ref, run_seed, run_id)

    def run(self, chunks: Sequence[Sequence[MatchSpec]], run_seed: int, run_id: str) -> Iterator[tuple[int, Any]]:
        """Yield (chunk index, rows table) as chunks finish, keeping at most `concurrency` chunks in flight (the
        rest wait on the driver as specs, so memory stays bounded by the chunks in flight)."""
        ray = self.ray
        pol_ref = ray.put(self.policies)
        queue = iter(enumerate(chunks))
        running: dict[Any, tuple[int, int]] = {}  # ref -> (chunk index, runner)
        load = [0] * max(1, len(self.runners))
        while True:
            while len(running) < self.concurrency and (nxt := next(queue, None)) is not None:
                k = min(range(len(load)), key=load.__getitem__)
                load[k] += 1
                running[self._submit(k, nxt[1], pol_ref, run_seed, run_id)] = (nxt[0], k)
            if not running:
                return
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                i, k = running.pop(ref)
                load[k] -= 1
                yield i, ray.get(ref)

    def close(self) -> None:
        """Release the actors (the Ray session stays up for the caller)."""
        for handle in [*self.actors.values(), *(h for hs in self.replicas.values() for h in hs), *self.runners]:
            self.ray.kill(handle)
