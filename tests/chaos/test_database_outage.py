"""The database goes away while a job runs (PostgreSQL stopped): the outcome is kept and
written when the database returns, and the job stays in flight in Redis until then."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.chaos.conftest import Deployment
from tests.db.conftest import PostgresServer, launch_postgres
from tests.support import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

# As tests/db/conftest.py starts its cluster; repeated here to restart this one.
_OPTIONS = (
    "-k {root} -p {port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
    " -c full_page_writes=off -c max_connections=60"
)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, which it may stop and start."""
    yield from launch_postgres("stoker-chaos-pg-")


def _pg_stop(server: PostgresServer) -> None:
    server._run("pg_ctl", "-D", str(server.data), "-m", "fast", "-w", "stop")


def _pg_start(server: PostgresServer) -> None:
    options = _OPTIONS.format(root=server.socket_dir, port=server.port)
    log = str(server.root / "server.log")
    server._run("pg_ctl", "-D", str(server.data), "-l", log, "-o", options, "-w", "start")


def test_database_outage_outcome_written_when_it_returns(
    redis_url: str, own_postgres: PostgresServer, make_deployment: Callable[..., Deployment]
) -> None:
    dep = make_deployment(redis_url, own_postgres.create_database("chaos"))
    worker = dep.start()
    dep.enqueue("patient", "chaos_slow", seconds=3)
    wait_for(lambda: dep.starts("patient"), 60)
    dep.wait_status("patient", "running", 30)

    _pg_stop(own_postgres)

    wait_for(lambda: dep.starts("patient", "done"), 60)
    wait_for(lambda: worker.has_event("database unavailable; outcome kept until it returns"), 30)
    # Not acknowledged before its outcome is durable: still in flight, still claimed.
    for _ in range(10):
        assert dep.inflight(worker.id), "job left flight before its outcome was recorded"
        assert b"patient" in dep.running()
        time.sleep(0.2)
    assert worker.proc.poll() is None

    _pg_start(own_postgres)

    row = dep.wait_status("patient", "succeeded", 60)
    assert row["result"]["attempt"] == 1
    assert dep.outcomes("patient") == ["succeeded"]
    assert len(dep.starts("patient")) == 1  # not run again
    wait_for(lambda: dep.inflight(worker.id) == [] and dep.running() == {}, 30)
    dep.enqueue("after", "echo", text="db is back")
    dep.wait_status("after", "succeeded", 60)
    assert worker.proc.poll() is None


def test_rows_emitted_during_an_outage_wait_while_the_job_is_still_cancelled_on_time(
    redis_url: str, own_postgres: PostgresServer, make_deployment: Callable[..., Deployment]
) -> None:
    dep = make_deployment(redis_url, own_postgres.create_database("chaos"))
    worker = dep.start()
    dep.enqueue("rows", "chaos_flood", seconds=60)
    wait_for(lambda: dep.starts("rows"), 60)
    dep.wait_status("rows", "running", 30)
    pids = worker.executor_pids()

    _pg_stop(own_postgres)
    time.sleep(1.0)  # rows pile up, unwritten
    dep.client.sadd(dep.keys.cancel, "rows")  # as `cancel` does for a running job

    # The duties kept their clock: the job was stopped (its executor killed past the
    # 5 s stop bound) while the database was still down.
    wait_for(lambda: worker.executor_pids() != pids, 30)
    assert worker.proc.poll() is None

    _pg_start(own_postgres)
    dep.wait_status("rows", "cancelled", 60)
    assert dep.starts("rows", "finish") == []
