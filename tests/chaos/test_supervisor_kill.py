"""A whole worker dies (kill -9 of the supervisor): its in-flight job goes back to its
queue once the heartbeat has expired, recovered by a live worker, and runs to the end."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.chaos.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def test_supervisor_killed_mid_job_its_job_is_recovered_by_another_worker(
    deployment: Deployment,
) -> None:
    doomed = deployment.start("doomed")
    deployment.enqueue("orphan", "chaos_slow", first_seconds=600, seconds=0.2)
    wait_for(lambda: deployment.starts("orphan"), 60)
    executor_pid = deployment.starts("orphan")[0]["pid"]
    rescuer = deployment.start("rescuer")
    assert deployment.inflight("doomed")  # held by the doomed worker, not queued

    doomed.kill()  # kill -9 of the supervisor mid-job

    # Its executor notices the supervisor is gone and exits: nobody could record its work.
    wait_for(lambda: not psutil.pid_exists(executor_pid), 30)
    row = deployment.wait_status("orphan", "succeeded", 60)
    attempts = deployment.attempts("orphan")
    assert [(a["outcome"], a["worker_id"]) for a in attempts] == [
        ("lost", "doomed"),
        ("succeeded", "rescuer"),
    ]
    assert row["worker_id"] == "rescuer"
    assert len(deployment.starts("orphan")) == 2
    assert rescuer.has_event("recovered jobs of a dead worker")
    wait_for(lambda: deployment.running() == {}, 10)
    assert deployment.inflight("doomed") == [] and deployment.inflight("rescuer") == []
    assert b"doomed" not in deployment.client.smembers(deployment.keys.workers)
    assert rescuer.proc.poll() is None


def test_dead_workers_job_waits_for_its_heartbeat_to_expire(deployment: Deployment) -> None:
    """Recovery never takes a job from a worker whose heartbeat is still alive."""
    doomed = deployment.start("doomed", heartbeat_ttl=5)
    deployment.enqueue("orphan", "chaos_slow", first_seconds=600, seconds=0)
    wait_for(lambda: deployment.starts("orphan"), 60)
    rescuer = deployment.start("rescuer")  # running recovery every second from now on
    assert deployment.inflight("doomed")
    doomed.kill()

    samples_while_alive = 0
    heartbeat = deployment.keys.heartbeat("doomed")
    while True:
        pipe = deployment.client.pipeline(transaction=True)
        pipe.lrange(deployment.keys.inflight("doomed", "default"), 0, -1)
        pipe.exists(heartbeat)
        inflight, alive = pipe.execute()
        if not alive:
            break
        assert inflight, "a job was taken from a worker whose heartbeat is alive"
        samples_while_alive += 1
        time.sleep(0.1)
    assert samples_while_alive > 0

    deployment.wait_status("orphan", "succeeded", 60)
    assert deployment.outcomes("orphan") == ["lost", "succeeded"]
    assert rescuer.proc.poll() is None
