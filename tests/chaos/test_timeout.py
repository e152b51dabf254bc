"""A job past its timeout is stopped by killing its executor, recorded as a timed-out
attempt and retried or failed by the retry policy; the next run gets a fresh executor.
Heartbeats come from the supervisor, so a job blocked in native code never looks dead."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def test_hanging_job_past_timeout_is_killed_and_retried_on_a_fresh_executor(
    deployment: Deployment,
) -> None:
    worker = deployment.start()
    deployment.enqueue("hangs", "chaos_hang", times=1, extra={"timeout": 2})

    row = deployment.wait_status("hangs", "succeeded", 90)
    attempts = deployment.attempts("hangs")
    assert [a["outcome"] for a in attempts] == ["timeout", "succeeded"]
    assert attempts[0]["error_type"] == "Timeout" and "timeout of 2 s" in attempts[0]["error"]
    assert row["attempts"] == 2
    first, second = deployment.starts("hangs")
    assert first["pid"] != second["pid"]  # the hung executor was killed, a fresh one ran
    assert first["pid"] not in worker.executor_pids()
    assert worker.proc.poll() is None


def test_job_timing_out_on_every_attempt_fails_by_the_retry_policy(
    deployment: Deployment,
) -> None:
    worker = deployment.start(max_attempts=2, job_timeout=1.5)
    deployment.enqueue("always-hangs", "chaos_hang")
    deployment.enqueue("after", "echo", text="ok")

    row = deployment.wait_status("always-hangs", "failed", 90)
    assert deployment.outcomes("always-hangs") == ["timeout", "timeout"]
    assert row["attempts"] == 2 and row["error_type"] == "Timeout"
    wait_for(lambda: [e["id"] for e in deployment.failed()] == ["always-hangs"], 30)
    assert deployment.failed()[0]["error"]["kind"] == "timeout"
    pids = {s["pid"] for s in deployment.starts("always-hangs")}
    assert len(pids) == 2
    deployment.wait_status("after", "succeeded", 60)
    assert worker.proc.poll() is None


def test_long_native_block_does_not_expire_heartbeat(deployment: Deployment) -> None:
    """A job holding the GIL in native code for 4x the heartbeat TTL: nobody recovers it."""
    worker = deployment.start("blocked", heartbeat_ttl=1.5)
    # The watcher serves another queue (it never takes the job) but recovers any dead worker.
    watcher = deployment.start("watcher", heartbeat_ttl=1.5, queues="other")
    deployment.enqueue("native", "chaos_hang", seconds=6, hold_gil=True)
    wait_for(lambda: deployment.starts("native"), 60)
    assert deployment.inflight("blocked")

    heartbeat = deployment.keys.heartbeat("blocked")
    samples = 0
    while not deployment.starts("native", "done"):
        assert deployment.client.exists(heartbeat), "heartbeat expired during a long job"
        samples += 1
        time.sleep(0.1)
    assert samples >= 10

    row = deployment.wait_status("native", "succeeded", 60)
    assert row["worker_id"] == "blocked"
    assert deployment.outcomes("native") == ["succeeded"]  # no lost attempt
    assert len(deployment.starts("native")) == 1
    assert not watcher.has_event("recovered jobs of a dead worker")
    assert worker.proc.poll() is None
