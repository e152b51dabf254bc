"""Proof: Redis lost mid-drain (kill -9, persistence off, an empty one on the same port).

Jobs are enqueued through the client API (ledger first), 3 workers drain them, Redis is
replaced by an empty server. The workers reconnect by themselves, the one holding the
recovery lock reconciles, and every job ends `succeeded` with one success recorded.
`STOKER_LEDGER_JOBS` sets N (default 2000 in CI; `STOKER_LEDGER_JOBS=5000` is the issue's run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.conftest import Deployment
from tests.db.conftest import PostgresServer
from tests.ledger.redis_loss import DrillResult, run_drill
from tests.support import wait_for
from worker.redis_server import RedisProcess

pytestmark = pytest.mark.chaos

N = int(os.environ.get("STOKER_LEDGER_JOBS", "2000"))


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own with persistence off: a restart loses everything."""
    server = RedisProcess(tmp_path / "redis", appendonly=False).start()
    yield server
    server.stop(kill=True)


def check(result: DrillResult, dep: Deployment) -> None:
    print(f"\nredis-loss drill ({dep.db_url.split(':')[0]}): {result.summary()}")
    assert result.succeeded == result.jobs
    assert result.restored > 0
    assert result.rerun_after_success == []
    assert sorted(j for j, n in result.success_attempts.items() if n != 1) == []
    assert len(result.success_attempts) == result.jobs
    wait_for(lambda: dep.queued() == [] and dep.client.zcard(dep.keys.scheduled) == 0, 30)
    for w in dep.workers:
        wait_for(lambda w=w: dep.inflight(w.id) == [], 30)


def test_every_job_survives_losing_redis_mid_drain_on_sqlite(
    volatile_redis: RedisProcess, tmp_path: Path
) -> None:
    dep = Deployment(volatile_redis.url, tmp_path)
    try:
        check(run_drill(volatile_redis, dep, N), dep)
    finally:
        dep.close()


@pytest.mark.postgres
def test_every_job_survives_losing_redis_mid_drain_on_postgresql(
    volatile_redis: RedisProcess, tmp_path: Path, ledger_postgres: PostgresServer
) -> None:
    url = ledger_postgres.create_database("ledger")
    dep = Deployment(volatile_redis.url, tmp_path, url)
    try:
        check(run_drill(volatile_redis, dep, N), dep)
    finally:
        dep.close()
        ledger_postgres.drop_database(url)
