"""A job that takes its whole worker down on every delivery is a poison pill: after
`WORKER_MAX_DELIVERIES` deliveries it goes to the failed list instead of looping."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import Deployment, WorkerProc
from tests.support import wait_for

pytestmark = pytest.mark.chaos


def test_poison_pill_goes_to_failed_after_max_deliveries(deployment: Deployment) -> None:
    deployment.enqueue("pill", "chaos_crash", mode="kill_supervisor")
    workers: list[WorkerProc] = []

    def pill_failed() -> bool:
        if any(e["id"] == "pill" for e in deployment.failed()):
            return True
        if not workers or workers[-1].proc.poll() is not None:
            # The pill took the last worker down: start another, as a supervisor would.
            assert len(workers) < 4, "the poison pill was delivered more than max_deliveries"
            # Not waiting for readiness: it may take the pill and die before that.
            workers.append(deployment.start(ready=False, max_deliveries=2))
        return False

    wait_for(pill_failed, 120, interval=0.2)

    assert len(deployment.starts("pill")) == 2  # two deliveries, each killed its worker
    assert [w.proc.returncode for w in workers[:2]] == [-9, -9]
    survivor = workers[-1]
    assert survivor.proc.poll() is None
    entry = next(e for e in deployment.failed() if e["id"] == "pill")
    assert entry["error"]["type"] == "PoisonPill" and entry["deliveries"] == 2
    row = deployment.wait_status("pill", "failed", 30)
    assert row["error_type"] == "PoisonPill"
    assert deployment.outcomes("pill") == ["lost", "lost"]
    assert deployment.queued() == [] and deployment.running() == {}

    deployment.enqueue("after", "echo", text="fine")
    deployment.wait_status("after", "succeeded", 60)
    assert len(deployment.starts("pill")) == 2  # never delivered again
