"""A real two-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head and a second node, each its own
raylet and object store with its own resources), joined through the config's `ray_address`: the model service's
replicas land on both nodes, the second node is killed mid-run, and the traces still equal the local executor's
with every chunk stored exactly once."""

from __future__ import annotations

import time

import pytest

from tomarena.agents.resolve import resolve_policy
from tomarena.arena.config import build_specs, validate_config
from tomarena.arena.executors import LocalExecutor, RayExecutor
from tomarena.arena.runner import chunks as cut
from tomarena.arena.store import RunStore

pytestmark = pytest.mark.slow

SIM = "sim:flat?latency_ms=30&max_batch=8&p=0.6"


@pytest.fixture(scope="module")
def cluster():
    """A head node (2 CPUs, resource `head`) and a second node (1 CPU, resource `second`), torn down after; a local
    session that was up before is put back, so later tests find Ray as they left it."""
    import ray
    from ray.cluster_utils import Cluster

    was_up = ray.is_initialized()
    ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"head": 1},
                                                     "include_dashboard": False})
    second = c.add_node(num_cpus=1, resources={"second": 1})
    c.wait_for_nodes()
    try:
        yield c, second
    finally:
        ray.shutdown()
        c.shutdown()
        if was_up:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


def _config(address: str) -> object:
    return validate_config({"policies": [SIM, "classic/tit_for_tat", "classic/always_defect"], "rounds": 4,
                            "repetitions": 4, "seed": 5, "executor": "ray", "ray_address": address,
                            "replicas": 2, "concurrency": 4, "chunk_size": 2, "max_batch": 8})


def test_replicas_on_both_nodes_and_a_killed_node_loses_nothing(cluster, tmp_path) -> None:
    c, second = cluster
    cfg = _config(c.address)
    chunks = cut(build_specs(cfg, {"prisoners_dilemma": 2}), cfg.chunk_size)
    pols = {p: resolve_policy(p) for p in cfg.policies}
    expected = dict(LocalExecutor(pols).run(chunks, cfg.seed, "r"))
    ex = RayExecutor(pols, cfg.ray_address, cfg.workers, replicas=cfg.replicas, concurrency=cfg.concurrency,
                     max_batch=cfg.max_batch, batch_wait_ms=cfg.batch_wait_ms)
    ex.start()
    ray = ex.ray
    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    replica_nodes = ray.get([h.node_id.remote() for h in ex.replicas[SIM]])
    assert len(nodes) == 2 and set(replica_nodes) == set(nodes)  # one replica on each node (SPREAD)
    assert {"head", "second"} == {k for n in replica_nodes for k in nodes[n] if k in ("head", "second")}
    stores = {name: RunStore(tmp_path / name) for name in ("local", "cluster")}
    for st in stores.values():
        st.open({"run_id": "r", "kind": "tournament"}, resume=False)
    for table in expected.values():
        stores["local"].write_shard(table)
    got = []
    for i, table in ex.run(chunks, cfg.seed, "r"):
        got.append(i)
        stores["cluster"].write_shard(table)
        if len(got) == 1:
            c.remove_node(second, allow_graceful=False)  # the second node dies with chunks in flight
    deadline = time.monotonic() + 60  # the control plane marks a killed node dead once its heartbeat times out
    while len(alive := [n["NodeID"] for n in ray.nodes() if n["Alive"]]) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    after = ray.get([h.node_id.remote() for h in ex.replicas[SIM]])
    ex.close()
    assert len(alive) == 1 and set(after) == set(alive)  # the lost replica was restarted on the head
    assert sorted(got) == list(range(len(chunks)))  # every chunk exactly once
    a, b = (st.read_table() for st in stores.values())
    keys = set(zip(*(b.column(k).to_pylist() for k in ("episode_id", "round", "agent"))))
    assert a.num_rows == b.num_rows == len(keys) == 24 * 4 * 2  # 6 pairs x 4 repetitions, 4 rounds, 2 seats
    assert a.equals(b)
