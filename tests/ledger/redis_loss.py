"""The Redis-loss drill, shared by the test and the bench: jobs enqueued through the client
API, workers draining, the redis-server (persistence off) killed -9 and replaced by an
empty one on the same port; then every job must still end `succeeded`, once."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from config import Settings
from processors.registry import load_configured
from tests.chaos.chaos_processors import PROCESSORS
from tests.chaos.conftest import Deployment
from tests.support import wait_for
from worker.client import Client
from worker.redis_server import RedisProcess
from worker.store import attempts, jobs

#: Settings of the drill's workers: a pass soon after the loss, and one every 5 s.
WORKER_SETTINGS: dict[str, Any] = {"reconcile_grace": 1, "reconcile_interval": 5}


@dataclass
class DrillResult:
    jobs: int
    succeeded: int
    success_attempts: Counter[str]
    """Job id -> succeeded attempts recorded."""
    ran_twice: list[str]
    """Jobs with more than one start (a run cut off by the loss, then run again)."""
    rerun_after_success: list[str]
    """Jobs whose success was recorded before the loss and that started again after it."""
    restored: int
    """Jobs the reconcile passes put back (from the workers' logs)."""
    enqueue_s: float
    drain_s: float
    killed_at_done: int

    def summary(self) -> str:
        extra = sorted(j for j, n in self.success_attempts.items() if n != 1)
        return (
            f"{self.jobs} jobs: {self.succeeded} succeeded; Redis killed after"
            f" {self.killed_at_done} succeeded; {self.restored} restored by reconcile;"
            f" ran twice: {len(self.ran_twice)}; jobs without exactly one success attempt:"
            f" {len(extra)}; re-run after a recorded success: {len(self.rerun_after_success)};"
            f" enqueue {self.enqueue_s:.1f} s, drain {self.drain_s:.1f} s"
        )


def starts_by_job(markers: Path) -> dict[str, list[int]]:
    """Job id -> start times (ns) from the marker files (one listing of the folder)."""
    out: dict[str, list[int]] = {}
    for name in os.listdir(markers):
        job_id, _, _, ns, event = name.rsplit(".", 4)
        if event == "start":
            out.setdefault(job_id, []).append(int(ns))
    return out


def enqueue_all(dep: Deployment, n: int) -> float:
    load_configured(PROCESSORS.split(","))
    settings = Settings(
        redis_url=dep.redis_url, database_url=dep.db_url, data_dir=dep.data_dir,
        processors=PROCESSORS.split(","),
    )  # fmt: skip
    started = time.monotonic()
    with Client(settings) as client:
        for i in range(n):
            params = {"seconds": 0.005, "marker_dir": str(dep.markers)}
            client.enqueue("chaos_slow", params, id=f"job-{i:05d}")
    return time.monotonic() - started


def succeeded(dep: Deployment) -> int:
    return dep.store.status_counts().get("succeeded", 0)


def success_attempts(dep: Deployment) -> Counter[str]:
    stmt = (
        select(attempts.c.job_id, func.count())
        .where(attempts.c.outcome == "succeeded")
        .group_by(attempts.c.job_id)
    )
    with dep.store.engine.connect() as conn:
        return Counter({job_id: n for job_id, n in conn.execute(stmt)})


def run_drill(
    server: RedisProcess, dep: Deployment, n: int, workers: int = 3, timeout: float = 600
) -> DrillResult:
    enqueue_s = enqueue_all(dep, n)
    procs = [dep.start(ready=False, **WORKER_SETTINGS) for _ in range(workers)]
    for w in procs:
        wait_for(lambda w=w: w.has_event("stoker worker started") or w.proc.poll() is not None, 90)
    started = time.monotonic()
    wait_for(lambda: succeeded(dep) >= n // 3, timeout, interval=0.02)

    server.stop(kill=True)  # kill -9; persistence off: every queue and in-flight list is gone
    killed_ns = time.time_ns()
    done_before = {
        row[0]
        for row in dep.store.conn.execute(select(jobs.c.id).where(jobs.c.status == "succeeded"))
    }
    dep.store.conn.commit()
    server.start()  # an empty Redis on the same port

    wait_for(lambda: succeeded(dep) == n, timeout, interval=0.2)
    drain_s = time.monotonic() - started
    for w in procs:
        assert w.proc.poll() is None, f"worker {w.id} exited:\n{w.log()[-3000:]}"
    starts = starts_by_job(dep.markers)
    restored = sum(
        e.get("to_queue", 0) + e.get("to_scheduled", 0)
        for w in procs
        for e in w.events()
        if e.get("event") == "reconcile restored jobs Redis had lost"
    )
    return DrillResult(
        jobs=n,
        succeeded=succeeded(dep),
        success_attempts=success_attempts(dep),
        ran_twice=sorted(j for j, s in starts.items() if len(s) > 1),
        rerun_after_success=sorted(
            j for j in done_before if any(ns > killed_ns for ns in starts.get(j, []))
        ),
        restored=restored,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        killed_at_done=len(done_before),
    )
