"""What a reconcile pass costs when nothing is missing, beside 1,000,000 finished rows.

    python bench/reconcile_cost.py [--finished 1000000] [--unfinished 0,1000,10000]

For SQLite and PostgreSQL: fills the jobs table with `--finished` succeeded rows (server
side, one statement), then for each count of unfinished rows (queued, and present in
Redis) times the unfinished-rows query and a whole pass (query + Redis snapshot + plan),
median of 5, and prints the query plan (it must use the index that starts with `status`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from config import Settings  # noqa: E402
from tests.db.conftest import launch_postgres  # noqa: E402
from worker.keys import Keys  # noqa: E402
from worker.ledger import Ledger  # noqa: E402
from worker.protocol import utcnow  # noqa: E402
from worker.reconciler import Reconciler  # noqa: E402
from worker.redis_server import RedisProcess  # noqa: E402
from worker.store import JobStore, jobs  # noqa: E402

PAYLOAD = '{"id":"x","processor":"echo","params":{"text":"a finished job of typical size"}}'
FILL = {
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) "
        "INSERT INTO jobs (id, queue, processor, status, attempts, queued_at, finished_at, "
        "updated_at, payload) SELECT 'f-' || x, 'default', 'echo', 'succeeded', 1, "
        "datetime('now'), datetime('now'), datetime('now'), :payload FROM c"
    ),
    "postgresql": (
        "INSERT INTO jobs (id, queue, processor, status, attempts, queued_at, finished_at, "
        "updated_at, payload) SELECT 'f-' || x, 'default', 'echo', 'succeeded', 1, now(), "
        "now(), now(), :payload FROM generate_series(1, :n) AS x"
    ),
}
PLAN = {
    "sqlite": "EXPLAIN QUERY PLAN ",
    "postgresql": "EXPLAIN ",
}


def median_ms(fn: object, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def add_unfinished(store: JobStore, client: redis.Redis, start: int, count: int) -> None:
    now = utcnow()
    rows = [
        {"id": f"u-{i}", "queue": "default", "processor": "echo", "status": "queued",
         "attempts": 0, "queued_at": now, "updated_at": now,
         "payload": PAYLOAD.replace('"x"', f'"u-{i}"')}
        for i in range(start, start + count)
    ]  # fmt: skip
    if rows:
        with store.engine.begin() as conn:
            conn.execute(insert(jobs), rows)
        client.lpush(Keys().queue("default"), *(r["payload"] for r in rows))


def measure(name: str, url: str, redis_url: str, finished: int, counts: list[int]) -> None:
    store = JobStore(url)
    store.migrate()
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    t = time.perf_counter()
    with store.engine.begin() as conn:
        conn.execute(text(FILL[name]), {"n": finished, "payload": PAYLOAD})
        if name == "postgresql":
            conn.execute(text("ANALYZE jobs"))
    print(f"{name}: {finished} finished rows written in {time.perf_counter() - t:.1f} s")
    settings = Settings(redis_url=redis_url, database_url=url, reconcile_grace=0)
    reconciler = Reconciler(client, Keys(), store.engine, settings)
    ledger = Ledger(store.engine)
    sql = str(
        select(jobs.c.id)
        .where(jobs.c.status.in_(["queued", "retrying", "running"]))
        .compile(store.engine, compile_kwargs={"literal_binds": True})
    )
    with store.engine.connect() as conn:
        plan = [" ".join(str(c) for c in r) for r in conn.execute(text(PLAN[name] + sql))]
    print(f"  plan: {' | '.join(plan)}")
    have = 0
    for count in counts:
        add_unfinished(store, client, have, count - have)
        have = count
        query = median_ms(ledger.unfinished)
        whole = median_ms(lambda: reconciler.run())
        report = reconciler.run()
        restored = len(report.restored) if report else None
        print(
            json.dumps(
                {"db": name, "finished": finished, "unfinished": count, "query_ms": query,
                 "pass_ms": whole, "restored": restored, "load": os.getloadavg()[0]}
            ),
            flush=True,
        )  # fmt: skip
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--finished", type=int, default=1_000_000)
    ap.add_argument("--unfinished", default="0,1000,10000")
    args = ap.parse_args()
    counts = [int(c) for c in args.unfinished.split(",")]
    from worker.logs import configure_logging

    configure_logging(Settings(log_level="WARNING"))
    root = Path(tempfile.mkdtemp(prefix="stoker-reconcile-"))
    server = RedisProcess(root / "redis", appendonly=False).start()
    try:
        measure("sqlite", f"sqlite:///{root / 'jobs.db'}", server.url, args.finished, counts)
        pg = launch_postgres()
        pg_server = next(pg)
        try:
            url = pg_server.create_database("cost")
            measure("postgresql", url, server.url, args.finished, counts)
        finally:
            next(pg, None)
    finally:
        server.stop(kill=True)


if __name__ == "__main__":
    main()
