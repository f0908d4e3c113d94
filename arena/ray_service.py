"""Heavy policies on Ray: the stand-ins a chunk plays with, and the actors that hold the real policy.

Default: one synchronous actor per heavy policy (PolicyActor), called through RemotePolicy. Model service
(`replicas` set): `replicas` async actors per heavy policy (ModelReplica), each merging the requests of every chunk
in flight into one batch (up to `max_batch` decisions, waiting at most `batch_wait_ms` for more) when the policy
declares `batch_invariant` (an LLM policy asks its backend), else deciding each request on its own, in arrival
order. A chunk is routed to one replica, chosen by the driver (fewest chunks in flight), so the chunks in flight
spread evenly over the replicas. Every request carries its decisions' rng states, so each decision keeps its own
seeded stream and traces equal the local executor's. Actors restart after a crash (`max_restarts`) and their calls
are retried (`max_task_retries`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tomarena.agents.base import Decision, Policy
from tomarena.agents.resolve import resolve_policy

#: how often Ray restarts a crashed actor and retries the calls it had in flight
RESTARTS = 3


def rngs_from_states(rng_states: Sequence[Any]) -> list[np.random.Generator]:
    """Generators continuing exactly where the given bit-generator states left off."""
    out = []
    for st in rng_states:
        r = np.random.default_rng()
        r.bit_generator.state = st
        out.append(r)
    return out


def decide_remote(handle: Any, observations: Sequence[Any], states: Sequence[Any],
                  rngs: Sequence[np.random.Generator]) -> list[tuple[Decision, Any]]:
    """One batch through an actor; the rngs come back advanced exactly as the actor used them."""
    import ray

    results, rng_states = ray.get(handle.act_batch.remote(list(observations), list(states),
                                                          [r.bit_generator.state for r in rngs]))
    for r, st in zip(rngs, rng_states, strict=True):
        r.bit_generator.state = st
    return results


class RemotePolicy(Policy):
    """A stand-in that forwards batched decisions to the Ray actor (or the replica `route` of a model service)
    holding the real (heavy) policy."""

    def __init__(self, handles: Sequence[Any], label: str, initial: Any, route: int = 0) -> None:
        self.handles, self.id, self._initial, self.route = list(handles), label, initial, route

    def routed(self, route: int) -> RemotePolicy:
        """The same stand-in sending every request to replica `route` (modulo the number of replicas)."""
        return RemotePolicy(self.handles, self.id, self._initial, route % len(self.handles))

    def initial_state(self) -> Any:
        """The real policy's initial state (fetched once when its actor started)."""
        return self._initial

    def act(self, obs: Any, state: Any, rng: np.random.Generator) -> tuple[Decision, Any]:
        """One decision through the actor."""
        return self.act_batch([obs], [state], [rng])[0]

    def act_batch(self, observations: Sequence[Any], states: Sequence[Any],
                  rngs: Sequence[np.random.Generator]) -> list[tuple[Decision, Any]]:
        """Send the whole batch to this stand-in's replica."""
        return decide_remote(self.handles[self.route], observations, states, rngs)


def load_policy(spec: str, threads: int | None) -> Policy:
    """Resolve a heavy policy inside an actor, with the driver's torch threads so float reductions match."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return resolve_policy(spec)


def policy_actor_class() -> Any:
    """The Ray actor class holding one heavy policy, deciding one batch at a time (today's default)."""
    import ray

    @ray.remote(num_cpus=0, max_restarts=RESTARTS, max_task_retries=RESTARTS)
    class PolicyActor:
        """Holds one heavy policy, loaded once."""

        def __init__(self, spec: str, threads: int | None) -> None:
            self.policy = load_policy(spec, threads)

        def initial_state(self) -> Any:
            return self.policy.initial_state()

        def act_batch(self, observations: list, states: list, rng_states: list) -> tuple[list, list]:
            rngs = rngs_from_states(rng_states)
            out = self.policy.act_batch(observations, states, rngs)
            return out, [r.bit_generator.state for r in rngs]

        def node_id(self) -> str:
            return ray.get_runtime_context().get_node_id()

        def pid(self) -> int:
            return os.getpid()

    return PolicyActor


class Batcher:
    """The batching loop of one replica: requests queue up; each call of the policy takes the queued requests (all
    of them when batch-invariant, up to `max_batch` decisions, waiting at most `wait` seconds for more)."""

    def __init__(self, policy: Policy, max_batch: int, wait: float) -> None:
        self.policy, self.merge, self.max_batch, self.wait = policy, policy.batch_invariant, max_batch, wait
        self.queue: asyncio.Queue | None = None
        self.carry: tuple | None = None
        self.stats = {"calls": 0, "requests": 0, "decisions": 0}

    async def submit(self, observations: list, states: list, rng_states: list) -> tuple[list, list]:
        """Queue one request and wait for its (decisions, advanced rng states)."""
        loop = asyncio.get_running_loop()
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.server = loop.create_task(self.serve())
        fut = loop.create_future()
        await self.queue.put((observations, states, rng_states, fut))
        return await fut

    async def collect(self) -> list[tuple]:
        """The next batch of requests: the first one waiting, then more while they fit and arrive in time."""
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        first, self.carry = self.carry or await self.queue.get(), None
        batch, n = [first], len(first[0])
        deadline = loop.time() + self.wait
        while self.merge and n < self.max_batch:
            try:
                left = deadline - loop.time()
                item = self.queue.get_nowait() if left <= 0 else await asyncio.wait_for(self.queue.get(), left)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if n + len(item[0]) > self.max_batch:
                self.carry = item
                break
            batch.append(item)
            n += len(item[0])
        return batch

    def decide(self, batch: list[tuple]) -> list[tuple[list, list]]:
        """One policy call for the whole batch, its results cut back into the requests."""
        obs = [o for b in batch for o in b[0]]
        rngs = rngs_from_states([st for b in batch for st in b[2]])
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

    async def serve(self) -> None:
        """Forever: collect a batch, decide it in a thread (the event loop keeps queueing), answer each request."""
        while True:
            batch = await self.collect()
            try:
                results = await asyncio.to_thread(self.decide, batch)
            except Exception as exc:  # every waiting request gets the error
                for b in batch:
                    if not b[3].done():
                        b[3].set_exception(exc)
                continue
            for b, r in zip(batch, results, strict=True):
                if not b[3].done():
                    b[3].set_result(r)


def replica_class(num_cpus: float, num_gpus: float) -> Any:
    """The Ray actor class of one model-service replica (`num_cpus`/`num_gpus` reserved per replica)."""
    import ray

    @ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=RESTARTS, max_task_retries=RESTARTS,
                max_concurrency=1000)
    class ModelReplica:
        """One replica of a heavy policy: an async actor batching the requests of every chunk in flight."""

        def __init__(self, spec: str, threads: int | None, max_batch: int, batch_wait_ms: float) -> None:
            self.batcher = Batcher(load_policy(spec, threads), max_batch, batch_wait_ms / 1000)

        async def act_batch(self, observations: list, states: list, rng_states: list) -> tuple[list, list]:
            return await self.batcher.submit(observations, states, rng_states)

        async def initial_state(self) -> Any:
            return self.batcher.policy.initial_state()

        async def service_stats(self) -> dict[str, int]:
            return dict(self.batcher.stats)

        async def node_id(self) -> str:
            return ray.get_runtime_context().get_node_id()

        async def pid(self) -> int:
            return os.getpid()

    return ModelReplica
