"""Reconcile passes against a real Redis and SQLite: what Redis lost comes back, once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import update

from config import Settings
from worker.admin import Admin
from worker.keys import Keys
from worker.protocol import Job
from worker.reconciler import Reconciler
from worker.store import JobStore, jobs


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Settings:
    return make_settings(redis_url=redis_url, reconcile_grace=0.0, heartbeat_ttl=0.0)


@pytest.fixture
def store(settings: Settings) -> Iterator[JobStore]:
    s = JobStore(settings.resolved_database_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def admin(settings: Settings, real_redis: redis.Redis, store: JobStore) -> Admin:
    return Admin(settings, real_redis, store)


@pytest.fixture
def reconciler(settings: Settings, real_redis: redis.Redis, store: JobStore) -> Reconciler:
    return Reconciler(real_redis, Keys.from_settings(settings), store.engine, settings)


def queue_ids(client: redis.Redis, queue: str = "default") -> list[str]:
    """Ids on the queue, next to run first."""
    return [json.loads(raw)["id"] for raw in reversed(client.lrange(Keys().queue(queue), 0, -1))]


def set_row(store: JobStore, job_id: str, **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def test_a_queued_job_redis_lost_goes_back_on_its_queue(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    job = admin.enqueue("echo", {"text": "hi"}, job_id="lost-1")
    real_redis.flushall()
    report = reconciler.run()
    assert report is not None and [r.job_id for r in report.restored] == ["lost-1"]
    assert json.loads(real_redis.rpop(Keys().queue("default")))["params"] == job.params


def test_a_second_pass_restores_nothing(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="once")
    real_redis.flushall()
    reconciler.run()
    report = reconciler.run()
    assert report is not None and report.restored == []
    assert queue_ids(real_redis) == ["once"]


def test_a_job_still_in_redis_is_left_alone(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="kept")
    report = reconciler.run()
    assert report is not None and report.restored == []
    assert queue_ids(real_redis) == ["kept"]


def test_a_job_in_a_workers_in_flight_list_is_left_alone(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="flying")
    real_redis.lmove(Keys().queue("default"), Keys().inflight("w9", "default"), "RIGHT", "LEFT")
    report = reconciler.run()
    assert report is not None and report.restored == []


def test_a_dry_run_restores_nothing(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="dry")
    real_redis.flushall()
    report = reconciler.run(dry_run=True)
    assert report is not None and [r.job_id for r in report.restored] == ["dry"]
    assert queue_ids(real_redis) == []


def test_a_finished_job_is_never_restored(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis, store: JobStore
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="done")
    set_row(store, "done", status="succeeded")
    real_redis.flushall()
    report = reconciler.run()
    assert report is not None and report.unfinished == 0 and queue_ids(real_redis) == []


def test_a_retrying_job_goes_back_to_the_scheduled_set_at_its_due_time(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis, store: JobStore
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="again")
    due = datetime.now(UTC) + timedelta(seconds=120)
    set_row(store, "again", status="retrying", attempts=1, run_at=due)
    real_redis.flushall()
    reconciler.run()
    [(member, score)] = real_redis.zrange(Keys().scheduled, 0, -1, withscores=True)
    queue_key, _, payload = member.decode().partition("\n")
    assert queue_key == Keys().queue("default") and json.loads(payload)["attempts"] == 1
    assert score == pytest.approx(due.timestamp(), abs=0.01)


def test_a_job_running_on_a_gone_worker_goes_back_on_its_queue(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis, store: JobStore
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="orphan")
    set_row(store, "orphan", status="running", worker_id="gone", attempts=1,
            started_at=datetime.now(UTC))  # fmt: skip
    real_redis.flushall()
    reconciler.run()
    assert queue_ids(real_redis) == ["orphan"]


def test_a_job_running_on_a_live_worker_is_left_to_it(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis, store: JobStore
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="busy")
    set_row(store, "busy", status="running", worker_id="alive", attempts=1,
            started_at=datetime.now(UTC))  # fmt: skip
    real_redis.flushall()
    keys = Keys()
    real_redis.set(keys.heartbeat("alive"), "x")
    real_redis.sadd(keys.workers, "alive")
    real_redis.hset(
        keys.worker("alive"), "started_at", (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    )
    report = reconciler.run()
    assert report is not None and report.restored == [] and len(report.held) == 1


def test_a_raw_pushed_job_started_by_a_worker_has_its_payload_stored(store: JobStore) -> None:
    job = Job(id="raw", processor="echo", params={"text": "x"}, timeout=7)
    store.start(job, "default", "w1", datetime.now(UTC))
    assert json.loads(store.get("raw")["payload"])["timeout"] == 7


def test_a_row_without_payload_gets_the_rebuilt_one_stored(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis, store: JobStore
) -> None:
    admin.enqueue("echo", {"text": "hi"}, job_id="old-row")
    set_row(store, "old-row", payload=None)
    real_redis.flushall()
    reconciler.run()
    assert json.loads(store.get("old-row")["payload"])["processor"] == "echo"


def test_a_pass_marks_redis_and_a_worker_sees_the_mark_gone_after_a_flush(
    reconciler: Reconciler, real_redis: redis.Redis, settings: Settings
) -> None:
    reconciler.run()
    fresh = settings.model_copy(update={"reconcile_interval": 3600.0})
    other = Reconciler(real_redis, Keys(), reconciler.ledger.engine, fresh, "w2")
    other.run()
    assert not other.due()
    real_redis.flushall()
    assert other.due()


def test_a_pass_waits_while_another_holds_the_recovery_lock(
    reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    real_redis.set(Keys().recovery_lock, "someone", px=5000)
    assert reconciler.run() is None


def test_restored_jobs_keep_their_order_ahead_of_newer_ones(
    admin: Admin, reconciler: Reconciler, real_redis: redis.Redis
) -> None:
    for i in range(3):
        admin.enqueue("echo", {"text": str(i)}, job_id=f"o{i}")
        time.sleep(0.002)
    real_redis.flushall()
    admin.enqueue("echo", {"text": "new"}, job_id="newer")
    reconciler.run()
    assert queue_ids(real_redis) == ["o0", "o1", "o2", "newer"]
