"""A fleet on PostgreSQL: 1, 2, 4, 8 workers against one Redis and one PostgreSQL.

    python bench/fleet.py [--jobs 20000] [--work-ms 5] [--workers 1,2,4,8] [--kill 3]
    python bench/fleet.py --redis-loss 5000     # the Redis-loss drill at full size

Each drain: N jobs of `--work-ms` of simulated work (`chaos_slow`), enqueued ledger-first
(rows committed in bulk, then pushed), drained by W workers with distinct ids (as separate
machines would be). Prints jobs/s (first start to last finish, from the database) and the
CPU each party used during the drain, as a share of one core: Redis, PostgreSQL (all its
backends), the workers (supervisors and executors). Then, with `--kill K`, 8 workers drain
N jobs and K of them are SIGKILLed at once mid-drain: every job must end succeeded, with
exactly one success attempt. `uptime`'s load is printed with every figure: the 2-core
machine is shared, compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from tests.chaos.chaos_processors import PROCESSORS  # noqa: E402
from tests.chaos.conftest import Deployment  # noqa: E402
from tests.db.conftest import launch_postgres  # noqa: E402
from tests.support import wait_for  # noqa: E402
from worker.keys import Keys  # noqa: E402
from worker.protocol import Job, utcnow  # noqa: E402
from worker.redis_server import RedisProcess  # noqa: E402
from worker.store import attempts, jobs  # noqa: E402

WORKER_SETTINGS: dict[str, Any] = {"log_level": "WARNING", "heartbeat_ttl": 3}


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def enqueue_bulk(dep: Deployment, n: int, work_s: float, tag: str) -> None:
    """Rows first (committed in batches of 1000), then the pushes: ledger-first, in bulk."""
    now = utcnow()
    specs = [
        Job(id=f"{tag}-{i:06d}", processor="chaos_slow", params={"seconds": work_s}, queued_at=now)
        for i in range(n)
    ]
    rows = [
        {
            "id": j.id, "queue": "default", "processor": j.processor, "params": j.params,
            "status": "queued", "attempts": 0, "queued_at": now, "updated_at": now,
            "payload": j.to_payload(),
        }
        for j in specs
    ]  # fmt: skip
    with dep.store.engine.begin() as conn:
        for start in range(0, n, 1000):
            conn.execute(insert(jobs), rows[start : start + 1000])
    pipe = dep.client.pipeline(transaction=False)
    for start in range(0, n, 1000):
        pipe.lpush(Keys().queue("default"), *(j.to_payload() for j in specs[start : start + 1000]))
    pipe.execute()


def done(dep: Deployment, tag: str) -> int:
    stmt = select(func.count()).where(jobs.c.status == "succeeded", jobs.c.id.like(f"{tag}-%"))
    with dep.store.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def span(dep: Deployment, tag: str) -> float:
    stmt = select(func.min(jobs.c.started_at), func.max(jobs.c.finished_at)).where(
        jobs.c.id.like(f"{tag}-%")
    )
    with dep.store.engine.connect() as conn:
        first, last = conn.execute(stmt).one()
    return (last - first).total_seconds()


def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def postgres_procs(data_dir: Path) -> list[psutil.Process]:
    """This cluster's postmaster and backends (other clusters may run on the machine)."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    return tree(pid)


def start_fleet(dep: Deployment, count: int, tag: str) -> list[Any]:
    procs = [dep.start(f"{tag}-w{i}", ready=False, **WORKER_SETTINGS) for i in range(count)]
    for w in procs:
        wait_for(lambda w=w: w.proc.poll() is not None or len(tree(w.pid)) > 1, 120)
    time.sleep(1.0)  # the executors finish starting
    return procs


def drain(
    dep: Deployment, redis_pid: int, pg_data: Path, workers: int, n: int, work_s: float
) -> dict[str, Any]:
    tag = f"d{workers}"
    fleet = start_fleet(dep, workers, tag)
    groups = {
        "redis": lambda: tree(redis_pid),
        "postgres": lambda: postgres_procs(pg_data),
        "workers": lambda: [p for w in fleet for p in tree(w.pid)],
    }
    before = {k: cpu_s(f()) for k, f in groups.items()}
    started = time.monotonic()
    enqueue_bulk(dep, n, work_s, tag)
    wait_for(lambda: done(dep, tag) == n, 1200, interval=0.5)
    wall = time.monotonic() - started
    after = {k: cpu_s(f()) for k, f in groups.items()}
    for w in fleet:
        w.kill()
    seconds = span(dep, tag)
    return {
        "workers": workers,
        "jobs": n,
        "jobs_per_s": round(n / seconds, 1),
        "cpu_share": {k: round((after[k] - before[k]) / wall, 2) for k in groups},
        "load": load(),
    }


def kill_drill(dep: Deployment, n: int, work_s: float, kill: int) -> dict[str, Any]:
    tag = "kill"
    fleet = start_fleet(dep, 8, tag)
    enqueue_bulk(dep, n, work_s, tag)
    wait_for(lambda: done(dep, tag) >= n // 3, 1200, interval=0.1)
    victims = fleet[:kill]
    for w in victims:
        os.kill(w.pid, signal.SIGKILL)
    at_kill = done(dep, tag)
    wait_for(lambda: done(dep, tag) == n, 1200, interval=0.5)
    stmt = (
        select(attempts.c.job_id, func.count())
        .where(attempts.c.outcome == "succeeded", attempts.c.job_id.like(f"{tag}-%"))
        .group_by(attempts.c.job_id)
    )
    lost_stmt = select(func.count()).where(
        attempts.c.outcome == "lost", attempts.c.job_id.like(f"{tag}-%")
    )
    with dep.store.engine.connect() as conn:
        counts = dict(conn.execute(stmt).all())
        lost = int(conn.execute(lost_stmt).scalar_one())
    for w in fleet:
        w.kill()
    return {
        "jobs": n,
        "killed": kill,
        "succeeded_at_kill": at_kill,
        "succeeded": done(dep, tag),
        "lost_attempts_recovered": lost,
        "jobs_with_one_success": sum(1 for c in counts.values() if c == 1),
        "duplicate_successes": sum(1 for c in counts.values() if c > 1),
        "load": load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--work-ms", type=float, default=5.0)
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--kill", type=int, default=3, help="workers of 8 killed mid-drain (0: skip)")
    ap.add_argument("--redis-loss", type=int, default=0, help="run the Redis-loss drill instead")
    args = ap.parse_args()
    os.environ["WORKER_PROCESSORS"] = PROCESSORS
    root = Path(tempfile.mkdtemp(prefix="stoker-fleet-"))
    pg = launch_postgres()
    server = next(pg)
    redis_server = RedisProcess(root / "redis", appendonly=not args.redis_loss).start()
    try:
        db_url = server.create_database("fleet")
        dep = Deployment(redis_server.url, root, db_url)
        dep.store.migrate()
        if args.redis_loss:
            from tests.ledger.redis_loss import run_drill

            print(run_drill(redis_server, dep, args.redis_loss).summary(), load(), flush=True)
            return
        work_s = args.work_ms / 1000
        for count in (int(w) for w in args.workers.split(",")):
            result = drain(dep, redis_server.proc.pid, server.data, count, args.jobs, work_s)
            print(json.dumps(result), flush=True)
        if args.kill:
            print(json.dumps(kill_drill(dep, args.jobs, work_s, args.kill)), flush=True)
        dep.close()
    finally:
        redis_server.stop(kill=True)
        next(pg, None)


if __name__ == "__main__":
    main()
