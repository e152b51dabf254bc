"""Prefetch: while a job runs, the worker takes the next one into its in-flight list.

A prefetched job is never only in memory, never charged a delivery before it starts,
waits at most `WORKER_PREFETCH_HOLD` behind a running job, and goes back to the front
of its queue, in order, when the worker stops or dies.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.chaos.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def _inflight_ids(deployment: Deployment, worker_id: str) -> list[str]:
    return sorted(json.loads(raw)["id"] for raw in deployment.inflight(worker_id))


def _queued_ids(deployment: Deployment) -> list[str]:
    return [j["id"] for j in deployment.queued()]


def _deliveries(deployment: Deployment, job_id: str) -> int:
    return int(deployment.client.hget(deployment.keys.deliveries, job_id) or 0)


def test_the_next_job_is_held_in_flight_uncounted_while_one_runs(
    deployment: Deployment,
) -> None:
    deployment.enqueue("long", "chaos_slow", seconds=2)
    deployment.enqueue("next", "chaos_slow", seconds=0)
    deployment.enqueue("last", "echo", text="third")
    worker = deployment.start(prefetch_hold=30)
    wait_for(lambda: deployment.starts("long"), 60)

    wait_for(lambda: _inflight_ids(deployment, worker.id) == ["long", "next"], 10)
    assert _queued_ids(deployment) == ["last"]
    assert deployment.running() == {b"long": worker.id.encode(), b"next": worker.id.encode()}
    assert _deliveries(deployment, "long") == 1 and _deliveries(deployment, "next") == 0

    for job_id in ("long", "next", "last"):
        deployment.wait_status(job_id, "succeeded", 60)
    # Still one job at a time: the prefetched job started once the long one was done.
    assert deployment.starts("next")[0]["time_ns"] > deployment.starts("long", "done")[0]["time_ns"]
    assert deployment.row("next")["attempts"] == 1  # type: ignore[index]


def test_a_job_prefetched_behind_a_long_one_goes_back_to_the_front_of_its_queue(
    deployment: Deployment,
) -> None:
    deployment.enqueue("long", "chaos_slow", seconds=3)
    deployment.enqueue("next", "echo", text="second")
    deployment.enqueue("last", "echo", text="third")
    worker = deployment.start(prefetch_hold=0.2)
    wait_for(lambda: deployment.starts("long"), 60)

    # Held for 0.2 s at most, then handed back: another worker could take it now.
    wait_for(lambda: _queued_ids(deployment) == ["next", "last"], 5)
    assert _inflight_ids(deployment, worker.id) == ["long"]
    assert deployment.running() == {b"long": worker.id.encode()}
    assert _deliveries(deployment, "next") == 0
    assert deployment.row("next") is None

    for job_id in ("long", "next", "last"):
        assert deployment.wait_status(job_id, "succeeded", 60)["attempts"] == 1


def test_a_worker_killed_while_holding_a_prefetched_job_does_not_charge_it(
    deployment: Deployment,
) -> None:
    # With max_deliveries=1, one delivery that took its worker down is a poison pill:
    # the running job is failed, the merely prefetched one must run normally.
    deployment.enqueue("stuck", "chaos_hang", seconds=600)
    deployment.enqueue("bystander", "echo", text="innocent")
    first = deployment.start(prefetch_hold=30, max_deliveries=1)
    wait_for(lambda: deployment.starts("stuck"), 60)
    wait_for(lambda: _inflight_ids(deployment, first.id) == ["bystander", "stuck"], 10)

    first.kill()
    deployment.start(max_deliveries=1)

    assert deployment.wait_status("bystander", "succeeded", 60)["attempts"] == 1
    assert deployment.wait_status("stuck", "failed", 60)["error_type"] == "PoisonPill"
    assert [e["id"] for e in deployment.failed()] == ["stuck"]


def test_a_prefetched_job_is_charged_its_delivery_once_it_starts(
    deployment: Deployment,
) -> None:
    deployment.enqueue("quick", "echo", text="first")
    deployment.enqueue("stuck", "chaos_hang", seconds=600)  # prefetched while quick runs
    first = deployment.start(max_deliveries=1)
    wait_for(lambda: deployment.starts("stuck"), 60)
    wait_for(lambda: _deliveries(deployment, "stuck") == 1, 10)
    # The quick job's success is group-committed, then acknowledged: a kill before that
    # would (rightly) recover it too, and with one delivery allowed fail it as a poison pill.
    wait_for(lambda: b"quick" not in deployment.running(), 10)

    first.kill()
    deployment.start(max_deliveries=1)

    assert deployment.wait_status("stuck", "failed", 60)["error_type"] == "PoisonPill"
    assert deployment.row("quick")["status"] == "succeeded"  # type: ignore[index]


def test_shutdown_puts_the_prefetched_job_back_behind_the_interrupted_one(
    deployment: Deployment,
) -> None:
    deployment.enqueue("stubborn", "chaos_hang", seconds=600)
    deployment.enqueue("behind1", "echo", text="b1")
    deployment.enqueue("behind2", "echo", text="b2")
    worker = deployment.start(shutdown_grace=1, prefetch_hold=30)
    wait_for(lambda: deployment.starts("stubborn"), 60)
    # echo batches: both echo jobs are taken ahead, as one batch.
    wait_for(lambda: _inflight_ids(deployment, worker.id) == ["behind1", "behind2", "stubborn"], 10)

    worker.signal(signal.SIGTERM)

    assert worker.wait(60) == 0
    assert _queued_ids(deployment) == ["stubborn", "behind1", "behind2"]
    assert deployment.inflight(worker.id) == [] and deployment.running() == {}
    assert _deliveries(deployment, "behind1") == 0 and _deliveries(deployment, "behind2") == 0
    assert deployment.row("behind1") is None


def test_a_prefetched_duplicate_of_the_running_job_leaves_its_claim_alone(
    deployment: Deployment,
) -> None:
    deployment.enqueue("twin", "chaos_slow", seconds=2)
    deployment.enqueue("twin", "chaos_slow", seconds=0)  # the same id, pushed again
    worker = deployment.start(prefetch_hold=0.2)
    wait_for(lambda: deployment.starts("twin"), 60)

    wait_for(lambda: _queued_ids(deployment) == ["twin"], 5)  # handed back
    assert deployment.running() == {b"twin": worker.id.encode()}

    deployment.wait_status("twin", "succeeded", 60)
    wait_for(lambda: _queued_ids(deployment) == [] and deployment.inflight(worker.id) == [], 30)
    assert len(deployment.starts("twin")) == 1  # the success is recorded: never run again
