"""Executors run chunks of matches and yield their trace rows: in-process (local) or on Ray.

On Ray, each heavy policy (an LLM) lives in one actor that loads it once; chunks of matches run as tasks that
call the actors, so within a chunk every round's decisions for one model go out as one batch. Actors restart
after a crash and their calls are retried; since episodes are pure functions of their seeds, a retried chunk
gives exactly the rows the first attempt would have.
"""

from __future__ import annotations

import os
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
            rngs = []
            for st in rng_states:
                r = np.random.default_rng()
                r.bit_generator.state = st
                rngs.append(r)
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


class RayExecutor:
    """Runs chunks as Ray tasks; heavy policies live in one actor each."""

    def __init__(self, policies: Mapping[str, Policy], address: str | None = None, workers: int | None = None) -> None:
        ray = ensure_ray(address)
        self.ray = ray
        actor_cls = _actor_class()
        self.actors: dict[str, Any] = {}
        self.policies: dict[str, Policy] = {}
        threads = None if address else _driver_threads()
        for label, pol in policies.items():
            if pol.heavy:
                handle = actor_cls.remote(label, threads)
                self.actors[label] = handle
                self.policies[label] = RemotePolicy(handle, label, ray.get(handle.initial_state.remote()))
            else:
                self.policies[label] = pol
        self.workers = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=True)(play_chunk)

    def run(self, chunks: Sequence[Sequence[MatchSpec]], run_seed: int, run_id: str) -> Iterator[tuple[int, Any]]:
        """Yield (chunk index, rows table) as chunks finish, keeping at most `workers` chunks in flight."""
        ray = self.ray
        pol_ref = ray.put(self.policies)
        queue = list(enumerate(chunks))
        running: dict[Any, int] = {}
        while queue or running:
            while queue and len(running) < self.workers:
                i, chunk = queue.pop(0)
                running[self._task.remote(list(chunk), pol_ref, run_seed, run_id)] = i
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                yield running.pop(ref), ray.get(ref)

    def close(self) -> None:
        """Release the actors (the Ray session stays up for the caller)."""
        for handle in self.actors.values():
            self.ray.kill(handle)
