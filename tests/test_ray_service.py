"""The simulated accelerator (sim:) and the Ray model service: traces equal the local executor's bit for bit,
with one or two replicas and after a replica is killed mid-run."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.errors import ConfigError

SIM = "sim:flat?latency_ms=2&max_batch=8&p=0.6"


def _obs(n: int) -> list:
    from tomarena.envs.social_dilemma import SocialDilemmaEnv

    out = []
    for i in range(n):
        env = SocialDilemmaEnv(game="prisoners_dilemma", framing="business", rounds=3)
        _, infos = env.reset(seed=i)
        for _ in range(i % 3):
            _, _, _, _, infos = env.step({"player_0": i % 2, "player_1": 0})
        out.append(infos["player_0"]["observation"])
    return out


def test_sim_is_heavy_deterministic_and_batch_invariant() -> None:
    pol = resolve_policy(SIM)
    assert pol.heavy and pol.describe()["backend"] == "sim"
    obs = _obs(10)
    batched = pol.act_batch(obs, [None] * 10, [np.random.default_rng(i) for i in range(10)])
    single = [pol.act(o, None, np.random.default_rng(i)) for i, o in enumerate(obs)]
    assert batched == single
    assert {d.probs for d, _ in batched} != {batched[0][0].probs}  # the prompt's hash moves p(C)
    assert all(abs(d.probs[0] - 0.6) <= 0.1 + 1e-12 for d, _ in batched)


def test_sim_cost_is_flat_up_to_max_batch() -> None:
    backend = resolve_policy("sim:flat?latency_ms=30&max_batch=16").backend
    msgs = [[{"role": "user", "content": str(i)}] for i in range(16)]
    t0 = time.perf_counter()
    backend.score_detailed(msgs[:1], ["C", "D"])
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend.score_detailed(msgs, ["C", "D"])
    full = time.perf_counter() - t0
    assert 0.03 <= one and 0.03 <= full < 0.03 + 0.05
    assert backend.stats["forwards"] == 2 and backend.forwards(17) == 2


@pytest.mark.parametrize("spec", ["sim:warp", "sim:flat?latency_ms=-1", "sim:flat?max_batch=0", "sim:flat?p=1.5",
                                  "sim:flat?spread=2", "sim:flat?mode=generate"])
def test_sim_bad_options_are_one_line_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_policy(spec)
    assert "\n" not in str(err.value)


def _table(run_dir):
    from tomarena.arena.store import RunStore

    return RunStore(run_dir).read_table().drop_columns(["run_id"])


@pytest.mark.slow
def test_model_service_with_two_replicas_writes_the_local_traces(tmp_path, ray_session) -> None:
    """Requests of 4 chunks in flight are merged into batches (sim: is batch-invariant) on 2 replicas. (An hf: model
    is left out: its prefix KV cache makes its scores depend on the replica's history in the last float bits.)"""
    from tomarena.app.api import run_config as run
    from tomarena.arena.config import validate_config

    base = {"policies": [SIM, "sim:flat?latency_ms=1&p=0.3", "strategist/reference", "classic/random"],
            "games": ["prisoners_dilemma", "stag_hunt"], "framings": ["business"], "rounds": 3, "seed": 7}
    local = run(validate_config(base), tmp_path / "local", progress=False)
    remote = run(validate_config({**base, "executor": "ray", "replicas": 2, "concurrency": 4, "max_batch": 8}),
                 tmp_path / "ray", progress=False)
    a, b = _table(local), _table(remote)
    assert a.num_rows == b.num_rows > 0
    assert a.equals(b)
    assert (local / "standings.csv").read_text() == (remote / "standings.csv").read_text()


@pytest.mark.slow
def test_killed_replica_restarts_and_results_equal_local(ray_session) -> None:
    from tomarena.arena.config import build_specs, validate_config
    from tomarena.arena.executors import LocalExecutor, RayExecutor
    from tomarena.arena.runner import chunks as cut

    cfg = validate_config({"policies": [SIM, "classic/tit_for_tat", "classic/always_defect"], "rounds": 4,
                           "repetitions": 3, "seed": 3})
    chunks = cut(build_specs(cfg, {"prisoners_dilemma": 2}), 2)
    pols = {p: resolve_policy(p) for p in cfg.policies}
    expected = dict(LocalExecutor(pols).run(chunks, cfg.seed, "r"))
    ex = RayExecutor(pols, replicas=2, concurrency=3, max_batch=4)
    ex.start()
    victim = ex.replicas[SIM][0]
    first_pid = ray_session.get(victim.pid.remote())
    got = []
    for i, table in ex.run(chunks, cfg.seed, "r"):
        got.append((i, table))
        if len(got) == 1:
            ray_session.kill(victim, no_restart=False)  # one replica dies while other chunks are in flight
    assert ray_session.get(victim.pid.remote()) != first_pid
    merged = sum(ray_session.get(h.service_stats.remote())["requests"] for h in ex.replicas[SIM])
    ex.close()
    assert merged > 0 and sorted(i for i, _ in got) == list(range(len(chunks))) == list(range(9))  # each once
    for i, table in got:
        assert table.equals(expected[i]), i


@pytest.mark.slow
def test_chunks_of_a_runner_gone_for_good_are_played_again_once(ray_session) -> None:
    """A chunk runner killed without restart mid-run: its chunks in flight fail, are resubmitted to a fresh runner,
    and every chunk arrives once with the local executor's rows."""
    from tomarena.arena.config import build_specs, validate_config
    from tomarena.arena.executors import LocalExecutor, RayExecutor
    from tomarena.arena.runner import chunks as cut

    cfg = validate_config({"policies": [SIM, "classic/tit_for_tat"], "rounds": 5, "repetitions": 6, "seed": 9})
    chunks = cut(build_specs(cfg, {"prisoners_dilemma": 2}), 2)
    pols = {p: resolve_policy(p) for p in cfg.policies}
    expected = dict(LocalExecutor(pols).run(chunks, cfg.seed, "r"))
    ex = RayExecutor(pols, workers=2, replicas=1, concurrency=4, max_batch=8)
    ex.start()
    victim = ex.runners[0]
    got = []
    for i, table in ex.run(chunks, cfg.seed, "r"):
        got.append((i, table))
        if len(got) == 1:
            ray_session.kill(victim, no_restart=True)  # gone for good, with chunks in flight
    replaced = ex.runners[0] is not victim
    ex.close()
    assert replaced and sorted(i for i, _ in got) == list(range(len(chunks))) == list(range(9))  # 18 matches
    for i, table in got:
        assert table.equals(expected[i]), i


@pytest.mark.parametrize(("key", "value"), [("replicas", 0), ("concurrency", 0), ("max_batch", 0),
                                            ("batch_wait_ms", -1)])
def test_service_knobs_out_of_range_are_one_line_config_errors(key: str, value: float) -> None:
    from tomarena.arena.config import validate_config

    with pytest.raises(ConfigError) as err:
        validate_config({"policies": ["classic/tit_for_tat"], key: value})
    assert key in str(err.value) and "\n" not in str(err.value)


def test_batcher_merges_queued_requests_up_to_max_batch_and_keeps_each_stream() -> None:
    """Without Ray: 5 requests of 2 decisions each queued at once reach the policy as calls of 4, 4 and 2 decisions
    (max_batch 4), and every decision equals the same decision made alone with its own seeded rng."""
    import asyncio

    from tomarena.arena.ray_service import Batcher

    pol = resolve_policy("sim:flat?latency_ms=0&max_batch=64&p=0.4")
    obs = _obs(10)
    batcher = Batcher(pol, max_batch=4, wait=0.05)

    async def main() -> list:
        reqs = [([obs[2 * k], obs[2 * k + 1]], [None, None],
                 [np.random.default_rng(2 * k + j).bit_generator.state for j in range(2)]) for k in range(5)]
        return await asyncio.gather(*(batcher.submit(*r) for r in reqs))

    out = asyncio.run(main())
    assert batcher.stats == {"calls": 3, "requests": 5, "decisions": 10}
    assert pol.backend.stats["score_calls"] == 3
    for k, (decisions, states) in enumerate(out):
        for j in range(2):
            rng = np.random.default_rng(2 * k + j)
            assert decisions[j] == pol.act(obs[2 * k + j], None, rng)
            assert states[j] == rng.bit_generator.state


@pytest.mark.parametrize(("invariant", "calls"), [(False, 5), (True, 1)])
def test_batcher_merges_only_for_a_policy_that_declares_batch_invariance(invariant: bool, calls: int) -> None:
    """The replica asks the policy (Policy.batch_invariant), never its backend: 5 queued requests are 5 calls of a
    policy that does not declare it and one call of one that does."""
    import asyncio

    from tomarena.arena.ray_service import Batcher

    pol = resolve_policy("classic/tit_for_tat")
    pol.batch_invariant = invariant
    batcher = Batcher(pol, max_batch=64, wait=0.05)
    obs = _obs(5)

    async def main() -> list:
        reqs = [([o], [pol.initial_state()], [np.random.default_rng(k).bit_generator.state]) for k, o in enumerate(obs)]
        return await asyncio.gather(*(batcher.submit(*r) for r in reqs))

    out = asyncio.run(main())
    assert batcher.stats == {"calls": calls, "requests": 5, "decisions": 5}
    assert [d.action for (decisions, _) in out for d, _ in decisions] == [0] * 5  # the co-player always played C


def test_routed_stand_in_sends_every_request_to_its_replica() -> None:
    from tomarena.arena.ray_service import RemotePolicy

    pol = RemotePolicy(["a", "b", "c"], "m", None)
    assert [pol.routed(k).handles[pol.routed(k).route] for k in range(5)] == ["a", "b", "c", "a", "b"]
    assert pol.route == 0 and pol.routed(4).handles == ["a", "b", "c"]


def test_sweep_detection_and_shards_round_trip_through_arrow_ipc() -> None:
    from tomarena.arena.config import build_specs, validate_config
    from tomarena.arena.executors import LocalExecutor
    from tomarena.arena.ray_data import ipc_to_table, is_sweep, table_to_ipc

    sweep = validate_config({"kind": "sweep", "policies": [SIM], "samples": 3, "framings": ["business", "none"]})
    tour = validate_config({"policies": [SIM, "classic/tit_for_tat"], "rounds": 2})
    specs = build_specs(sweep, {"prisoners_dilemma": 2})
    assert len(specs) == 6 and is_sweep([specs[:4], specs[4:]])
    assert not is_sweep([specs, build_specs(tour, {"prisoners_dilemma": 2})]) and not is_sweep([])
    pols = {SIM: resolve_policy(SIM)}
    (_, table), = LocalExecutor(pols).run([specs], 1, "r")
    back = ipc_to_table(table_to_ipc(table))
    assert back.schema.equals(table.schema) and back.equals(table) and back.num_rows == 6


@pytest.mark.parametrize(("knobs", "message"), [
    ({"sweep_path": "spark"}, "bad executor setting value sweep_path='spark': Input should be 'ray_data' or 'service'"),
    ({"replicas": 0}, "bad executor setting value replicas=0: Input should be greater than or equal to 1"),
    ({"concurrency": 100_001}, "bad executor setting value concurrency=100001: Input should be less than or equal "
                               "to 100000"),
    ({"num_gpus": 65}, "bad executor setting value replica_gpus=65: Input should be less than or equal to 64"),
])
def test_executor_knobs_are_checked_against_the_config_fields(knobs: dict, message: str) -> None:
    """RayExecutor's limits are ExecutionSettings' field ranges (declared once), said in one line before Ray starts."""
    from tomarena.arena.executors import RayExecutor

    with pytest.raises(ConfigError) as err:
        RayExecutor({}, **knobs)
    assert str(err.value) == message


@pytest.mark.slow
@pytest.mark.parametrize("path", ["ray_data", "service"])
def test_sweep_on_two_replicas_equals_local(ray_session, path: str) -> None:
    """A one-shot sweep (2 framings x 24 samples, chunks of 8) through Ray Data's workers or the model service gives
    the local executor's shards; the Ray Data path starts no service replica."""
    from tomarena.arena.config import build_specs, validate_config
    from tomarena.arena.executors import LocalExecutor, RayExecutor
    from tomarena.arena.runner import chunks as cut

    cfg = validate_config({"kind": "sweep", "policies": [SIM, "classic/random"], "samples": 24, "seed": 2,
                           "framings": ["business", "none"]})
    chunks = cut(build_specs(cfg, {"prisoners_dilemma": 2}), 8)
    pols = {p: resolve_policy(p) for p in cfg.policies}
    expected = dict(LocalExecutor(pols).run(chunks, cfg.seed, "r"))
    ex = RayExecutor(pols, replicas=2, concurrency=4, sweep_path=path)
    got = dict(ex.run(chunks, cfg.seed, "r"))
    assert (ex.replicas == {}) == (path == "ray_data")
    ex.close()
    assert sorted(got) == list(range(len(chunks))) == list(range(12))
    for i in expected:
        assert got[i].equals(expected[i]), i


@pytest.mark.slow
def test_sweep_worker_killed_mid_run_is_restarted_and_nothing_is_lost_or_repeated(ray_session) -> None:
    """A Ray Data worker process of the sweep path killed (SIGKILL) after the first chunk: Ray Data restarts it and
    retries its batches; every chunk arrives once with the local executor's rows."""
    import os
    import signal

    import psutil

    from tomarena.arena.config import build_specs, validate_config
    from tomarena.arena.executors import LocalExecutor, RayExecutor
    from tomarena.arena.runner import chunks as cut

    cfg = validate_config({"kind": "sweep", "policies": ["sim:flat?latency_ms=150&max_batch=8"], "samples": 16,
                           "seed": 4, "framings": ["business", "none", "team"]})
    chunks = cut(build_specs(cfg, {"prisoners_dilemma": 2}), 4)
    pols = {p: resolve_policy(p) for p in cfg.policies}
    expected = dict(LocalExecutor(pols).run(chunks, cfg.seed, "r"))
    ex = RayExecutor(pols, replicas=2)
    got, killed = [], []
    for i, table in ex.run(chunks, cfg.seed, "r"):
        got.append((i, table))
        if len(got) == 1:
            killed = [p.pid for p in psutil.process_iter(["cmdline"]) if "SweepWorker" in " ".join(
                p.info["cmdline"] or [])][:1]
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
    assert killed and sorted(i for i, _ in got) == list(range(len(chunks))) == list(range(12))
    for i, table in got:
        assert table.equals(expected[i]), i
