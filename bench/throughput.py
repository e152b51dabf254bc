"""Throughput and latency of the worker on a real Redis, with its SQLite status writes.

    python bench/throughput.py [--jobs N] [--latency-jobs M]

Jobs are pushed the way the README tells producers to push them: `LPUSH` of
`{"processor": "echo", "params": {...}}`, no id and no queued_at (the worker's fetch
names them, inside the same Lua call).

Prints:
- jobs/s draining N `echo` jobs with one worker process and with two (process isolation,
  measured from the first job's start to the last job's finish in the database), each
  drain repeated (`--repeat`, median and range: this 2-core VM's speed wanders by ~10%);
- the same for one worker with batching off (`WORKER_BATCH_SIZES=echo=1`), with payloads
  that carry an id, with prefetch off, and with `WORKER_ISOLATION=inline`, plus a
  direct micro-measure of the supervisor/executor hop;
- enqueue-to-start latency p50/p99 with an idle worker, one queue and three queues.

Workers log at WARNING (at INFO each job writes two log lines to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from worker.redis_server import RedisProcess  # noqa: E402
from worker.store import JobStore  # noqa: E402


def env_for(redis_url: str, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    env |= {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "WORKER_DATA_DIR": str(data_dir),
        "WORKER_DEVICE": "cpu",
        "WORKER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    return env | extra


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def payload(i: int, *, with_id: bool = False) -> str:
    """A README-style job: no id, no queued_at (unless `with_id`)."""
    job = {"processor": "echo", "params": {"text": f"x{i}"}}
    return json.dumps({"id": f"b{i}", **job} if with_id else job)


def finished(db_url: str) -> tuple[int, float, float]:
    """Succeeded jobs, and the first start and the last finish among them (epoch s)."""
    from sqlalchemy import func, select

    from worker.store.schema import jobs as table

    store = JobStore(db_url)
    try:
        with store.engine.connect() as conn:
            count, first, last = conn.execute(
                select(
                    func.count(), func.min(table.c.started_at), func.max(table.c.finished_at)
                ).where(table.c.status == "succeeded")
            ).one()
    finally:
        store.close()
    return count, _epoch(first), _epoch(last)


def latest_start(db_url: str) -> float:
    """When the most recently started job started (epoch s)."""
    from sqlalchemy import func, select

    from worker.store.schema import jobs as table

    store = JobStore(db_url)
    try:
        with store.engine.connect() as conn:
            return _epoch(conn.execute(select(func.max(table.c.started_at))).scalar())
    finally:
        store.close()


def _epoch(value: object) -> float:
    if isinstance(value, datetime):
        return value.replace(tzinfo=value.tzinfo or UTC).timestamp()
    return parse_time(str(value)) if value else 0.0


def drain(redis_url: str, workers: int, jobs: int, *, with_id: bool = False, **extra: str) -> float:
    """Jobs/s for `workers` burst workers draining `jobs` echo jobs."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db_url = f"sqlite:///{data_dir / 'bench.db'}"
        JobStore(db_url).migrate()
        pipe = client.pipeline(transaction=False)
        for i in range(jobs):
            pipe.lpush("stoker:queue:default", payload(i, with_id=with_id))
        pipe.execute()
        env = env_for(redis_url, db_url, data_dir, **extra)
        procs = [
            subprocess.Popen([sys.executable, "-m", "worker", "run", "--burst"], env=env, cwd=ROOT)
            for _ in range(workers)
        ]
        for p in procs:
            if p.wait(1800) != 0:
                raise SystemExit(f"worker exited {p.returncode}")
        count, first, last = finished(db_url)
    assert count == jobs, f"{count} of {jobs} jobs succeeded"
    return jobs / (last - first)


def latency(redis_url: str, queues: str, samples: int) -> tuple[float, float]:
    """Enqueue-to-start latency (ms) with an idle worker; jobs go to the last queue."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    target = queues.split(",")[-1]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db_url = f"sqlite:///{data_dir / 'bench.db'}"
        env = env_for(redis_url, db_url, data_dir, WORKER_QUEUES=queues)
        store = JobStore(db_url)
        store.migrate()
        proc = subprocess.Popen([sys.executable, "-m", "worker", "run"], env=env, cwd=ROOT)
        try:
            # Wait for the worker to come up by running one job through it.
            client.lpush(f"stoker:queue:{target}", payload(-1))
            deadline = time.time() + 120
            while finished(db_url)[0] < 1:
                if time.time() > deadline:
                    raise SystemExit("worker did not start")
                time.sleep(0.05)
            lat = []
            for i in range(samples):
                time.sleep(0.02 + (i % 7) * 0.003)  # idle, at varied phases of its wait
                pushed = time.time()
                client.lpush(f"stoker:queue:{target}", payload(i))
                # The latency is read from the job's own started_at (the latest start: one
                # job at a time); polling slowly keeps this script off the worker's cores.
                time.sleep(0.01)
                while finished(db_url)[0] < i + 2:
                    time.sleep(0.01)
                lat.append((latest_start(db_url) - pushed) * 1000)
        finally:
            proc.terminate()
            proc.wait(60)
            store.close()
    lat.sort()
    return statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]


def hop_cost(n: int) -> tuple[float, float]:
    """Per-job time (ms) of executing an echo task inline and through the executor process."""
    from worker.execution import Task
    from worker.executor import InlineExecutor, JobHandler, ProcessExecutor

    class Quiet(JobHandler):
        def progress(self, job_id: str, fraction: float, stage: str | None) -> None: ...
        def rows(self, job_id: str, kind: str, rows: list) -> None: ...
        def job_result(self, job_id: str) -> None: ...

    settings = Settings(device="cpu", log_level="WARNING")
    out = []
    for executor in (InlineExecutor(settings), ProcessExecutor(settings, "bench")):
        executor.start()
        task = Task("t", "echo", {"text": "x"}, 1)
        for _ in range(200):
            executor.execute(task, None, Quiet())
        t0 = time.perf_counter()
        for _ in range(n):
            executor.execute(task, None, Quiet())
        out.append((time.perf_counter() - t0) / n * 1000)
        executor.close()
    return out[0], out[1]


def drains(redis_url: str, workers: int, jobs: int, repeat: int, **extra: Any) -> str:
    """`repeat` drains: "median jobs/s (min-max)"."""
    rates = sorted(drain(redis_url, workers, jobs, **extra) for _ in range(repeat))
    return f"{statistics.median(rates):7.0f} jobs/s ({rates[0]:.0f}-{rates[-1]:.0f}, {repeat} runs)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-jobs", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp), appendonly=True).start()
        try:
            print(
                f"redis: {server.url} (AOF everysec); {os.cpu_count()} cores; "
                f"load {os.getloadavg()[0]:.2f}"
            )
            inline_ms, process_ms = hop_cost(5000)
            print(
                f"executor hop: inline {inline_ms:.3f} ms/job, process {process_ms:.3f} ms/job,"
                f" hop cost {process_ms - inline_ms:.3f} ms/job"
            )
            n, r = args.jobs, args.repeat
            print(f"draining {n} echo jobs pushed README-style (no id, no queued_at):")
            print(f"1 worker  (process isolation): {drains(server.url, 1, n, r)}")
            single = drains(server.url, 1, n, r, WORKER_BATCH_SIZES="echo=1")
            print(f"1 worker  (batching off):      {single}")
            named = drains(server.url, 1, n, r, with_id=True)
            print(f"1 worker  (payloads with ids): {named}")
            off = drains(server.url, 1, n, r, WORKER_PREFETCH="false")
            print(f"1 worker  (prefetch off):      {off}")
            inline = drains(server.url, 1, n, r, WORKER_ISOLATION="inline")
            print(f"1 worker  (inline):            {inline}")
            print(f"2 workers (process isolation): {drains(server.url, 2, n, r)}")
            for queues in ("default", "high,default,low"):
                p50, p99 = latency(server.url, queues, args.latency_jobs)
                print(
                    f"enqueue-to-start latency, idle worker, queues={queues}: "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms ({args.latency_jobs} jobs)"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
