"""Latency of the web dashboard at scale, and what open job pages cost a draining worker.

    python bench/web.py [--rows 1000000] [--postgres] [--drain-jobs 3000] [--skip-drain]

Prints, with the machine's load average next to every figure:
- p50/p95 of the jobs list (no filter, each one filter, an id search, a second page)
  and of the job page, over `--rows` job rows (SQLite; `--postgres` also on a throwaway
  PostgreSQL, as tests/db starts one);
- p50/p95 of the overview (page and API) with 100 queues and 50 workers in Redis;
- a burst worker's drain of `--drain-jobs` echo jobs, alone and with 100 job pages open
  (100 server-sent-event streams fed 100 progress events/s in all, each page re-reading
  its job every 10 s).

The dashboard runs as its own process (`python -m worker web`), as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.redis_server import RedisProcess, free_port  # noqa: E402
from worker.store import JobStore  # noqa: E402

STATUSES = ["succeeded"] * 80 + ["failed"] * 10 + ["cancelled"] * 5 + ["queued"] * 3
STATUSES += ["running", "retrying"]
PROCESSORS = ["echo", "transcription", "diarization", "video_pipeline", "llm_analysis"]
COLUMNS = (
    "id, queue, processor, params, status, attempts, result, error_type, error, "
    "queued_at, started_at, finished_at, updated_at"
)


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def seed_rows(url: str, rows: int) -> list[str]:
    """Insert `rows` jobs (10 % queued in the last hour); return a sample of ids."""
    store = JobStore(url)
    store.migrate()
    now = datetime.now(UTC)
    rng = random.Random(13)
    sample: list[str] = []
    raw = store.engine.raw_connection()
    sqlite = store.engine.dialect.name == "sqlite"
    cur = raw.cursor()
    batch: list[tuple] = []
    for i in range(rows):
        job_id = f"{rng.getrandbits(128):032x}"
        if i % (rows // 200 or 1) == 0:
            sample.append(job_id)
        recent = rng.random() < 0.1
        queued = now - timedelta(seconds=rng.uniform(0, 3600 if recent else 30 * 86400))
        status = rng.choice(STATUSES)
        final = status in ("succeeded", "failed", "cancelled")
        finished = queued + timedelta(seconds=5) if final else None
        failed = status == "failed"
        times = [queued, queued, finished, queued]
        if sqlite:
            times = [t.strftime("%Y-%m-%d %H:%M:%S.%f") if t else None for t in times]
        batch.append(
            (
                job_id,
                f"q{i % 10}",
                PROCESSORS[i % 5],
                '{"text": "x"}',
                status,
                1,
                '{"text": "x"}' if status == "succeeded" else None,
                "ValueError" if failed else None,
                "boom" if failed else None,
                *times,
            )
        )
        if len(batch) == 50_000:
            _insert(cur, batch, sqlite)
            raw.commit()
            batch = []
    if batch:
        _insert(cur, batch, sqlite)
    raw.commit()
    raw.close()
    store.close()
    return sample


def _insert(cur: object, batch: list[tuple], sqlite: bool) -> None:
    marks = ", ".join(["?" if sqlite else "%s"] * 13)
    cur.executemany(f"INSERT INTO jobs ({COLUMNS}) VALUES ({marks})", batch)  # type: ignore[attr-defined]


def start_web(redis_url: str, db_url: str, data: Path, queues: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "WEB_"))}
    env |= {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "WORKER_DATA_DIR": str(data),
        "WORKER_QUEUES": queues,
        "PYTHONPATH": str(ROOT),
        "WORKER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "web", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stderr=(data / "web.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    SERVER["pid"] = proc.pid
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(base + "/api/v1/workers", timeout=2)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the dashboard did not start:\n{(data / 'web.log').read_text()[-3000:]}")


#: The dashboard process being measured (its CPU time per request is reported too: on this
#: shared 2-core VM wall times follow the load, CPU times much less).
SERVER: dict[str, int] = {}


def _server_cpu() -> float:
    import psutil

    t = psutil.Process(SERVER["pid"]).cpu_times()
    return t.user + t.system


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def timed(client: httpx.Client, paths: list[str], n: int = 40) -> tuple[float, float, float]:
    """p50, p95 in ms of GETs cycling through `paths` (after a warm-up of each), and the
    server's CPU ms per request."""
    for p in paths:
        client.get(p).raise_for_status()
    out = []
    cpu = _server_cpu()
    for i in range(n):
        t = time.perf_counter()
        client.get(paths[i % len(paths)], headers={"accept": "text/html"}).raise_for_status()
        out.append((time.perf_counter() - t) * 1000)
    cpu_ms = (_server_cpu() - cpu) * 1000 / n
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.95) - 1], cpu_ms


def report(name: str, figures: tuple[float, float, float], target: float) -> None:
    p50, p95, cpu = figures
    ok = "ok" if p95 <= target else "OVER"
    print(
        f"  {name:40} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  server CPU {cpu:5.1f} ms/req"
        f"  (p95 target {target:.0f}) {ok}  [{load()}]",
        flush=True,
    )


def bench_lists(redis_url: str, db_url: str, rows: int, folder: Path, label: str) -> None:
    t = time.monotonic()
    sample = seed_rows(db_url, rows)
    print(f"{label}: {rows:,} rows seeded in {time.monotonic() - t:.0f} s [{load()}]", flush=True)
    proc, base = start_web(redis_url, db_url, folder, "default")
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            first = c.get("/api/v1/jobs?status=failed").json()["next_cursor"]
            cases = {
                "jobs list, no filter": ["/jobs"],
                "jobs list, status=failed": ["/jobs?status=failed"],
                "jobs list, status=running (rare)": ["/jobs?status=running"],
                "jobs list, processor=video_pipeline": ["/jobs?processor=video_pipeline"],
                "jobs list, queue=q3": ["/jobs?queue=q3"],
                "jobs list, id search (4-char prefix)": [f"/jobs?search={sample[3][:4]}"],
                "jobs list, status=failed, 2nd page": [f"/jobs?status=failed&cursor={first}"],
                "job page (HTML)": [f"/jobs/{i}" for i in sample[:40]],
                "job (API)": [f"/api/v1/jobs/{i}" for i in sample[40:80]],
            }
            for name, paths in cases.items():
                report(name, timed(c, paths), 100)
    finally:
        proc.terminate()
        proc.wait(30)


def fill_cluster(client: redis.Redis, queues: int, workers: int) -> None:
    client.flushall()
    now = time.time()
    pipe = client.pipeline()
    for q in range(queues):
        for j in range(q % 20):
            pipe.lpush(
                f"stoker:queue:q{q}",
                json.dumps({"id": f"q{q}-{j}", "processor": "echo", "queued_at": now - 60 * j}),
            )
    for w in range(workers):
        wid = f"bench-{w}"
        mine = [f"q{(w * 2 + k) % queues}" for k in range(4)]
        pipe.sadd("stoker:workers", wid)
        pipe.hset(
            f"stoker:worker:{wid}",
            mapping={
                "queues": ",".join(mine),
                "host": "h",
                "pid": w,
                "device": "cuda:0",
                "started_at": datetime.now(UTC).isoformat(),
            },
        )
        pipe.set(f"stoker:heartbeat:{wid}", "1", px=600_000 if w % 10 else 1)
        pipe.lpush(f"stoker:inflight:{wid}:{mine[0]}", json.dumps({"id": f"run-{w}"}))
    pipe.execute()


def bench_overview(redis_url: str, db_url: str, folder: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    fill_cluster(client, 100, 50)
    queues = ",".join(f"q{i}" for i in range(100))
    proc, base = start_web(redis_url, db_url, folder, queues)
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            report("overview page, 100 queues, 50 workers", timed(c, ["/"], 60), 50)
            report("overview API, 100 queues, 50 workers", timed(c, ["/api/v1/queues"], 60), 50)
            report("workers page, 50 workers", timed(c, ["/workers"], 40), 100)
    finally:
        proc.terminate()
        proc.wait(30)
        client.flushall()


async def _viewers(base: str, ids: list[str], stop: threading.Event) -> None:
    """100 job pages: each holds its event stream and re-reads its page every 10 s (the
    page's refresh for an unfinished job), the reads spread evenly."""
    async with httpx.AsyncClient(base_url=base, timeout=None) as c:

        async def view(job_id: str, offset: float) -> None:
            async with c.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:

                async def poll() -> None:
                    await asyncio.sleep(offset)
                    while not stop.is_set():
                        html = await c.get(f"/jobs/{job_id}", headers={"accept": "text/html"})
                        html.raise_for_status()
                        await asyncio.sleep(10)

                task = asyncio.create_task(poll())
                async for _ in r.aiter_lines():
                    if stop.is_set():
                        break
                task.cancel()

        tasks = [asyncio.create_task(view(i, n / 10)) for n, i in enumerate(ids)]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()


def _publisher(redis_url: str, ids: list[str], stop: threading.Event) -> None:
    """Progress of the viewed jobs: 100 events/s in all (a worker publishes at most 2/s
    per job), each fanned out to its page's stream."""
    client = redis.Redis.from_url(redis_url)
    n = 0
    while not stop.is_set():
        job_id = ids[n % len(ids)]
        event = {"job_id": job_id, "progress": (n % 100) / 100, "stage": "bench"}
        client.publish(f"stoker:progress:{job_id}", json.dumps(event))
        n += 1
        time.sleep(0.01)
    client.close()


def drain_once(redis_url: str, db_url: str, folder: Path, jobs: int) -> float:
    """Jobs/s of one burst worker: first start to last finish, read from the database."""
    client = redis.Redis.from_url(redis_url)
    client.delete("stoker:queue:default")
    tag = f"d{time.time_ns()}"
    payloads = [json.dumps({"id": f"{tag}-{i}", "processor": "echo"}) for i in range(jobs)]
    for k in range(0, jobs, 1000):
        client.lpush("stoker:queue:default", *payloads[k : k + 1000])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
    env |= {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "WORKER_DATA_DIR": str(folder),
        "WORKER_LOG_LEVEL": "WARNING",
        "WORKER_DEVICE": "cpu",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "worker", "run", "--burst"],
        env=env,
        cwd=ROOT,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    from sqlalchemy import func, select

    from worker.store import jobs as table

    store = JobStore(db_url)
    with store.engine.connect() as conn:
        first, last, n = conn.execute(
            select(func.min(table.c.started_at), func.max(table.c.finished_at), func.count()).where(
                table.c.id.like(f"{tag}-%"), table.c.status == "succeeded"
            )
        ).one()
    store.close()
    assert n == jobs, f"{n} of {jobs} succeeded"
    return jobs / (last - first).total_seconds()


def bench_drain(redis_url: str, folder: Path, jobs: int, repeat: int) -> None:
    db_url = f"sqlite:///{folder / 'drain.db'}"
    JobStore(db_url).migrate()
    proc, base = start_web(redis_url, db_url, folder, "default,parked")
    try:
        ids = [  # unfinished jobs (queued on a queue no worker serves): their pages refresh
            httpx.post(
                base + "/api/v1/jobs",
                json={"processor": "echo", "params": {"text": "viewed"}, "queue": "parked"},
            ).json()["id"]
            for _ in range(100)
        ]
        alone: list[float] = []
        viewed: list[float] = []
        share: list[float] = []
        clients: list[float] = []  # the 100 "browsers" and the publisher, on these same cores
        for _ in range(repeat):
            alone.append(drain_once(redis_url, db_url, folder, jobs))
            stop = threading.Event()
            th = threading.Thread(target=asyncio.run, args=(_viewers(base, ids, stop),))
            pub = threading.Thread(target=_publisher, args=(redis_url, ids, stop))
            th.start()
            pub.start()
            time.sleep(10)  # every page open and read once
            cpu, mine, wall = _server_cpu(), _own_cpu(), time.monotonic()
            viewed.append(drain_once(redis_url, db_url, folder, jobs))
            took = time.monotonic() - wall
            share.append((_server_cpu() - cpu) / took)
            clients.append((_own_cpu() - mine) / took)
            stop.set()
            th.join(30)
            pub.join(30)
        a, v = statistics.median(alone), statistics.median(viewed)
        print(
            f"  drain of {jobs} echo jobs: alone {a:,.0f} jobs/s {[round(x) for x in alone]}, "
            f"with 100 job pages open {v:,.0f} jobs/s {[round(x) for x in viewed]} "
            f"({(v - a) / a * 100:+.1f} %); the dashboard meanwhile used "
            f"{statistics.median(share) * 100:.1f} % of one core (the simulated browsers and "
            f"publisher, on the same 2 cores: {statistics.median(clients) * 100:.1f} %)  "
            f"[{load()}]",
            flush=True,
        )
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--drain-jobs", type=int, default=3000)
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--drain-repeat", type=int, default=3, help="drains of each kind")
    ap.add_argument("--skip-lists", action="store_true", help="no SQLite job-list figures")
    ap.add_argument("--skip-overview", action="store_true")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="stoker-web-bench-"))
    server = RedisProcess(folder / "redis", appendonly=False).start()
    try:
        db_url = f"sqlite:///{folder / 'jobs.db'}"
        print(f"bench/web.py on {os.cpu_count()} cores [{load()}]", flush=True)
        if not args.skip_lists:
            bench_lists(server.url, db_url, args.rows, folder, "SQLite")
        else:
            JobStore(db_url).migrate()
        if not args.skip_overview:
            print("Overview (SQLite)", flush=True)
            bench_overview(server.url, db_url, folder)
        if args.postgres:
            from tests.db.conftest import launch_postgres

            gen = launch_postgres("stoker-web-bench-pg-")
            pg = next(gen)
            try:
                bench_lists(
                    server.url, pg.create_database("bench"), args.rows, folder, "PostgreSQL"
                )
            finally:
                gen.close()
        if not args.skip_drain:
            print("Drain with open job pages", flush=True)
            bench_drain(server.url, folder, args.drain_jobs, args.drain_repeat)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
