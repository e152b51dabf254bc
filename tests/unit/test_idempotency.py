"""Redelivery and duplicate ids never run a job twice."""

from __future__ import annotations

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
