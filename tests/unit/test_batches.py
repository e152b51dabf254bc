"""Batches and prepared inputs: the pure rules (`worker.batches`, `worker.wakeup`), the
runner's `run_batch` and `prepare_ahead`, and the batched fetch in `stoker.lua`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from worker.batches import batch_timeout, split
from worker.broker import Broker
from worker.callbacks import NoCallbacks
from worker.execution import JobRunner, Task
from worker.keys import Keys
from worker.outcome import Outcome
from worker.wakeup import notify_flags

KEYS = Keys.from_settings(Settings())
SAMPLE = "tests.unit.sample_processors:PreparedProcessor"


@pytest.mark.parametrize(
    ("size", "halves"),
    [(2, (1, 1)), (3, (2, 1)), (8, (4, 4)), (5, (3, 2))],
)
def test_a_failed_batch_is_split_into_halves(size: int, halves: tuple[int, int]) -> None:
    first, second = split(list(range(size)))
    assert (len(first), len(second)) == halves and first + second == list(range(size))


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [([5.0, 10.0], 5.0), ([5.0, None], 5.0), ([0.0, 3.0], 3.0), ([None, 0.0], None)],
)
def test_a_batch_times_out_after_its_shortest_member_timeout(
    timeouts: list[float | None], expected: float | None
) -> None:
    assert batch_timeout(timeouts) == expected


@pytest.mark.parametrize(
    ("current", "wanted"),
    [("", "Kl"), ("Ex", "ExKl"), ("KA", None), ("Kl", None), ("Kg", "Kgl"), ("lE", "lEK")],
)
def test_keyspace_list_events_are_added_to_what_is_configured(
    current: str, wanted: str | None
) -> None:
    assert notify_flags(current) == wanted


@pytest.fixture
def runner(make_settings: Callable[..., Settings]) -> JobRunner:
    return JobRunner(make_settings(processors=[SAMPLE], device="cpu"))


def tasks(*texts: str, broken: bool = False) -> list[Task]:
    return [
        Task(f"j{i}", "prepared", {"text": t, "broken": broken}, 1) for i, t in enumerate(texts)
    ]


def test_run_batch_gives_each_task_its_own_outcome_in_order(runner: JobRunner) -> None:
    outcomes = runner.run_batch(tasks("a", "b", "c"), NoCallbacks())
    assert isinstance(outcomes, list)
    assert [o.result for o in outcomes] == [{"text": t, "batch": 3} for t in ("A", "B", "C")]


def test_an_item_returned_as_an_exception_fails_only_its_own_task(runner: JobRunner) -> None:
    outcomes = runner.run_batch(tasks("a", "", "c"), NoCallbacks())
    assert isinstance(outcomes, list)
    assert [o.kind for o in outcomes] == ["succeeded", "error", "succeeded"]
    assert outcomes[1].error_type == "ValueError"


def test_invalid_params_fail_their_task_and_the_rest_share_the_call(runner: JobRunner) -> None:
    batch = tasks("a", "b")
    batch.insert(1, Task("bad", "prepared", {"nope": 1}, 1))
    outcomes = runner.run_batch(batch, NoCallbacks())
    assert isinstance(outcomes, list)
    assert outcomes[1].permanent and "invalid params" in (outcomes[1].message or "")
    assert outcomes[0].result == {"text": "A", "batch": 2}


def test_a_call_that_raises_is_one_outcome_for_the_whole_batch(runner: JobRunner) -> None:
    outcome = runner.run_batch(tasks("a", "b", broken=True), NoCallbacks())
    assert isinstance(outcome, Outcome) and outcome.error_type == "RuntimeError"


def test_a_call_that_breaks_the_one_result_per_item_contract_fails_as_a_whole(
    runner: JobRunner,
) -> None:
    proc = runner.processor("prepared")
    proc.process_batch = lambda items: [{"only": "one"}]  # type: ignore[method-assign]
    outcome = runner.run_batch(tasks("a", "b"), NoCallbacks())
    assert isinstance(outcome, Outcome) and "returned 1 results for 2 jobs" in (
        outcome.message or ""
    )


def test_a_single_job_of_a_batching_processor_runs_process_on_its_prepared_input(
    runner: JobRunner,
) -> None:
    outcome = runner.run(tasks("solo")[0], NoCallbacks())
    assert outcome.result == {"text": "SOLO", "batch": 1}


def test_inputs_prepared_ahead_are_used_and_not_prepared_again(runner: JobRunner) -> None:
    proc = runner.processor("prepared")
    batch = tasks("a", "b")
    runner.prepare_ahead(batch)
    deadline = time.monotonic() + 5
    while len(proc.prepared) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    outcomes = runner.run_batch(batch, NoCallbacks())
    assert isinstance(outcomes, list) and [o.result["text"] for o in outcomes] == ["A", "B"]
    assert sorted(proc.prepared) == ["j0", "j1"]
    runner.close()


def test_inputs_prepared_for_jobs_that_never_ran_here_are_dropped(runner: JobRunner) -> None:
    runner.processor("prepared")
    runner.prepare_ahead(tasks("a"))
    runner.prepare_ahead([Task("other", "prepared", {"text": "z"}, 1)])
    assert list(runner._prepared) == ["other"]
    runner.close()


# The batched fetch (stoker.lua)
@pytest.fixture
def broker(fake_redis: Any) -> Broker:
    b = Broker(fake_redis, KEYS, "w1")
    b.batch_sizes = {"prepared": 3}
    return b


def push(client: Any, payload: dict[str, Any] | str, queue: str = "default") -> None:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    client.lpush(KEYS.queue(queue), raw)


def ids(batch: list[Any]) -> list[str]:
    return [json.loads(d.raw)["id"] for d in batch]


def test_a_fetch_takes_the_jobs_of_a_batching_processor_behind_the_first_in_order(
    broker: Broker, fake_redis: Any
) -> None:
    for i in range(5):
        push(fake_redis, {"id": f"p{i}", "processor": "prepared"})
    assert ids(broker.fetch(["default"]).batch) == ["p0", "p1", "p2"]
    assert ids(broker.fetch(["default"]).batch) == ["p3", "p4"]


def test_a_job_of_another_processor_at_the_head_ends_the_batch(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, {"id": "p0", "processor": "prepared"})
    push(fake_redis, {"id": "e0", "processor": "echo"})
    push(fake_redis, {"id": "p1", "processor": "prepared"})
    assert ids(broker.fetch(["default"]).batch) == ["p0"]
    assert ids(broker.fetch(["default"]).batch) == ["e0"]


def test_a_batch_never_reaches_into_a_lower_priority_queue(broker: Broker, fake_redis: Any) -> None:
    push(fake_redis, {"id": "h0", "processor": "prepared"}, "high")
    push(fake_redis, {"id": "d0", "processor": "prepared"}, "default")
    assert ids(broker.fetch(["high", "default"]).batch) == ["h0"]


def test_bare_payloads_batch_under_their_queue_default_processor(
    broker: Broker, fake_redis: Any
) -> None:
    broker.queue_processors = {"default": "prepared"}
    push(fake_redis, {"text": "a"})
    push(fake_redis, {"text": "b"})
    assert len(broker.fetch(["default"]).batch) == 2


def test_an_id_less_job_is_named_in_the_fetch_its_text_otherwise_untouched(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, '{"processor": "echo", "params": {"x": 1.000000000000000001}}')
    delivery = broker.fetch(["default"]).delivery
    assert delivery is not None and delivery.named
    job_id = json.loads(delivery.raw)["id"]
    assert len(job_id) == 32
    expected = f'{{"id":"{job_id}","processor": "echo", "params": {{"x": 1.000000000000000001}}}}'
    assert delivery.raw.decode() == expected
    assert fake_redis.hget(KEYS.running, job_id) == b"w1"
    assert fake_redis.lrange(KEYS.inflight("w1", "default"), 0, -1) == [delivery.raw]


@pytest.mark.parametrize(
    "payload", ['{"id": 7, "processor": "echo"}', "[1, 2]", '{"id": null}', "not json"]
)
def test_a_payload_with_a_bad_id_or_no_object_is_never_named(
    broker: Broker, fake_redis: Any, payload: str
) -> None:
    push(fake_redis, payload)
    delivery = broker.fetch(["default"]).delivery
    assert delivery is not None and not delivery.named and delivery.raw.decode() == payload


def test_ids_named_in_one_fetch_are_distinct(broker: Broker, fake_redis: Any) -> None:
    for _ in range(3):
        push(fake_redis, {"processor": "prepared"})
    assert len(set(ids(broker.fetch(["default"]).batch))) == 3


def test_an_empty_object_is_named_as_valid_json(broker: Broker, fake_redis: Any) -> None:
    push(fake_redis, " { } ")
    delivery = broker.fetch(["default"]).delivery
    assert delivery is not None and list(json.loads(delivery.raw)) == ["id"]


# Landing: an idle worker's BLMOVE and the claim that follows it on one connection
def test_a_job_that_lands_is_taken_into_flight_named_and_claimed_in_one_exchange(
    broker: Broker, fake_redis: Any
) -> None:
    push(fake_redis, {"processor": "echo"})
    delivery = broker.block_fetch("default", 0.01)
    assert delivery is not None and delivery.named and delivery.deliveries == 1
    assert fake_redis.llen(KEYS.landing("w1", "default")) == 0
    assert fake_redis.lrange(KEYS.inflight("w1", "default"), 0, -1) == [delivery.raw]


def test_nothing_landed_is_no_delivery(broker: Broker) -> None:
    assert broker.block_fetch("default", 0.01) is None


def test_a_dead_worker_landed_job_goes_back_to_the_front_of_its_queue_uncounted(
    broker: Broker, fake_redis: Any
) -> None:
    landed = json.dumps({"id": "landed", "processor": "echo"})
    fake_redis.lpush(KEYS.landing("dead", "default"), landed)
    push(fake_redis, {"id": "later", "processor": "echo"})
    broker.recover("dead", ["default"], 3, "2026-01-01T00:00:00Z")
    assert [
        json.loads(r)["id"] for r in reversed(fake_redis.lrange(KEYS.queue("default"), 0, -1))
    ] == [
        "landed",
        "later",
    ]
    assert fake_redis.hget(KEYS.deliveries, "landed") is None
