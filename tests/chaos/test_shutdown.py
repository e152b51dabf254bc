"""SIGTERM/SIGINT: stop fetching, let the running job finish within the grace, else stop
it and put it back at the front of its queue with no attempt charged; exit 0 with the
final statistics. A second signal skips the wait."""

from __future__ import annotations

import signal

import pytest

from tests.chaos.conftest import Deployment, WorkerProc
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def _final_stats(worker: WorkerProc) -> dict:
    return next(e for e in worker.events() if e.get("event") == "stoker worker stopped")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_lets_running_job_finish_within_grace(
    deployment: Deployment, signum: signal.Signals
) -> None:
    worker = deployment.start(shutdown_grace=60)
    deployment.enqueue("running", "chaos_slow", seconds=2)
    wait_for(lambda: deployment.starts("running"), 60)
    deployment.enqueue("waiting", "echo", text="not yet")

    worker.signal(signum)

    assert worker.wait(60) == 0
    row = deployment.row("running")
    assert row is not None and row["status"] == "succeeded"
    assert deployment.outcomes("running") == ["succeeded"]
    assert len(deployment.starts("running", "done")) == 1
    # It stopped fetching: the job queued behind is still waiting, untouched.
    assert [j["id"] for j in deployment.queued()] == ["waiting"]
    assert deployment.row("waiting") is None
    assert deployment.inflight(worker.id) == [] and deployment.running() == {}
    stats = _final_stats(worker)
    assert stats["processed"] == 1 and stats["succeeded"] == 1 and stats["requeued"] == 0


def test_sigterm_past_grace_requeues_job_at_front_without_charging_an_attempt(
    deployment: Deployment,
) -> None:
    worker = deployment.start(shutdown_grace=1)
    deployment.enqueue("stubborn", "chaos_hang", seconds=600)
    wait_for(lambda: deployment.starts("stubborn"), 60)
    deployment.enqueue("behind", "echo", text="after")

    worker.signal(signal.SIGTERM)

    assert worker.wait(60) == 0
    queued = deployment.queued()
    assert [j["id"] for j in queued] == ["stubborn", "behind"]  # at the front
    assert queued[0].get("attempts", 0) == 0
    row = deployment.row("stubborn")
    assert row is not None and row["status"] == "queued" and row["attempts"] == 0
    assert deployment.outcomes("stubborn") == ["interrupted"]
    assert deployment.inflight(worker.id) == [] and deployment.running() == {}
    assert deployment.starts("stubborn", "done") == []  # stopped, not finished
    assert _final_stats(worker)["requeued"] == 1

    # The next worker runs it as attempt 1 (nothing was charged).
    deployment.client.lset(
        deployment.keys.queue("default"),
        -1,
        deployment.job("stubborn", "chaos_slow", seconds=0),
    )
    deployment.start()
    row = deployment.wait_status("stubborn", "succeeded", 60)
    assert row["attempts"] == 1
    assert deployment.starts("stubborn")[-1]["attempt"] == 1


def test_second_signal_skips_the_grace(deployment: Deployment) -> None:
    worker = deployment.start(shutdown_grace=3600)
    deployment.enqueue("stubborn", "chaos_hang", seconds=600)
    wait_for(lambda: deployment.starts("stubborn"), 60)

    worker.signal(signal.SIGTERM)
    wait_for(lambda: worker.has_event("shutdown requested"), 30)
    assert worker.proc.poll() is None  # waiting for the job, within its hour of grace
    worker.signal(signal.SIGTERM)

    assert worker.wait(60) == 0  # far sooner than the grace
    assert [j["id"] for j in deployment.queued()] == ["stubborn"]
    row = deployment.row("stubborn")
    assert row is not None and row["status"] == "queued" and row["attempts"] == 0
    assert deployment.outcomes("stubborn") == ["interrupted"]
    forced = [e for e in worker.events() if e.get("event") == "shutdown requested"]
    assert [e["force"] for e in forced] == [False, True]
