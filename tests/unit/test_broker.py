"""The broker's Redis state changes: fetch, prefetch, release, acknowledge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config import Settings
from worker.broker import Broker
from worker.keys import Keys

KEYS = Keys.from_settings(Settings())


@pytest.fixture
def broker(fake_redis: Any) -> Broker:
    return Broker(fake_redis, KEYS, "w1")


def push(client: Any, job_id: str, queue: str = "default") -> bytes:
    payload = json.dumps({"id": job_id, "processor": "echo"}).encode()
    client.lpush(KEYS.queue(queue), payload)
    return payload


def queued_ids(client: Any, queue: str = "default") -> list[str]:
    """The queue's job ids, next to run first."""
    return [json.loads(r)["id"] for r in reversed(client.lrange(KEYS.queue(queue), 0, -1))]


def deliveries(client: Any, job_id: str) -> int:
    return int(client.hget(KEYS.deliveries, job_id) or 0)


def test_fetch_moves_the_oldest_job_in_flight_and_counts_its_delivery(
    broker: Broker, fake_redis: Any
) -> None:
    first = push(fake_redis, "a")
    push(fake_redis, "b")

    delivery = broker.fetch(["default"]).delivery

    assert delivery is not None and delivery.raw == first and delivery.counted
    assert fake_redis.lrange(KEYS.inflight("w1", "default"), 0, -1) == [first]
    assert fake_redis.hget(KEYS.running, "a") == b"w1"
    assert deliveries(fake_redis, "a") == 1
    assert queued_ids(fake_redis) == ["b"]


def test_a_prefetched_job_is_claimed_but_its_delivery_not_counted(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")

    broker.prefetch(["default"])
    result = broker.prefetched()

    assert result is not None and result.delivery is not None
    assert not result.delivery.counted
    assert fake_redis.hget(KEYS.running, "a") == b"w1"
    assert deliveries(fake_redis, "a") == 0


def test_the_next_prefetch_counts_the_delivery_of_the_prefetched_job_that_started(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    broker.prefetch(["default"])
    assert broker.prefetched() is not None

    broker.prefetch(["default"], started="a")  # "a" now runs; nothing else is queued
    result = broker.prefetched()

    assert result is not None and result.delivery is None
    assert deliveries(fake_redis, "a") == 1


def test_a_call_made_before_collecting_a_prefetch_keeps_its_reply(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    broker.prefetch(["default"])

    push(fake_redis, "b")
    other = broker.fetch(["default"]).delivery  # the same connection, a later reply
    result = broker.prefetched()

    assert result is not None and result.delivery is not None
    assert json.loads(result.delivery.raw)["id"] == "a"
    assert other is not None and json.loads(other.raw)["id"] == "b"


def test_release_puts_a_prefetched_job_back_at_the_front_uncharged(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    push(fake_redis, "b")
    broker.prefetch(["default"])
    result = broker.prefetched()
    assert result is not None and result.delivery is not None

    broker.release(result.delivery)

    assert queued_ids(fake_redis) == ["a", "b"]
    assert fake_redis.llen(KEYS.inflight("w1", "default")) == 0
    assert fake_redis.hget(KEYS.running, "a") is None
    assert deliveries(fake_redis, "a") == 0


def test_prefetch_does_not_claim_the_id_of_the_job_this_worker_runs(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    push(fake_redis, "a")  # a second job with the same id, pushed by a producer
    running = broker.fetch(["default"]).delivery
    assert running is not None and running.duplicate_of is None

    broker.prefetch(["default"], started=None)
    result = broker.prefetched()

    assert result is not None and result.delivery is not None
    assert result.delivery.duplicate_of == "w1"
    assert deliveries(fake_redis, "a") == 1


def test_release_leaves_another_workers_claim_alone(broker: Broker, fake_redis: Any) -> None:
    push(fake_redis, "a")
    fake_redis.hset(KEYS.running, "a", "w2")  # w2 runs a job with the same id
    broker.prefetch(["default"])
    result = broker.prefetched()
    assert result is not None and result.delivery is not None
    assert result.delivery.duplicate_of == "w2"

    broker.release(result.delivery)

    assert fake_redis.hget(KEYS.running, "a") == b"w2"
    assert queued_ids(fake_redis) == ["a"]


def test_ack_many_takes_jobs_of_several_queues_out_of_flight_in_one_call(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "h", "high")
    push(fake_redis, "d", "default")
    fetched = [broker.fetch(["high", "default"]).delivery for _ in range(2)]
    assert all(d is not None for d in fetched)

    broker.ack_many([(d, json.loads(d.raw)["id"]) for d in fetched if d is not None])

    for queue in ("high", "default"):
        assert fake_redis.llen(KEYS.inflight("w1", queue)) == 0
    assert fake_redis.hlen(KEYS.running) == 0 and fake_redis.hlen(KEYS.deliveries) == 0


def test_releasing_a_prefetched_duplicate_keeps_the_running_jobs_claim(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    push(fake_redis, "a")
    assert broker.fetch(["default"]).delivery is not None  # "a" runs here
    broker.prefetch(["default"])
    result = broker.prefetched()
    assert result is not None and result.delivery is not None

    broker.release(result.delivery)

    assert fake_redis.hget(KEYS.running, "a") == b"w1"
    assert queued_ids(fake_redis) == ["a"]


def test_release_counts_back_the_delivery_of_a_job_a_wait_took_but_never_started(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    fake_redis.lmove(KEYS.queue("default"), KEYS.landing("w1", "default"), "RIGHT", "LEFT")
    _, land = broker.wait_commands("default", 1.0, "0" * 32)
    landed = broker.landed(broker._command(*land), "default", "0" * 32)
    assert landed is not None and deliveries(fake_redis, "a") == 1

    broker.release(landed)

    assert queued_ids(fake_redis) == ["a"]
    assert fake_redis.hget(KEYS.deliveries, "a") is None
    assert fake_redis.hget(KEYS.running, "a") is None


def test_release_keeps_the_deliveries_counted_before_the_one_handed_back(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "a")
    fake_redis.hset(KEYS.deliveries, "a", 2)  # delivered twice before, by workers that died
    fake_redis.lmove(KEYS.queue("default"), KEYS.landing("w1", "default"), "RIGHT", "LEFT")
    _, land = broker.wait_commands("default", 1.0, "0" * 32)
    landed = broker.landed(broker._command(*land), "default", "0" * 32)
    assert landed is not None

    broker.release(landed)

    assert deliveries(fake_redis, "a") == 2


def test_jobs_left_in_a_landing_list_go_back_to_the_front_of_their_queue(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, "later")
    fake_redis.lpush(KEYS.landing("w1", "default"), json.dumps({"id": "landed"}))

    assert broker.reclaim_landed("default") == 1

    assert queued_ids(fake_redis) == ["landed", "later"]
    assert fake_redis.llen(KEYS.landing("w1", "default")) == 0
