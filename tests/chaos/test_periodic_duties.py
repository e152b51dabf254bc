"""The supervisor's periodic duties run on time whatever a job sends: a job that floods
progress and rows is still cancelled, stopped at shutdown, and does not keep a dead
worker's jobs from being recovered; a prefetched job is still released and the heartbeat
still beats."""

from __future__ import annotations

import signal
import time

import pytest

from tests.chaos.conftest import Deployment
from tests.support import wait_for
from worker.admin import Admin

pytestmark = pytest.mark.chaos

#: Bounds: a cancel check every 0.5 s, then up to 5 s for a non-cooperative job to stop
#: before its executor is killed; plus generous slack for a loaded 2-core machine. The
#: flooding jobs run 60 s: a duty that waited for a quiet moment would miss every bound.
CANCEL_BOUND_S = 15.0


def _admin(deployment: Deployment) -> Admin:
    from config import Settings

    settings = Settings(redis_url=deployment.redis_url, database_url=deployment.db_url)
    return Admin(settings, deployment.client, deployment.store)


def test_a_flooding_job_is_cancelled_within_its_bound(deployment: Deployment) -> None:
    deployment.start()
    deployment.enqueue("flood", "chaos_flood", seconds=60)
    wait_for(lambda: deployment.starts("flood"), 60)

    asked = time.monotonic()
    result = _admin(deployment).cancel("flood")
    assert result.state == "stopping"
    deployment.wait_status("flood", "cancelled", CANCEL_BOUND_S)

    assert time.monotonic() - asked < CANCEL_BOUND_S
    assert deployment.starts("flood", "finish") == []
    assert deployment.client.smembers(deployment.keys.cancel) == set()


def test_a_cooperative_flooding_job_stops_at_its_next_safe_point(deployment: Deployment) -> None:
    worker = deployment.start()
    deployment.enqueue("coop", "chaos_flood", seconds=60, cooperative=True)
    wait_for(lambda: deployment.starts("coop"), 60)
    pids = worker.executor_pids()

    _admin(deployment).cancel("coop")
    deployment.wait_status("coop", "cancelled", 8.0)

    # Stopped cooperatively: the executor (and its loaded models) survived.
    assert worker.executor_pids() == pids


def test_sigterm_past_the_grace_stops_a_flooding_job(deployment: Deployment) -> None:
    worker = deployment.start(shutdown_grace=1)
    deployment.enqueue("flood", "chaos_flood", seconds=60)
    wait_for(lambda: deployment.starts("flood"), 60)

    asked = time.monotonic()
    worker.signal(signal.SIGTERM)

    assert worker.wait(30) == 0
    assert time.monotonic() - asked < 20
    assert deployment.status("flood") == "queued"
    assert [j["id"] for j in deployment.queued()] == ["flood"]


def test_a_second_sigterm_stops_a_flooding_job_at_once(deployment: Deployment) -> None:
    worker = deployment.start(shutdown_grace=60)
    deployment.enqueue("flood", "chaos_flood", seconds=60)
    wait_for(lambda: deployment.starts("flood"), 60)

    worker.signal(signal.SIGTERM)
    time.sleep(0.5)
    asked = time.monotonic()
    worker.signal(signal.SIGTERM)

    assert worker.wait(30) == 0
    assert time.monotonic() - asked < 10


def test_a_dead_workers_jobs_are_recovered_while_the_live_one_runs_a_flooding_job(
    deployment: Deployment,
) -> None:
    victim = deployment.start("victim")
    deployment.enqueue("orphan", "chaos_slow", seconds=60)
    wait_for(lambda: deployment.starts("orphan"), 60)
    survivor = deployment.start("survivor")
    deployment.enqueue("flood", "chaos_flood", seconds=60)
    wait_for(lambda: deployment.starts("flood"), 60)

    victim.kill()

    # Heartbeat TTL 2 s, confirmed after half a TTL: recovered within a few seconds although
    # the survivor's only job floods its supervisor.
    wait_for(lambda: deployment.inflight("victim") == [] and deployment.queued(), 15)
    assert [j["id"] for j in deployment.queued()] == ["orphan"]
    assert survivor.proc.poll() is None


def test_the_heartbeat_beats_while_a_flooding_job_runs(deployment: Deployment) -> None:
    worker = deployment.start(heartbeat_ttl=2)
    deployment.enqueue("flood", "chaos_flood", seconds=6)
    wait_for(lambda: deployment.starts("flood"), 60)

    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert deployment.client.exists(deployment.keys.heartbeat(worker.id))
        time.sleep(0.2)


def test_a_prefetched_job_is_released_while_a_flooding_job_runs(
    deployment: Deployment,
) -> None:
    deployment.enqueue("flood", "chaos_flood", seconds=20)
    deployment.enqueue("next", "echo", text="x")
    deployment.start("busy", prefetch_hold=0.05)  # takes "flood", prefetches "next"
    wait_for(lambda: deployment.starts("flood"), 60)

    # The busy worker may prefetch "next", but must hand it back within its hold.
    idle = deployment.start("idle")
    deployment.wait_status("next", "succeeded", 15)
    assert deployment.row("next")["worker_id"] == idle.id
