"""Batches against a real redis-server: every member keeps its own outcome, and one bad
member never sinks its batchmates (`worker.batches`)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.chaos.conftest import QUEUE, Deployment
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def enqueue_batch(deployment: Deployment, modes: dict[str, str], **params: Any) -> None:
    """Push one chaos_batch job per id, oldest first, before any worker runs."""
    extra = params.pop("extra", {})
    for job_id, mode in modes.items():
        payload = json.loads(deployment.job(job_id, "chaos_batch", mode=mode, **params))
        deployment.client.lpush(deployment.keys.queue(QUEUE), json.dumps(payload | extra))


def done_markers(deployment: Deployment, job_id: str) -> int:
    return len(deployment.starts(job_id, "done"))


def test_a_batch_runs_in_one_call_and_every_member_gets_its_own_row_and_result(
    deployment: Deployment,
) -> None:
    ids = [f"m{i}" for i in range(6)]
    enqueue_batch(deployment, dict.fromkeys(ids, "ok"))
    deployment.start()

    rows = [deployment.wait_status(job_id, "succeeded", 60) for job_id in ids]

    assert {row["result"]["batch"] for row in rows} == {6}
    assert len({row["result"]["pid"] for row in rows}) == 1
    assert all(deployment.outcomes(job_id) == ["succeeded"] for job_id in ids)


def test_a_member_that_segfaults_the_executor_is_isolated_and_charged_alone(
    deployment: Deployment,
) -> None:
    modes = {f"ok{i}": "ok" for i in range(7)} | {"segv": "segv"}
    enqueue_batch(deployment, modes)
    worker = deployment.start(max_attempts=1)

    failed = deployment.wait_status("segv", "failed", 120)

    assert deployment.outcomes("segv") == ["crashed"]
    assert "SIGSEGV" in failed["error"]
    for job_id in modes.keys() - {"segv"}:
        assert deployment.wait_status(job_id, "succeeded", 60)["attempts"] == 1
        assert deployment.outcomes(job_id) == ["succeeded"]
    assert worker.proc.poll() is None


def test_a_member_that_hangs_past_its_timeout_is_isolated_and_charged_alone(
    deployment: Deployment,
) -> None:
    modes = {"ok0": "ok", "hang": "hang", "ok1": "ok", "ok2": "ok"}
    enqueue_batch(deployment, modes, extra={"timeout": 2})
    deployment.start(max_attempts=1)

    failed = deployment.wait_status("hang", "failed", 120)

    assert deployment.outcomes("hang") == ["timeout"]
    assert "timeout" in failed["error"]
    for job_id in ("ok0", "ok1", "ok2"):
        assert deployment.wait_status(job_id, "succeeded", 60)["attempts"] == 1


def test_a_member_with_invalid_params_fails_alone_while_its_batchmates_share_the_call(
    deployment: Deployment,
) -> None:
    enqueue_batch(deployment, {"a": "ok", "bad": "no-such-mode", "b": "ok"})
    deployment.start()

    failed = deployment.wait_status("bad", "failed", 60)

    assert "invalid params" in failed["error"]
    assert deployment.wait_status("a", "succeeded", 60)["result"]["batch"] == 2
    assert deployment.wait_status("b", "succeeded", 60)["result"]["batch"] == 2


def test_an_item_returned_as_an_exception_fails_only_that_job(deployment: Deployment) -> None:
    enqueue_batch(deployment, {"a": "ok", "own": "fail", "b": "ok"})
    deployment.start()

    failed = deployment.wait_status("own", "failed", 60)

    assert "failed on its own" in failed["error"]
    assert deployment.outcomes("own") == ["error"]  # permanent: not retried
    assert deployment.wait_status("a", "succeeded", 60)["result"]["batch"] == 3


def test_a_whole_call_that_raises_is_split_before_any_attempt_is_charged(
    deployment: Deployment,
) -> None:
    modes = {"a": "ok", "b": "ok", "culprit": "raise", "c": "ok"}
    enqueue_batch(deployment, modes)
    deployment.start(max_attempts=2)

    deployment.wait_status("culprit", "failed", 60)

    assert deployment.outcomes("culprit") == ["error", "error"]
    for job_id in ("a", "b", "c"):
        row = deployment.wait_status(job_id, "succeeded", 60)
        assert row["attempts"] == 1 and row["result"]["batch"] < 4


def test_a_worker_killed_mid_batch_loses_no_member_and_reruns_none_after_success(
    deployment: Deployment,
) -> None:
    ids = [f"k{i}" for i in range(5)]
    enqueue_batch(deployment, dict.fromkeys(ids, "ok"), first_seconds=600, seconds=0)
    first = deployment.start()
    wait_for(lambda: all(deployment.starts(job_id) for job_id in ids), 60)

    first.kill()  # SIGKILL of the supervisor; its executor dies with it
    second = deployment.start()

    for job_id in ids:
        deployment.wait_status(job_id, "succeeded", 120)
    wait_for(lambda: deployment.inflight(second.id) == [] and deployment.running() == {}, 30)
    assert all(done_markers(deployment, job_id) == 1 for job_id in ids)
    assert deployment.queued() == [] and deployment.failed() == []


def test_the_next_job_is_prepared_on_a_thread_while_the_current_one_runs(
    deployment: Deployment,
) -> None:
    for job_id in ("first", "second"):
        deployment.enqueue(job_id, "chaos_prepare", seconds=1.5)
    deployment.start()

    second = deployment.wait_status("second", "succeeded", 60)

    prepared = deployment.starts("second", "prepare")
    first_done = deployment.starts("first", "done")
    assert len(prepared) == 1 and prepared[0]["time_ns"] < first_done[0]["time_ns"]
    assert second["result"]["prepared_on"].startswith("stoker-prepare")
    assert deployment.wait_status("first", "succeeded", 5)["result"]["prepared_on"] == "MainThread"


def test_a_batch_waits_for_more_jobs_only_when_told_to(deployment: Deployment) -> None:
    enqueue_batch(deployment, {"w0": "ok"})
    deployment.start(batch_wait_ms=3000)
    time.sleep(0.5)  # w0 is taken alone and its batch waits
    enqueue_batch(deployment, {"w1": "ok", "w2": "ok"})

    rows = [deployment.wait_status(job_id, "succeeded", 60) for job_id in ("w0", "w1", "w2")]

    assert [row["result"]["batch"] for row in rows] == [3, 3, 3]
