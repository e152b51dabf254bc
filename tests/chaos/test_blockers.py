"""An idle worker's waits on several queues at once (`worker.blockers`), against a real
redis-server: what they take, what they hand back, what they leave behind."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from config import Settings
from worker.blockers import Blockers
from worker.broker import Broker
from worker.keys import Keys

pytestmark = pytest.mark.chaos

KEYS = Keys.from_settings(Settings())
QUEUES = ["high", "default", "low"]


@pytest.fixture
def lost() -> list[bool]:
    return []


@pytest.fixture
def blockers(real_redis: redis.Redis, lost: list[bool]) -> Iterator[Blockers]:
    waits = Blockers(Broker(real_redis, KEYS, "w1"), QUEUES, on_lost=lambda: lost.append(True))
    assert waits.open()
    yield waits
    waits.close()


def payload(job_id: str) -> str:
    return json.dumps({"id": job_id, "processor": "echo", "params": {}})


Later = Callable[[float, Callable[[], Any]], threading.Timer]


@pytest.fixture
def later(real_redis: redis.Redis) -> Iterator[Later]:
    """Run an action on a timer thread; every timer is joined before Redis is closed."""
    timers: list[threading.Timer] = []

    def start(seconds: float, action: Callable[[], Any]) -> threading.Timer:
        timers.append(timer := threading.Timer(seconds, action))
        timer.start()
        return timer

    yield start
    for timer in timers:
        timer.join()


def kill_waits(client: redis.Redis) -> None:
    """Drop every connection blocked in a BLMOVE (as a restart or a proxy would)."""
    for entry in client.client_list():
        if entry.get("cmd") == "blmove":
            with contextlib.suppress(redis.ResponseError):  # already gone with the first
                client.client_kill_filter(_id=entry["id"])


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])


def test_a_push_to_any_queue_is_taken_into_flight_and_claimed(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    later(0.1, lambda: real_redis.lpush(KEYS.queue("low"), payload("a")))

    delivery = blockers.wait(5.0)
    blockers.settle()

    assert delivery is not None and delivery.queue == "low" and delivery.counted
    assert real_redis.lrange(KEYS.inflight("w1", "low"), 0, -1) == [delivery.raw]
    assert real_redis.hget(KEYS.running, "a") == b"w1"
    assert real_redis.hget(KEYS.deliveries, "a") == b"1"


def test_the_other_waits_are_cancelled_once_settled(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    later(0.1, lambda: real_redis.lpush(KEYS.queue("default"), payload("a")))
    assert blockers.wait(5.0) is not None

    blockers.settle()

    assert blocked_clients(real_redis) == 0


def test_an_id_less_job_is_named_as_it_lands(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    later(0.1, lambda: real_redis.lpush(KEYS.queue("high"), '{"processor": "echo"}'))

    delivery = blockers.wait(5.0)
    blockers.settle()

    assert delivery is not None and delivery.named
    assert json.loads(delivery.raw)["id"]


def test_pushes_to_two_queues_at_once_run_one_and_hand_the_other_back_uncounted(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    def push_both() -> None:
        pipe = real_redis.pipeline(transaction=True)  # one MULTI: both waits are served
        pipe.lpush(KEYS.queue("low"), payload("low-job"))
        pipe.lpush(KEYS.queue("high"), payload("high-job"))
        pipe.execute()

    later(0.1, push_both)

    delivery = blockers.wait(5.0)
    blockers.settle()

    assert delivery is not None
    kept = json.loads(delivery.raw)["id"]
    other, other_queue = ("low-job", "low") if kept == "high-job" else ("high-job", "high")
    assert [json.loads(p)["id"] for p in real_redis.lrange(KEYS.queue(other_queue), 0, -1)] == [
        other
    ]
    assert real_redis.hget(KEYS.deliveries, other) is None
    assert real_redis.hget(KEYS.running, other) is None
    assert real_redis.hget(KEYS.deliveries, kept) == b"1"
    assert not any(real_redis.llen(KEYS.landing("w1", q)) for q in QUEUES)
    assert real_redis.llen(KEYS.inflight("w1", other_queue)) == 0


def test_a_wait_that_times_out_takes_nothing_and_leaves_no_client_blocked(
    blockers: Blockers, real_redis: redis.Redis
) -> None:
    assert blockers.wait(0.2) is None
    assert blocked_clients(real_redis) == 0


def test_waits_run_again_after_a_win(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    for i, queue in enumerate(["low", "high", "default"]):
        later(0.05, lambda q=queue, n=i: real_redis.lpush(KEYS.queue(q), payload(f"j{n}")))
        delivery = blockers.wait(5.0)
        assert delivery is not None and delivery.queue == queue


def test_a_lost_wait_connection_is_a_connection_error_and_reported_lost(
    blockers: Blockers, real_redis: redis.Redis, lost: list[bool], later: Later
) -> None:
    later(0.2, lambda: kill_waits(real_redis))

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        blockers.wait(5.0)

    assert time.monotonic() - started < 3 and lost == [True]


def test_a_server_that_refuses_client_commands_is_reported_unavailable(
    limited_url: Callable[[list[str]], str],
) -> None:
    limited = redis.Redis.from_url(limited_url(["client"]))
    waits = Blockers(Broker(limited, KEYS, "w1"), QUEUES, on_lost=lambda: None)

    assert waits.open() is False
    limited.close()


def test_fakeredis_is_reported_unavailable(fake_redis: Any) -> None:
    waits = Blockers(Broker(fake_redis, KEYS, "w1"), QUEUES, on_lost=lambda: None)
    assert waits.open() is False


def test_the_waits_reconnect_after_a_lost_connection(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    killer = later(0.2, lambda: kill_waits(real_redis))
    with pytest.raises(redis.ConnectionError):
        blockers.wait(5.0)
    killer.join()  # before the new waits connect
    later(0.1, lambda: real_redis.lpush(KEYS.queue("default"), payload("after")))

    delivery = blockers.wait(5.0)

    assert delivery is not None and json.loads(delivery.raw)["id"] == "after"


def test_a_job_that_lands_after_the_scripts_were_flushed_is_still_claimed(
    blockers: Blockers, real_redis: redis.Redis, later: Later
) -> None:
    real_redis.script_flush()  # as a restarted Redis forgets them
    later(0.1, lambda: real_redis.lpush(KEYS.queue("low"), payload("after-flush")))

    delivery = blockers.wait(5.0)

    assert delivery is not None and json.loads(delivery.raw)["id"] == "after-flush"
    assert real_redis.hget(KEYS.running, "after-flush") == b"w1"
