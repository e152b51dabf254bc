"""Redis restarts (kill -9, AOF on) while a job runs: the worker reconnects with backoff,
the job is neither lost nor run twice, and its acknowledgement lands once Redis is back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.conftest import Deployment
from tests.support import wait_for
from worker.redis_server import RedisProcess

pytestmark = pytest.mark.chaos


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, appendonly yes / appendfsync everysec."""
    server = RedisProcess(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop(kill=True)


def test_redis_restart_mid_job_loses_nothing_and_runs_once(
    aof_redis: RedisProcess, make_deployment: Callable[..., Deployment]
) -> None:
    dep = make_deployment(aof_redis.url)
    worker = dep.start(heartbeat_ttl=10)
    dep.enqueue("through", "chaos_slow", seconds=3)
    wait_for(lambda: dep.starts("through"), 60)
    dep.enqueue("waiting", "echo", text="kept across the restart")

    aof_redis.stop(kill=True)  # kill -9 mid-job

    # The job finishes while Redis is down; its outcome goes to the database regardless.
    wait_for(lambda: dep.starts("through", "done"), 60)
    assert dep.wait_status("through", "succeeded", 60)["attempts"] == 1
    wait_for(lambda: worker.has_event("redis unavailable; retrying"), 30)
    assert worker.proc.poll() is None

    aof_redis.start()  # same port, same data dir: the AOF brings the lists back

    dep.wait_status("waiting", "succeeded", 60)
    wait_for(lambda: dep.inflight(worker.id) == [] and dep.running() == {}, 30)
    assert dep.queued() == [] and dep.failed() == []
    assert dep.outcomes("through") == ["succeeded"]
    assert len(dep.starts("through")) == 1  # ran once
    dep.enqueue("after", "echo", text="reconnected")
    dep.wait_status("after", "succeeded", 60)
    assert worker.proc.poll() is None


def test_redis_down_before_a_job_starts_it_runs_once_when_redis_returns(
    aof_redis: RedisProcess, make_deployment: Callable[..., Deployment]
) -> None:
    dep = make_deployment(aof_redis.url)
    worker = dep.start(heartbeat_ttl=10)
    dep.enqueue("first", "chaos_slow", seconds=0)
    dep.wait_status("first", "succeeded", 60)
    aof_redis.stop(kill=True)
    wait_for(lambda: worker.has_event("redis unavailable; retrying"), 30)

    aof_redis.start()
    dep.enqueue("second", "chaos_slow", seconds=0)

    dep.wait_status("second", "succeeded", 60)
    assert len(dep.starts("first")) == 1 and len(dep.starts("second")) == 1
    wait_for(lambda: dep.inflight(worker.id) == [] and dep.running() == {}, 30)
