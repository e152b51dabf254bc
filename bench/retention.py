"""Pruning a large jobs table, and what it costs a worker draining jobs meanwhile.

    python bench/retention.py [--rows 1000000] [--backend sqlite|postgresql|both]

For each backend: inserts ROWS finished jobs (40 days old, one attempt each), drains
`--jobs` echo jobs with one worker as a baseline, then runs `python -m worker prune
--older-than 30d --batch B --pause-ratio P` (the worker's own retention thread uses
`--pause-ratio 3`) while the same worker drains the same number of jobs again. Prints
pruning rows/s and both drain rates, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.protocol import utcnow  # noqa: E402
from worker.redis_server import RedisProcess  # noqa: E402
from worker.store import JobStore, attempts, jobs, make_engine  # noqa: E402


def env_for(redis_url: str, db_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    return env | {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "WORKER_DATA_DIR": str(data_dir),
        "WORKER_DEVICE": "cpu",
        "WORKER_LOG_LEVEL": "WARNING",
        "WORKER_RETENTION_INTERVAL": "0",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }


def seed(db_url: str, rows: int) -> float:
    """Insert `rows` old succeeded jobs with one attempt each; seconds taken."""
    store = JobStore(db_url)
    store.migrate()
    store.close()
    engine = make_engine(db_url)
    old = utcnow() - timedelta(days=40)
    t0 = time.monotonic()
    chunk = 20_000
    with engine.begin() as conn:
        for start in range(0, rows, chunk):
            ids = [f"old{i}" for i in range(start, min(rows, start + chunk))]
            conn.execute(
                insert(jobs),
                [
                    {"id": i, "status": "succeeded", "finished_at": old, "updated_at": old}
                    for i in ids
                ],
            )
            conn.execute(
                insert(attempts), [{"job_id": i, "number": 1, "outcome": "succeeded"} for i in ids]
            )
    engine.dispose()
    return time.monotonic() - t0


def drain(redis_url: str, db_url: str, data_dir: Path, n: int, tag: str) -> float:
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        payload = {"id": f"{tag}{i}", "processor": "echo", "params": {"text": "x"}}
        pipe.lpush("stoker:queue:default", json.dumps(payload))
    pipe.execute()
    env = env_for(redis_url, db_url, data_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--burst"], env=env, cwd=ROOT, timeout=1800
    )
    assert proc.returncode == 0
    engine = make_engine(db_url)
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(jobs.c.started_at), func.max(jobs.c.finished_at)).where(
                jobs.c.id.like(f"{tag}%")
            )
        ).one()
    engine.dispose()
    return n / (_ts(last) - _ts(first))


def _ts(value: datetime | str) -> float:
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).timestamp()


def bench(
    backend: str, db_url: str, redis_url: str, rows: int, n: int, tmp: Path, prune_args: list[str]
) -> None:
    load = os.getloadavg()[0]
    secs = seed(db_url, rows)
    print(f"[{backend}] seeded {rows} jobs + {rows} attempts in {secs:.0f} s (load {load:.2f})")
    base = drain(redis_url, db_url, tmp, n, "base")
    print(f"[{backend}] drain without pruning: {base:.0f} jobs/s (load {os.getloadavg()[0]:.2f})")
    env = env_for(redis_url, db_url, tmp)
    t0 = time.monotonic()
    pruner = subprocess.Popen(
        [sys.executable, "-m", "worker", "prune", "--older-than", "30d", "--json", *prune_args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)  # well into the pruning
    during = drain(redis_url, db_url, tmp, n, "during")
    load = os.getloadavg()[0]
    out, _ = pruner.communicate(timeout=3600)
    wall = time.monotonic() - t0
    result = json.loads(out)
    print(
        f"[{backend}] drain while pruning: {during:.0f} jobs/s ({during / base:.0%} of baseline;"
        f" load {load:.2f})"
    )
    print(
        f"[{backend}] pruned {result['total']} jobs (+ attempts) in {result['seconds']:.0f} s:"
        f" {result['total'] / result['seconds']:.0f} jobs/s ({' '.join(prune_args)})"
        f" (wall {wall:.0f} s, load {os.getloadavg()[0]:.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pause-ratio", type=float, default=1.0)
    args = ap.parse_args()
    prune_args = ["--batch", str(args.batch), "--pause-ratio", str(args.pause_ratio)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "redis").mkdir()
        server = RedisProcess(tmp / "redis", appendonly=True).start()
        try:
            if args.backend in ("sqlite", "both"):
                db = f"sqlite:///{tmp / 'prune.db'}"
                bench("sqlite", db, server.url, args.rows, args.jobs, tmp, prune_args)
            if args.backend in ("postgresql", "both"):
                from tests.db.conftest import launch_postgres

                pg = launch_postgres()
                pg_server = next(pg)
                try:
                    url = pg_server.create_database("prune")
                    redis.Redis.from_url(server.url).flushall()
                    bench("postgresql", url, server.url, args.rows, args.jobs, tmp, prune_args)
                finally:
                    next(pg, None)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
