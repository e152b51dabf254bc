"""The atomic Redis snapshot: every place a job can be, and the live workers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis

from worker.keys import Keys
from worker.whereabouts import snapshot

K = Keys()


def payload(job_id: str) -> str:
    return json.dumps({"id": job_id, "processor": "echo"})


def test_a_snapshot_finds_jobs_in_every_place(real_redis: redis.Redis) -> None:
    real_redis.lpush(K.queue("low"), payload("q"))
    real_redis.lpush(K.inflight("w1", "default"), payload("f"))
    real_redis.zadd(K.scheduled, {f"{K.queue('default')}\n{payload('s')}": 1.0})
    real_redis.lpush(K.failed, json.dumps({"id": "x", "job": {"id": "x"}}))
    where = snapshot(real_redis, K, ["default", "low"], 1_000_000)
    assert (where.queued, where.inflight, where.scheduled, where.failed) == (
        {"q"}, {"f"}, {"s"}, {"x"},
    )  # fmt: skip


def test_a_snapshot_skips_payloads_without_an_id(real_redis: redis.Redis) -> None:
    real_redis.lpush(K.queue("default"), "not json", '{"processor": "echo"}')
    assert snapshot(real_redis, K, ["default"], 1_000_000).present == frozenset()


def test_only_workers_with_a_heartbeat_are_live(real_redis: redis.Redis) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    real_redis.sadd(K.workers, "alive", "dead")
    real_redis.set(K.heartbeat("alive"), "x")
    real_redis.hset(K.worker("alive"), "started_at", started.isoformat())
    assert snapshot(real_redis, K, ["default"], 1_000_000).live_workers == {
        "alive": started.timestamp()
    }
