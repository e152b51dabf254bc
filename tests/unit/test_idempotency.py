"""Redelivery and duplicate ids never run a job twice."""

from __future__ import annotations

import json

from tests.unit.conftest import Harness


def test_redelivered_job_whose_success_is_recorded_is_acknowledged_without_running(
    harness: Harness,
) -> None:
    harness.push({"id": "once", "processor": "echo", "params": {"text": "x"}})
    harness.drain()
    harness.push({"id": "once", "processor": "echo", "params": {"text": "again"}})
    worker = harness.drain()
    assert worker.stats.skipped == 1 and worker.stats.processed == 0
    assert harness.row("once")["result"] == {"text": "x"}
    assert harness.queue() == []


def test_duplicate_id_while_first_is_running_is_not_run(harness: Harness) -> None:
    harness.client.hset(harness.keys.running, "busy", "another-worker")
    harness.push({"id": "busy", "processor": "echo"})
    worker = harness.drain()
    assert worker.stats.processed == 0 and worker.stats.skipped == 1
    assert harness.queue() == [] and harness.row("busy") is None


def test_nothing_stays_in_flight_after_a_drain(harness: Harness) -> None:
    for i in range(5):
        harness.push({"id": f"j{i}", "processor": "echo"})
    harness.drain()
    assert harness.client.keys(f"{harness.keys.prefix}:inflight:*") == []
    assert harness.client.hlen(harness.keys.running) == 0
    assert harness.client.hlen(harness.keys.deliveries) == 0


def test_jobs_a_lost_reply_left_in_flight_are_handed_back_to_the_front_of_their_queue(
    harness: Harness,
) -> None:
    from worker.executor import InlineExecutor
    from worker.worker import Worker

    # A fetch whose reply was lost with its connection: the job sits in this worker's
    # in-flight list, claimed, but the loop never saw it.
    inflight = harness.keys.inflight("unit-worker", "default")
    harness.client.lpush(inflight, '{"id": "lost", "processor": "echo"}')
    harness.client.hset(harness.keys.running, "lost", "unit-worker")
    harness.push({"id": "later", "processor": "echo"})
    worker = Worker(
        harness.settings,
        burst=True,
        client=harness.client,
        executor=InlineExecutor(harness.settings),
        worker_id="unit-worker",
    )
    try:
        worker.prefetcher.reclaim_orphans()
    finally:
        worker.close()

    assert [json.loads(raw)["id"] for raw in reversed(harness.queue())] == ["lost", "later"]
    assert harness.client.llen(inflight) == 0 and harness.client.hlen(harness.keys.running) == 0
    harness.drain()
    assert harness.row("lost")["status"] == "succeeded"
