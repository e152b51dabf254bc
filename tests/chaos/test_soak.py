"""Soak: N jobs through 3 workers while a killer SIGKILLs supervisors and executors at
random; about half the jobs are of a batching processor (`chaos_batch`, up to 8 a call).
Afterwards every job is in the database exactly once as succeeded or failed, the
failed list matches the failed rows, nothing is queued or in flight, and no job started
again after its success was recorded.

N comes from `STOKER_SOAK_JOBS` (default 1000); `STOKER_SOAK_SEED` fixes the killer's
choices. The figures are printed (run with `-s`) and written to `soak.json` in the test's
temporary folder, or to `STOKER_SOAK_REPORT` when set.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from tests.chaos.conftest import Deployment, WorkerProc
from tests.support import wait_for
from worker.store import attempts as attempts_table
from worker.store import jobs as jobs_table

pytestmark = [pytest.mark.chaos, pytest.mark.soak, pytest.mark.slow]

N = int(os.environ.get("STOKER_SOAK_JOBS", "1000"))
WORKERS = 3
SETTINGS: dict[str, Any] = {
    "heartbeat_ttl": 2,
    "max_attempts": 5,
    "max_deliveries": 4,
    "retry_base": 0.05,
    "log_level": "WARNING",
}


def _ns(value: datetime) -> int:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


class Killer:
    """Every 1-5 s picks a random worker and SIGKILLs its supervisor or its executor.

    Like a process manager, it also restarts any worker that exited on its own.
    """

    def __init__(self, dep: Deployment, rng: random.Random) -> None:
        self.dep = dep
        self.rng = rng
        self.generation = 0
        self.slots = [self._start(i) for i in range(WORKERS)]
        self.supervisor_kills = 0
        self.executor_kills = 0
        self.exits = 0
        self.next_at = time.monotonic() + rng.uniform(1.0, 5.0)

    def _start(self, slot: int) -> WorkerProc:
        self.generation += 1
        return self.dep.start(f"soak-{slot}-{self.generation}", ready=False, **SETTINGS)

    def tick(self) -> None:
        for slot, worker in enumerate(self.slots):
            if worker.proc.poll() is not None:
                self.exits += 1
                self.slots[slot] = self._start(slot)
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.rng.uniform(1.0, 5.0)
        slot = self.rng.randrange(WORKERS)
        worker = self.slots[slot]
        if self.rng.random() < 0.4:
            worker.kill()
            self.supervisor_kills += 1
            self.slots[slot] = self._start(slot)  # a process manager restarts it
        else:
            pids = worker.executor_pids()
            if pids:
                try:
                    os.kill(pids[0], signal.SIGKILL)
                    self.executor_kills += 1
                except ProcessLookupError:
                    pass

    def stop_all(self) -> list[int | None]:
        """SIGTERM every worker once it has registered (its signal handlers are in place)."""
        client, keys = self.dep.client, self.dep.keys
        for worker in self.slots:
            wait_for(
                lambda w=worker: w.proc.poll() is not None or client.exists(keys.heartbeat(w.id)),
                120,
            )
            if worker.proc.poll() is None:
                worker.signal(signal.SIGTERM)
        return [
            w.proc.wait(120) if w.proc.poll() is None else w.proc.returncode for w in self.slots
        ]


def _redis_settled(client: redis.Redis, dep: Deployment) -> bool:
    keys = dep.keys
    if client.llen(keys.queue("default")) or client.zcard(keys.scheduled):
        return False
    return not any(client.llen(k) for k in client.scan_iter(f"{keys.prefix}:inflight:*"))


def test_soak_random_kills_lose_nothing_and_run_nothing_twice(
    deployment: Deployment, tmp_path: Path
) -> None:
    seed = int(os.environ.get("STOKER_SOAK_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    ids = [f"soak-{i:06d}" for i in range(N)]
    pipe = deployment.client.pipeline(transaction=False)
    processor, run_left = "chaos_slow", 0
    for job_id in ids:
        if run_left == 0:  # runs of 1-12 jobs of one processor: chaos_batch ones batch
            processor = rng.choice(("chaos_slow", "chaos_batch"))
            run_left = rng.randint(1, 12)
        run_left -= 1
        seconds = rng.choice((0.0, 0.01, 0.05, 0.15))  # mean 52 ms: kills land mid-job
        pipe.lpush(
            deployment.keys.queue("default"), deployment.job(job_id, processor, seconds=seconds)
        )
    pipe.execute()

    started = time.monotonic()
    killer = Killer(deployment, rng)
    deadline = started + max(900.0, N * 0.3)
    done = False
    while time.monotonic() < deadline:
        killer.tick()
        try:
            counts = deployment.store.status_counts()
        except Exception:  # the first worker may still be creating the tables
            deployment.store.reset()
            counts = {}
        if counts.get("succeeded", 0) + counts.get("failed", 0) >= N and _redis_settled(
            deployment.client, deployment
        ):
            done = True
            break
        time.sleep(0.2)
    wall_s = time.monotonic() - started
    exit_codes = killer.stop_all()

    # Everything below reads the final state, not the workers' own counters.
    engine = deployment.store.engine
    with engine.connect() as conn:
        rows = dict(conn.execute(select(jobs_table.c.id, jobs_table.c.status)).all())
        attempt_rows = conn.execute(
            select(
                attempts_table.c.job_id,
                attempts_table.c.outcome,
                attempts_table.c.finished_at,
                attempts_table.c.error_type,
            )
        ).all()
    failed_list = [e["id"] for e in deployment.failed()]
    succeeded = {i for i, s in rows.items() if s == "succeeded"}
    failed = {i for i, s in rows.items() if s == "failed"}

    success_end: dict[str, int] = {}
    successes = Counter()
    outcomes = Counter()
    for job_id, outcome, finished_at, _ in attempt_rows:
        outcomes[outcome] += 1
        if outcome == "succeeded":
            successes[job_id] += 1
            success_end[job_id] = _ns(finished_at)
    starts = Counter()
    duplicates = set()
    for name in os.listdir(deployment.markers):
        job_id, _, _, ns, event = name.rsplit(".", 4)
        if event != "start":
            continue
        starts[job_id] += 1
        if job_id in success_end and int(ns) > success_end[job_id]:
            duplicates.add(job_id)
    lost = set(ids) - succeeded - failed
    poison = sum(1 for e in deployment.failed() if e["error"].get("type") == "PoisonPill")

    figures = {
        "jobs": N,
        "workers": WORKERS,
        "seed": seed,
        "supervisor_kills": killer.supervisor_kills,
        "executor_kills": killer.executor_kills,
        "unplanned_worker_exits": killer.exits,
        "recoveries": outcomes["lost"],
        "crashed_attempts": outcomes["crashed"],
        "poison_pills": poison,
        "succeeded": len(succeeded),
        "failed": len(failed),
        "runs": sum(starts.values()),
        "jobs_run_more_than_once": sum(1 for c in starts.values() if c > 1),
        "duplicates": len(duplicates),
        "lost": len(lost),
        "wall_s": round(wall_s, 1),
        "jobs_per_s": round(N / wall_s, 1),
        "exit_codes": exit_codes,
    }
    print("\nsoak figures:", json.dumps(figures))
    report = Path(os.environ.get("STOKER_SOAK_REPORT", tmp_path / "soak.json"))
    report.write_text(json.dumps(figures, indent=2))

    assert done, f"the soak did not settle within the deadline: {figures}"
    assert set(rows) == set(ids) and len(rows) == N  # each job exactly once
    assert not lost
    assert not duplicates, f"started again after success: {sorted(duplicates)[:10]}"
    assert all(successes[i] == 1 for i in succeeded), "a job has more than one success"
    assert not any(successes[i] for i in failed)
    assert len(failed_list) == len(set(failed_list)) and set(failed_list) == failed
    assert _redis_settled(deployment.client, deployment)
    assert deployment.running() == {}
    assert exit_codes == [0] * WORKERS
    assert killer.supervisor_kills + killer.executor_kills > 0
