"""Sentinel: workers connect through three Sentinels and follow a failover mid-drain.

One master, one replica, three Sentinels on loopback ports. Jobs are enqueued through the
client API; `SENTINEL FAILOVER` promotes the replica while 2 workers drain; they reconnect
to the new master, reconcile, and every job ends `succeeded` once.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import Settings
from processors.registry import load_configured
from tests.chaos.chaos_processors import PROCESSORS
from tests.chaos.conftest import Deployment
from tests.ledger.redis_loss import starts_by_job, succeeded, success_attempts
from tests.ledger.sentinel_cluster import MASTER_NAME, SentinelCluster
from tests.support import wait_for
from worker.client import Client
from worker.connection import parse_sentinels, sentinel_client

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(not shutil.which("redis-sentinel"), reason="redis-sentinel not installed"),
]

N = 600


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    c = SentinelCluster(tmp_path / "sentinel").start()
    yield c
    c.stop()


def sentinel_settings(cluster: SentinelCluster, dep: Deployment) -> Settings:
    return Settings(
        redis_sentinels=cluster.sentinels, redis_sentinel_master=MASTER_NAME,
        database_url=dep.db_url, data_dir=dep.data_dir, processors=PROCESSORS.split(","),
    )  # fmt: skip


def test_sentinel_addresses_parse_with_a_default_port() -> None:
    assert parse_sentinels(["a:1", "b", "[::1]:3"]) == [("a", 1), ("b", 26379), ("::1", 3)]


def test_the_client_reaches_the_master_the_sentinels_name(
    cluster: SentinelCluster, tmp_path: Path
) -> None:
    dep = Deployment("redis://unused", tmp_path)
    client = sentinel_client(sentinel_settings(cluster, dep))
    client.set("probe", "1")
    port = client.connection_pool.get_master_address()[1]
    assert port == cluster.ports[0]
    dep.close()


def test_workers_follow_a_sentinel_failover_mid_drain_and_lose_nothing(
    cluster: SentinelCluster, tmp_path: Path
) -> None:
    dep = Deployment("redis://unused", tmp_path)
    settings = sentinel_settings(cluster, dep)
    load_configured(PROCESSORS.split(","))
    with Client(settings) as client:
        for i in range(N):
            params = {"seconds": 0.01, "marker_dir": str(dep.markers)}
            client.enqueue("chaos_slow", params, id=f"job-{i:04d}")
    env = {"REDIS_SENTINELS": cluster.sentinels, "REDIS_SENTINEL_MASTER": MASTER_NAME}
    workers = [
        dep.start(ready=False, reconcile_grace=1, reconcile_interval=5, **env) for _ in range(2)
    ]
    for w in workers:
        wait_for(lambda w=w: w.has_event("stoker worker started") or w.proc.poll() is not None, 90)
    wait_for(lambda: succeeded(dep) >= N // 4, 120, interval=0.02)

    new_master = cluster.failover()
    at_failover = succeeded(dep)

    wait_for(lambda: succeeded(dep) == N, 240, interval=0.2)
    assert at_failover < N, "the failover came too late to land mid-drain"
    for w in workers:
        assert w.proc.poll() is None, f"{w.id} exited:\n{w.log()[-3000:]}"
    counts = success_attempts(dep)
    assert len(counts) == N and all(n == 1 for n in counts.values())
    ran_twice = sum(1 for s in starts_by_job(dep.markers).values() if len(s) > 1)
    print(f"\nsentinel failover at {at_failover}/{N} succeeded; ran twice: {ran_twice}")
    master = redis.Redis(port=new_master)
    wait_for(lambda: master.llen(dep.keys.queue("default")) == 0, 30)
    time.sleep(0.5)
    for w in workers:
        assert master.llen(dep.keys.inflight(w.id, "default")) == 0
    dep.close()
