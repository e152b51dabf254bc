"""Throughput and latency of the worker on a real Redis, with its SQLite status writes.

    python bench/throughput.py [--jobs N] [--latency-jobs M]

Prints:
- jobs/s draining N `echo` jobs with one worker process and with two (process isolation,
  measured from the first job's start to the last job's finish in the database), each
  drain repeated (`--repeat`, median and range: this 2-core VM's speed wanders by ~10%);
- the same for one worker with prefetch off, and with `WORKER_ISOLATION=inline`, plus a
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
from datetime import datetime
from pathlib import Path

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


def drain(redis_url: str, workers: int, jobs: int, **extra: str) -> float:
    """Jobs/s for `workers` burst workers draining `jobs` echo jobs."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        db_url = f"sqlite:///{data_dir / 'bench.db'}"
        JobStore(db_url).migrate()
        pipe = client.pipeline(transaction=False)
        for i in range(jobs):
            pipe.lpush(
                "stoker:queue:default",
                json.dumps({"id": f"b{i}", "processor": "echo", "params": {"text": "x"}}),
            )
        pipe.execute()
        env = env_for(redis_url, db_url, data_dir, **extra)
        procs = [
            subprocess.Popen([sys.executable, "-m", "worker", "run", "--burst"], env=env, cwd=ROOT)
            for _ in range(workers)
        ]
        for p in procs:
            if p.wait(1800) != 0:
                raise SystemExit(f"worker exited {p.returncode}")
        store = JobStore(db_url)
        rows = [store.get(f"b{i}") for i in range(jobs)]
        store.close()
    assert all(r and r["status"] == "succeeded" for r in rows), "not every job succeeded"
    first = min(parse_time(r["started_at"]) for r in rows if r)
    last = max(parse_time(r["finished_at"]) for r in rows if r)
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
            client.lpush(f"stoker:queue:{target}", json.dumps({"id": "warm", "processor": "echo"}))
            deadline = time.time() + 120
            while not ((row := store.get("warm")) and row["status"] == "succeeded"):
                if time.time() > deadline:
                    raise SystemExit("worker did not start")
                time.sleep(0.05)
            lat = []
            for i in range(samples):
                time.sleep(0.02 + (i % 7) * 0.003)  # idle, at varied phases of its wait
                pushed = time.time()
                client.lpush(
                    f"stoker:queue:{target}", json.dumps({"id": f"l{i}", "processor": "echo"})
                )
                # The latency is read from the job's own started_at; polling slowly keeps
                # this script from competing with the worker for the two cores.
                time.sleep(0.01)
                while not ((row := store.get(f"l{i}")) and row["status"] == "succeeded"):
                    time.sleep(0.01)
                lat.append((parse_time(row["started_at"]) - pushed) * 1000)
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


def drains(redis_url: str, workers: int, jobs: int, repeat: int, **extra: str) -> str:
    """`repeat` drains: "median jobs/s (min-max)"."""
    rates = sorted(drain(redis_url, workers, jobs, **extra) for _ in range(repeat))
    return f"{statistics.median(rates):7.0f} jobs/s ({rates[0]:.0f}-{rates[-1]:.0f}, {repeat} runs)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
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
            print(f"draining {n} echo jobs:")
            print(f"1 worker  (process isolation): {drains(server.url, 1, n, r)}")
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
