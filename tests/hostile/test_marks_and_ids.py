"""Against a real redis-server: Redis's side (stoker.lua) and Python's agree on every job id,
no hostile payload leaves a mark that drops or kills a later job, and cancel acts on the
job's real state and leaves nothing behind."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from tests.hostile.conftest import NO_MARKS, marks
from tests.hostile.test_payload_rules import REJECTED, _nested
from tests.unit.conftest import Harness
from worker.admin import Admin
from worker.broker import Broker
from worker.keys import Keys
from worker.protocol import BadPayload, parse_payload

VALID = [
    b'{"id":"plain","processor":"echo"}',
    b'{"id":"caf\\u00e9","processor":"echo"}',
    '{"id":"café ☕","processor":"echo"}'.encode(),
    b'{"id":"\\ud83d\\ude00","processor":"echo"}',
    json.dumps({"id": "x" * 128, "processor": "echo"}).encode(),
    b'{"processor":"echo","id":"last","id":"dup"}',
]


def _python_id(raw: bytes, max_bytes: int) -> str | None:
    """The id the worker files a payload under (its job's id, or its rejection's)."""
    try:
        job, generated = parse_payload(raw, max_bytes=max_bytes)
    except BadPayload as exc:
        return exc.job_id
    return None if generated else job.id


@pytest.mark.parametrize("raw", [r[1] for r in REJECTED] + VALID)
def test_redis_and_python_agree_on_the_id_of_a_payload(raw: bytes, real_redis: redis.Redis) -> None:
    broker = Broker(real_redis, Keys(), max_payload_bytes=1_048_576)
    assert broker.job_id(raw) == _python_id(raw, 1_048_576)


def test_an_oversized_payload_is_never_read_for_an_id_in_redis(real_redis: redis.Redis) -> None:
    broker = Broker(real_redis, Keys(), max_payload_bytes=100)
    raw = json.dumps({"id": "big", "processor": "echo", "params": {"t": "x" * 200}})
    assert broker.job_id(raw) is None


STALE_CASES = [
    ("float id", b'{"id":2.5,"processor":"echo","params":{"text":"bad"}}', "2.5"),
    ("big integer id", b'{"id":123456789012345678,"processor":"echo"}', "123456789012345678"),
    ("invalid UTF-8 beside the id", b'{"id":"u8","processor":"echo","x":"\xff"}', "u8"),
    ("nested 995 levels", _nested(995, "n995"), "n995"),
    ("oversized", json.dumps({"id": "huge", "processor": "echo", "p": "x" * 3000}), "huge"),
]


@pytest.mark.parametrize(
    ("raw", "job_id"), [c[1:] for c in STALE_CASES], ids=[c[0] for c in STALE_CASES]
)
def test_a_rejected_payload_leaves_no_mark_that_drops_a_later_job(
    harness: Harness, raw: bytes | str, job_id: str
) -> None:
    harness.push(raw)
    harness.drain(max_payload_bytes=2000)
    assert marks(harness.client, harness.keys) == NO_MARKS

    harness.push({"id": job_id, "processor": "echo", "params": {"text": "good"}})
    harness.drain(max_payload_bytes=2000)

    assert harness.row(job_id)["status"] == "succeeded"
    assert marks(harness.client, harness.keys) == NO_MARKS
    assert len(harness.failed()) == 1


def test_a_boolean_id_makes_no_row_named_true(harness: Harness) -> None:
    harness.push(b'{"id":true,"processor":"echo"}')
    harness.drain()
    (entry,) = harness.failed()
    assert entry["id"] is None and "must be a string" in entry["error"]["message"]
    assert harness.row("True") is None


def test_a_busy_redis_is_ridden_out_like_an_outage(harness: Harness, redis_url: str) -> None:
    client = harness.client
    old = client.config_get("busy-reply-threshold").get("busy-reply-threshold", "5000")
    client.config_set("busy-reply-threshold", 50)
    busy = redis.Redis.from_url(redis_url)
    script = "local s = redis.call('TIME')[1] while redis.call('TIME')[1] - s < 2 do end return 1"
    try:
        for i in range(5):
            harness.push({"id": f"j{i}", "processor": "echo", "params": {"text": str(i)}})
        runner = threading.Thread(target=lambda: busy.eval(script, 0))
        runner.start()
        time.sleep(0.2)
        worker = harness.drain()
        runner.join()
    finally:
        client.config_set("busy-reply-threshold", old)
        busy.close()
    assert worker.stats.succeeded == 5
    assert all(harness.row(f"j{i}")["status"] == "succeeded" for i in range(5))


def test_cancel_of_a_scheduled_job_leaves_nothing_that_kills_a_new_one(
    harness: Harness, admin: Admin
) -> None:
    future = time.time() + 3600
    harness.push({"id": "again", "processor": "echo", "run_at": future})
    harness.drain()

    result = admin.cancel("again")
    assert result.state == "unscheduled" and result.acted
    assert harness.row("again")["status"] == "cancelled"

    admin.enqueue("echo", {"text": "second life"}, job_id="again")
    harness.drain()
    assert harness.row("again")["status"] == "succeeded"
    assert marks(harness.client, harness.keys) == NO_MARKS


def test_cancel_of_a_raw_pushed_queued_job_removes_it_and_records_it(
    harness: Harness, admin: Admin
) -> None:
    harness.push({"id": "raw", "processor": "echo"})
    result = admin.cancel("raw")
    assert result.state == "removed"
    assert harness.queue() == [] and harness.row("raw")["status"] == "cancelled"


def test_cancel_of_a_finished_job_does_nothing_and_says_so(harness: Harness, admin: Admin) -> None:
    harness.push({"id": "done", "processor": "echo"})
    harness.drain()
    result = admin.cancel("done")
    assert result.state == "finished" and not result.acted
    assert "already succeeded" in result.message
    assert harness.row("done")["status"] == "succeeded"
    assert marks(harness.client, harness.keys) == NO_MARKS


def test_cancel_of_an_unknown_job_does_nothing_and_says_so(admin: Admin) -> None:
    result = admin.cancel("never-seen")
    assert result.state == "unknown" and not result.acted
    assert marks(admin.client, admin.keys) == NO_MARKS


def test_a_poison_pill_is_requeued_onto_the_queue_it_came_from(
    harness: Harness, admin: Admin
) -> None:
    keys = harness.keys
    client = harness.client
    payload = json.dumps({"id": "pill", "processor": "echo"})
    client.sadd(keys.workers, "dead")
    client.hset(keys.worker("dead"), "queues", "high,default")
    client.lpush(keys.inflight("dead", "default"), payload)
    client.hset(keys.running, "pill", "dead")
    client.hset(keys.deliveries, "pill", 3)

    broker = Broker(client, keys)
    _, poisoned, _ = broker.recover("dead", ["high", "default"], 3, "2026-01-01T00:00:00")
    assert poisoned == ["pill"]
    (entry,) = harness.failed()
    assert entry["queue"] == "default" and entry["error"]["type"] == "PoisonPill"

    admin.settings = admin.settings.model_copy(update={"queues": ["high", "default"]})
    assert admin.requeue_failed("pill") == [("pill", "default")]
    assert client.llen(keys.queue("high")) == 0
    assert client.llen(keys.queue("default")) == 1


def test_enqueue_refuses_a_bad_queue_name_before_writing_anything(admin: Admin) -> None:
    from worker.admin import AdminError

    with pytest.raises(AdminError, match="invalid queue name"):
        admin.enqueue("echo", {"text": "x"}, queue="bad\nqueue", job_id="q1")
    assert admin.store.get("q1") is None


def test_enqueue_refuses_unknown_processors_and_bad_params(admin: Admin) -> None:
    from worker.admin import AdminError

    with pytest.raises(AdminError, match="unknown processor"):
        admin.enqueue("nope", {}, job_id="e1")
    with pytest.raises(AdminError, match="invalid params for echo"):
        admin.enqueue("echo", {"text": 5}, job_id="e2")
    assert admin.store.get("e1") is None and admin.store.get("e2") is None


def test_a_failed_requeue_writes_the_row_before_the_job_can_fail_again(
    harness: Harness, admin: Admin
) -> None:
    harness.push({"id": "twice", "processor": "echo", "params": {"text": 5}})
    harness.drain()
    assert admin.requeue_failed("twice") == [("twice", "default")]
    harness.drain()
    assert harness.row("twice")["status"] == "failed"


def test_readers_survive_a_hostile_failed_list(harness: Harness, admin: Admin) -> None:
    harness.client.lpush(harness.keys.failed, b"[" * 100_000, b"\xff\xfe", b"42", b"{}")
    harness.client.lpush(harness.keys.failed, json.dumps({"id": None, "job": {"id": 2.5}}))
    assert len(admin.failed()) == 5
    assert admin.failed_entry("2.5") is not None
    assert admin.job("nope") is None
    assert admin.info()["failed"] == 5
    assert admin.purge_failed() == 5


def test_parse_never_raises_anything_but_bad_payload_on_the_stale_cases() -> None:
    for _, raw, _ in STALE_CASES:
        with pytest.raises(BadPayload):
            parse_payload(raw, max_bytes=2000)


def test_an_empty_payload_goes_to_the_failed_list_not_stuck_in_flight(harness: Harness) -> None:
    harness.push(b"")
    harness.push({"id": "after", "processor": "echo"})
    harness.drain()
    (entry,) = harness.failed()
    assert entry["raw"] == "" and "malformed JSON" in entry["error"]["message"]
    assert harness.client.llen(harness.keys.inflight("unit-worker", "default")) == 0
    assert harness.row("after")["status"] == "succeeded"


@pytest.mark.parametrize("move", ["schedule", "requeue_front"])
def test_a_job_cancelled_while_it_ran_is_neither_retried_nor_requeued(
    real_redis: redis.Redis, move: str
) -> None:
    keys = Keys()
    broker = Broker(real_redis, keys, "w1")
    payload = json.dumps({"id": "c1", "processor": "echo"})
    real_redis.lpush(keys.queue("default"), payload)
    delivery = broker.fetch(["default"]).delivery
    assert delivery is not None
    assert broker.cancel_running("c1") == "w1"

    if move == "schedule":
        moved = broker.schedule(delivery, "c1", payload, due=0)
    else:
        moved = broker.requeue_front(delivery, "c1", payload)

    assert moved is False
    assert real_redis.zcard(keys.scheduled) == 0 and real_redis.llen(keys.queue("default")) == 0
    assert marks(real_redis, keys) == NO_MARKS


def test_a_lock_taken_over_by_another_worker_is_not_released_by_the_first(
    real_redis: redis.Redis,
) -> None:
    keys = Keys()
    broker = Broker(real_redis, keys, "w1")
    real_redis.set(keys.recovery_lock, "token-of-w1", px=30_000)
    # w1's lock expired meanwhile and w2 took it.
    real_redis.set(keys.recovery_lock, "token-of-w2", px=30_000)

    assert broker.unlock(keys.recovery_lock, "token-of-w1") is False
    assert real_redis.get(keys.recovery_lock) == b"token-of-w2"
    assert broker.unlock(keys.recovery_lock, "token-of-w2") is True
    assert real_redis.get(keys.recovery_lock) is None
