"""Retries: transient errors come back later; the worker never sleeps through a backoff."""

from __future__ import annotations

import json
import time

from tests.unit.conftest import Harness


def _scheduled(h: Harness) -> list[tuple[dict, float]]:
    out = []
    for member, score in h.client.zrange(h.keys.scheduled, 0, -1, withscores=True):
        _, _, payload = member.partition(b"\n")
        out.append((json.loads(payload), score))
    return out


def test_transient_error_is_scheduled_for_retry_with_attempt_count(harness: Harness) -> None:
    harness.push({"id": "t1", "processor": "echo", "params": {"fail": "transient"}})
    before = time.time()
    harness.drain(retry_base=30.0)
    ((job, due),) = _scheduled(harness)
    assert job["id"] == "t1" and job["attempts"] == 1
    assert before + 29 <= due <= time.time() + 31
    row = harness.row("t1")
    assert row["status"] == "retrying" and row["attempts"] == 1 and row["run_at"]


def test_worker_takes_the_next_job_instead_of_waiting_for_a_retry(harness: Harness) -> None:
    harness.push({"id": "slow-retry", "processor": "echo", "params": {"fail": "transient"}})
    harness.push({"id": "next", "processor": "echo", "params": {"text": "go"}})
    started = time.monotonic()
    harness.drain(retry_base=60.0)
    assert time.monotonic() - started < 30
    assert harness.row("next")["status"] == "succeeded"
    assert harness.row("slow-retry")["status"] == "retrying"


def test_due_retry_is_promoted_and_succeeds(harness: Harness) -> None:
    harness.push(
        {"id": "t2", "processor": "echo", "params": {"fail": "transient", "fail_times": 1}}
    )
    harness.drain(retry_base=0.05)
    time.sleep(0.1)
    harness.drain()
    row = harness.row("t2")
    assert row["status"] == "succeeded" and row["attempts"] == 2


def test_exhausted_retries_go_to_failed_list(harness: Harness) -> None:
    harness.push(
        {"id": "t3", "processor": "echo", "params": {"fail": "transient"}, "max_attempts": 2}
    )
    harness.drain(retry_base=0.01)
    time.sleep(0.05)
    harness.drain()
    (entry,) = harness.failed()
    assert entry["id"] == "t3" and entry["attempts"] == 2
    assert harness.row("t3")["status"] == "failed"
    assert _scheduled(harness) == []


def test_permanent_error_is_not_retried(harness: Harness) -> None:
    harness.push({"id": "p", "processor": "echo", "params": {"fail": "permanent"}})
    harness.drain()
    assert _scheduled(harness) == []
    assert harness.failed()[0]["attempts"] == 1


def test_run_at_in_the_future_waits_in_the_scheduled_set(harness: Harness) -> None:
    due = time.time() + 3600
    harness.push({"id": "later", "processor": "echo", "run_at": due})
    harness.drain()
    ((job, score),) = _scheduled(harness)
    assert job["id"] == "later" and abs(score - due) < 1
    assert harness.row("later")["status"] == "queued"


def test_attempts_history_records_each_try(harness: Harness) -> None:
    from worker.store import JobStore

    harness.push({"id": "h", "processor": "echo", "params": {"fail": "transient", "fail_times": 2}})
    for _ in range(3):
        harness.drain(retry_base=0.01)
        time.sleep(0.05)
    store = JobStore(harness.settings.resolved_database_url)
    outcomes = [a["outcome"] for a in store.attempts("h")]
    store.close()
    assert outcomes == ["error", "error", "succeeded"]
