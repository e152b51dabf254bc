"""Soak: N jobs through 3 workers while a killer SIGKILLs supervisors and executors at
random; about half the jobs are of a batching processor (`chaos_batch`, up to 8 a call).
Afterwards every job is in the database exactly once as succeeded or failed, the
failed list matches the failed rows, nothing is queued, landed or in flight, and no job
started again after its success was recorded.

Two scenarios: a backlog of N jobs on one queue (workers never idle), and N/4 jobs
trickled in bursts across three queues (workers idle between bursts, waiting on every
queue at once: `worker.blockers`, killed mid-wait too).

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

    def __init__(self, dep: Deployment, rng: random.Random, queues: str) -> None:
        self.dep = dep
        self.rng = rng
        self.queues = queues
        self.generation = 0
        self.slots = [self._start(i) for i in range(WORKERS)]
        self.supervisor_kills = 0
        self.executor_kills = 0
        self.exits = 0
        self.next_at = time.monotonic() + rng.uniform(1.0, 5.0)

    def _start(self, slot: int) -> WorkerProc:
        self.generation += 1
        wid = f"soak-{slot}-{self.generation}"
        return self.dep.start(wid, ready=False, queues=self.queues, **SETTINGS)

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


def _redis_settled(client: redis.Redis, dep: Deployment, queues: list[str]) -> bool:
    keys = dep.keys
    if any(client.llen(keys.queue(q)) for q in queues) or client.zcard(keys.scheduled):
        return False
    left = (f"{keys.prefix}:inflight:*", f"{keys.prefix}:landing:*")
    return not any(client.llen(k) for pattern in left for k in client.scan_iter(pattern))


class Producer:
    """Pushes the soak's jobs: all at once (a backlog), or in bursts of 1-5 to random
    queues, one burst per `push_some` call."""

    def __init__(
        self, dep: Deployment, rng: random.Random, ids: list[str], queues: list[str]
    ) -> None:
        self.dep, self.rng, self.queues = dep, rng, queues
        self.left = list(ids)
        self.processor, self.run_left = "chaos_slow", 0

    def _job(self, job_id: str) -> str:
        if self.run_left == 0:  # runs of 1-12 jobs of one processor: chaos_batch ones batch
            self.processor = self.rng.choice(("chaos_slow", "chaos_batch"))
            self.run_left = self.rng.randint(1, 12)
        self.run_left -= 1
        seconds = self.rng.choice((0.0, 0.01, 0.05, 0.15))  # mean 52 ms: kills land mid-job
        return self.dep.job(job_id, self.processor, seconds=seconds)

    def push_all(self) -> None:
        pipe = self.dep.client.pipeline(transaction=False)
        for job_id in self.left:
            pipe.lpush(self.dep.keys.queue(self.queues[0]), self._job(job_id))
        pipe.execute()
        self.left = []

    def push_some(self) -> None:
        n = self.rng.randint(1, 5)
        burst, self.left = self.left[:n], self.left[n:]
        pipe = self.dep.client.pipeline(transaction=self.rng.random() < 0.5)
        for job_id in burst:
            pipe.lpush(self.dep.keys.queue(self.rng.choice(self.queues)), self._job(job_id))
        pipe.execute()


@pytest.mark.parametrize(
    ("queues", "jobs"),
    [("default", N), ("high,default,low", max(N // 4, 1))],
    ids=["backlog on one queue", "trickle across three queues"],
)
def test_soak_random_kills_lose_nothing_and_run_nothing_twice(
    deployment: Deployment, tmp_path: Path, queues: str, jobs: int
) -> None:
    seed = int(os.environ.get("STOKER_SOAK_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    ids = [f"soak-{i:06d}" for i in range(jobs)]
    names = queues.split(",")
    producer = Producer(deployment, rng, ids, names)
    if len(names) == 1:
        producer.push_all()

    started = time.monotonic()
    killer = Killer(deployment, rng, queues)
    deadline = started + max(900.0, jobs * 0.3)
    done = False
    while time.monotonic() < deadline:
        killer.tick()
        if producer.left:
            producer.push_some()
        try:
            counts = deployment.store.status_counts()
        except Exception:  # the first worker may still be creating the tables
            deployment.store.reset()
            counts = {}
        if counts.get("succeeded", 0) + counts.get("failed", 0) >= jobs and _redis_settled(
            deployment.client, deployment, names
        ):
            done = True
            break
        time.sleep(rng.uniform(0.05, 0.6) if producer.left else 0.2)
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
        "jobs": jobs,
        "queues": queues,
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
        "jobs_per_s": round(jobs / wall_s, 1),
        "exit_codes": exit_codes,
    }
    print("\nsoak figures:", json.dumps(figures))
    report = Path(os.environ.get("STOKER_SOAK_REPORT", tmp_path / "soak.json"))
    report.write_text(json.dumps(figures, indent=2))

    assert done, f"the soak did not settle within the deadline: {figures}"
    assert set(rows) == set(ids) and len(rows) == jobs  # each job exactly once
    assert not lost
    assert not duplicates, f"started again after success: {sorted(duplicates)[:10]}"
    assert all(successes[i] == 1 for i in succeeded), "a job has more than one success"
    assert not any(successes[i] for i in failed)
    assert len(failed_list) == len(set(failed_list)) and set(failed_list) == failed
    assert _redis_settled(deployment.client, deployment, names)
    assert deployment.running() == {}
    assert exit_codes == [0] * WORKERS
    assert killer.supervisor_kills + killer.executor_kills > 0
