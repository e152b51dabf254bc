"""A job that kills its executor costs that process only: the attempt is recorded as
crashed with the signal or exit code, the retry policy decides what happens next, and
the worker carries on with a fresh executor."""

from __future__ import annotations

import os
import signal

import pytest

from tests.chaos.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def test_executor_killed_mid_job_is_recorded_as_crashed_and_retried(
    deployment: Deployment,
) -> None:
    worker = deployment.start()
    deployment.enqueue("victim", "chaos_slow", first_seconds=600, seconds=0)
    wait_for(lambda: deployment.starts("victim"), 60)
    executor_pid = deployment.starts("victim")[0]["pid"]
    assert executor_pid in worker.executor_pids()

    os.kill(executor_pid, signal.SIGKILL)  # kill -9 of the executor, from outside

    row = deployment.wait_status("victim", "succeeded", 60)
    attempts = deployment.attempts("victim")
    assert [a["outcome"] for a in attempts] == ["crashed", "succeeded"]
    assert "SIGKILL" in attempts[0]["error"]
    assert attempts[0]["error_type"] == "ExecutorCrashed"
    assert row["attempts"] == 2
    starts = deployment.starts("victim")
    assert len(starts) == 2 and starts[1]["pid"] != executor_pid  # a fresh executor
    assert worker.proc.poll() is None
    assert deployment.inflight(worker.id) == [] and deployment.running() == {}


def test_job_killing_its_executor_is_retried_and_the_worker_carries_on(
    deployment: Deployment,
) -> None:
    worker = deployment.start()
    deployment.enqueue("self-kill", "chaos_crash", mode="sigkill", times=1)
    deployment.enqueue("after", "echo", text="still here")

    deployment.wait_status("self-kill", "succeeded", 60)
    assert deployment.outcomes("self-kill") == ["crashed", "succeeded"]
    assert "SIGKILL (9)" in deployment.attempts("self-kill")[0]["error"]
    assert deployment.wait_status("after", "succeeded", 60)["result"] == {"text": "still here"}
    assert worker.proc.poll() is None


def test_executor_exit_code_is_recorded_and_job_fails_when_retries_run_out(
    deployment: Deployment,
) -> None:
    worker = deployment.start(max_attempts=2)
    deployment.enqueue("exits", "chaos_crash", mode="exit", code=7)
    deployment.enqueue("after", "echo", text="next")

    row = deployment.wait_status("exits", "failed", 60)
    attempts = deployment.attempts("exits")
    assert [a["outcome"] for a in attempts] == ["crashed", "crashed"]
    assert all("exited with code 7" in a["error"] for a in attempts)
    assert row["attempts"] == 2 and row["error_type"] == "ExecutorCrashed"
    wait_for(lambda: [e["id"] for e in deployment.failed()] == ["exits"], 30)
    assert deployment.failed()[0]["error"]["kind"] == "crashed"
    assert len(deployment.starts("exits")) == 2
    deployment.wait_status("after", "succeeded", 60)
    assert worker.proc.poll() is None
