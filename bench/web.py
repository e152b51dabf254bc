"""Latency of the web dashboard at scale, and what open job pages cost a draining worker.

    python bench/web.py [--rows 1000000] [--postgres] [--drain-jobs 20000] [--drain-pairs 12]
                        [--nice -20] [--skip-lists] [--skip-overview] [--skip-drain]

Prints, with the machine's load average next to every figure:
- p50/p95 of the jobs list (no filter, each one filter, an id search, a second page)
  and of the job page, over `--rows` job rows (SQLite; `--postgres` also on a throwaway
  PostgreSQL, as tests/db starts one);
- p50/p95 of the overview (page and API) with 100 queues and 50 workers in Redis;
- pairs of drains of `--drain-jobs` echo jobs by one running worker, alone and with 100
  job pages open (100 server-sent-event streams; 100 progress events/s published in both
  arms; each page's live section refreshed every 10 s as its htmx does), in the order AB,
  BA, ...: each pair, the median ratio, the dashboard's CPU and the events the pages got.
  The simulated browsers are raw sockets in a process of their own, 20 nice levels below
  the measured processes and on the last core (see `SYSTEM`, `harness_nice`).

The dashboard runs as its own process (`python -m worker web`), as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
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


#: Niceness of what is measured (Redis, the dashboard, the draining worker): `--nice`,
#: by default -20 when root. This VM is shared with other people's heavy jobs; raised
#: together, the measured processes compete with each other as on a machine of their own,
#: and the others' load stops swamping the figures. 0 leaves every priority alone.
SYSTEM = {"nice": 0}


def _system_priority() -> None:
    if SYSTEM["nice"]:
        os.setpriority(os.PRIO_PROCESS, 0, SYSTEM["nice"])


def _reprioritize(pid: int) -> None:
    """Give a running process (every thread of it) the measured processes' niceness."""
    if SYSTEM["nice"]:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), SYSTEM["nice"])


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
        preexec_fn=_system_priority,
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


#: Seconds before every drain, of either kind: the pages open in the first half (every
#: stream's first event, every page read once), refreshes run at their steady rate from then.
#: The same pause before each drain: a drain that follows a pause runs faster here.
OPENING = 4.0


class Browsers:
    """What 100 open job pages ask of the dashboard, at the least CPU on this side.

    Each page holds its event stream (`GET /api/v1/jobs/<id>/events`) and refreshes its
    live section every `refresh` s as the page's htmx does, the refreshes spread evenly.
    Raw sockets, no HTTP library: the browsers of a real deployment run on operators'
    laptops, so the fewer cycles they take from the machine measured the better. `counts`
    tells what was received (events per stream, page reads, 204s, errors).
    """

    def __init__(self, host: str, port: int, ids: list[str], refresh: float) -> None:
        self.host, self.port, self.ids, self.refresh = host, port, ids, refresh
        self.events = dict.fromkeys(ids, 0)
        self.pages = self.unchanged = self.errors = 0

    def counts(self) -> dict[str, object]:
        return {
            "events": sum(self.events.values()),
            "streams_with_events": sum(1 for n in self.events.values() if n),
            "per_stream": list(self.events.values()),
            "pages": self.pages,
            "unchanged": self.unchanged,  # refreshes answered 204
            "errors": self.errors,
        }

    def _request(self, path: str, extra: str = "") -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}\r\n").encode()

    async def stream(self, job_id: str) -> None:
        r, w = await asyncio.open_connection(self.host, self.port)
        w.write(self._request(f"/api/v1/jobs/{job_id}/events", "Accept: text/event-stream\r\n"))
        tail = b""
        while chunk := await r.read(65536):
            data = tail + chunk  # a "data: " cut by a read is counted once, in the next
            self.events[job_id] += data.count(b"data: ")
            tail = data[-5:]
        self.errors += 1  # the server closed a stream it should hold open

    async def page(self, job_id: str, first: float, phase: float) -> None:
        """Read the page at `first` s, then refresh its live section from `phase` s on, as
        htmx does (`HX-Target`, the version the section shows); 204 means unchanged."""
        start = time.monotonic()
        await asyncio.sleep(first)
        version, conn, cookies = "", None, {}
        while True:
            if conn is None:  # the server closes a connection idle for 5 s, as browsers see
                conn = await asyncio.open_connection(self.host, self.port)
            r, w = conn
            extra = "Accept: text/html\r\n"
            if cookies:  # the form token's cookie, as a browser keeps it
                extra += f"Cookie: {'; '.join(f'{k}={v}' for k, v in cookies.items())}\r\n"
            if version:
                extra += f"HX-Request: true\r\nHX-Target: job-live\r\nX-Job-Version: {version}\r\n"
            w.write(self._request(f"/jobs/{job_id}", extra))
            try:
                head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1")
            except (asyncio.IncompleteReadError, ConnectionError):
                w.close()
                conn = None
                continue
            status = int(head.split(" ", 2)[1])
            cookies |= dict(re.findall(r"(?i)set-cookie: *([^=\s]+)=([^;\r\n]*)", head))
            length = re.search(r"(?i)content-length: *(\d+)", head)
            body = await r.readexactly(int(length.group(1))) if length else b""
            found = re.search(rb'"X-Job-Version": "([0-9a-f]+)"', body)
            version = found.group(1).decode() if found else version
            if status == 204:
                self.unchanged += 1
            elif status != 200:
                self.errors += 1
            self.pages += 1
            if phase:  # the first refresh, then every `refresh` s: evenly spread over pages
                await asyncio.sleep(max(0.0, start + phase - time.monotonic()))
                phase = 0.0
            else:
                await asyncio.sleep(self.refresh)

    async def run(self) -> None:
        # Every page read within OPENING s, then refreshes at the steady rate (one page every
        # refresh/100 s) from OPENING s on.
        step, opening = self.refresh / len(self.ids), OPENING / 2
        tasks = [asyncio.create_task(self.stream(i)) for i in self.ids]
        tasks += [
            asyncio.create_task(self.page(i, n * opening / len(self.ids), opening + n * step))
            for n, i in enumerate(self.ids)
        ]
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():  # the parent asks "counts" / closes stdin
            if line.strip() == b"counts":
                print(json.dumps(self.counts()), flush=True)
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
        for t in tasks:
            t.cancel()


def publish_progress(redis_url: str, ids: list[str], rate: float) -> None:
    """Progress of the viewed jobs, `rate` events/s in all (a worker publishes at most 2/s
    per job), sent every 0.1 s in one pipeline (catching up when late) until stdin closes;
    the count published so far kept in `bench:published`."""
    client = redis.Redis.from_url(redis_url)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    n, start = 0, time.monotonic()
    while not stop.wait(0.1):
        due = int((time.monotonic() - start) * rate)
        pipe = client.pipeline(transaction=False)
        for i in range(n, due):
            job_id = ids[i % len(ids)]
            event = {"job_id": job_id, "progress": (i // len(ids) % 100) / 100, "stage": "bench"}
            pipe.publish(f"stoker:progress:{job_id}", json.dumps(event))
        pipe.set("bench:published", due)
        pipe.execute()
        n = due


def harness_nice() -> int:
    """The simulated browsers' and publisher's niceness: 20 levels below the measured
    processes (19 at most), so that they take what CPU those leave; at -20 for the measured
    ones that is 0, the priority of everything else on the machine, so the browsers still
    read their streams on a machine busy with other people's work."""
    return min(19, SYSTEM["nice"] + 20)


def low_priority_child(args: list[str]) -> subprocess.Popen:
    """This script run with `args` as a harness process: `harness_nice()`, last core only."""

    def demote() -> None:
        os.setpriority(os.PRIO_PROCESS, 0, harness_nice())
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {(os.cpu_count() or 1) - 1})

    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=demote,
        cwd=ROOT,
    )


class Drainer:
    """One worker (`python -m worker run`, serving `default`) kept running; `drain(n)` pushes
    n echo jobs and answers its jobs/s, first start to last finish, read from the database.
    No process start inside a pair of drains: the two run seconds apart."""

    def __init__(self, redis_url: str, db_url: str, folder: Path) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.store = JobStore(db_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKER_")}
        env |= {
            "REDIS_URL": redis_url,
            "DATABASE_URL": db_url,
            "WORKER_DATA_DIR": str(folder),
            "WORKER_LOG_LEVEL": "WARNING",
            "WORKER_DEVICE": "cpu",
            "WORKER_QUEUES": "default",
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=env,
            cwd=ROOT,
            stderr=(folder / "worker.log").open("w"),
            preexec_fn=_system_priority,
        )
        self.drain(200)  # started, imported, warm

    def drain(self, jobs: int) -> float:
        from sqlalchemy import func, select

        from worker.store import jobs as table

        tag = f"d{time.time_ns()}"
        payloads = [json.dumps({"id": f"{tag}-{i}", "processor": "echo"}) for i in range(jobs)]
        pipe = self.client.pipeline(transaction=False)
        for k in range(0, jobs, 1000):
            pipe.lpush("stoker:queue:default", *payloads[k : k + 1000])
        pipe.execute()
        query = select(
            func.min(table.c.started_at), func.max(table.c.finished_at), func.count()
        ).where(table.c.id.like(f"{tag}-%"), table.c.status == "succeeded")
        deadline = time.monotonic() + 600
        while self.client.llen("stoker:queue:default") and time.monotonic() < deadline:
            time.sleep(0.2)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.proc.returncode}")
            with self.store.engine.connect() as conn:
                first, last, n = conn.execute(query).one()
            if n == jobs:
                return jobs / (last - first).total_seconds()
            time.sleep(0.2)
        raise RuntimeError(f"{n} of {jobs} jobs succeeded in 600 s")

    def cpu(self) -> float:
        """CPU seconds used so far by the worker (its children included) and Redis."""
        import psutil

        procs = [psutil.Process(self.proc.pid), psutil.Process(SYSTEM["redis_pid"])]
        procs += procs[0].children(recursive=True)
        total = 0.0
        for p in procs:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.store.close()
        self.client.close()


def _machine_busy() -> tuple[float, float]:
    import psutil

    t = psutil.cpu_times()
    return t.idle + getattr(t, "iowait", 0.0), sum(t)


def bench_drain(redis_url: str, folder: Path, jobs: int, pairs: int, refresh: float) -> None:
    """Pairs of drains by one worker, alone and with 100 job pages open, in the order
    A B, B A, A B, ... (the viewed drains of two pairs share one opening of the pages)."""
    db_url = f"sqlite:///{folder / 'drain.db'}"
    JobStore(db_url).migrate()
    proc, base = start_web(redis_url, db_url, folder, "default,parked")
    host, port = base.removeprefix("http://").rsplit(":", 1)
    rate = 100.0
    ids = [  # unfinished jobs (queued on a queue no worker serves): their pages refresh
        httpx.post(
            base + "/api/v1/jobs",
            json={"processor": "echo", "params": {"text": "viewed"}, "queue": "parked"},
        ).json()["id"]
        for _ in range(100)
    ]
    (folder / "viewed.json").write_text(json.dumps(ids))
    _backdate(db_url, ids, 3600)
    rclient = redis.Redis.from_url(redis_url)
    # The progress of the viewed jobs is published in both arms: other workers run them
    # whether or not anyone watches; what the pages add is what is measured.
    publisher = low_priority_child(["--publish", redis_url, str(folder / "viewed.json"), str(rate)])
    drainer = Drainer(redis_url, db_url, folder)
    print(
        f"  {pairs} pairs of drains of {jobs:,} echo jobs by one running worker (order AB, BA, "
        f"...); {rate:.0f} progress events/s on the 100 viewed jobs in both arms; viewed = 100 "
        f"SSE streams + each page's live section refreshed every {refresh:g} s; browsers and "
        f"publisher at nice {harness_nice()} on core {(os.cpu_count() or 1) - 1}; worker, "
        f"Redis and dashboard unpinned, at nice {SYSTEM['nice']}",
        flush=True,
    )
    ratios: list[float] = []
    shares: list[float] = []
    events: list[int] = []
    fractions: list[float] = []  # the dashboard's CPU over the worker's and Redis's
    browsers: subprocess.Popen | None = None
    try:
        arms = [k for k in range(pairs) for _ in range(2)]
        kinds = [("alone", "viewed") if k % 2 == 0 else ("viewed", "alone") for k in range(pairs)]
        order = [kind for pair in kinds for kind in pair]
        figures: dict[str, tuple[float, float, float, float, str]] = {}
        for i, (k, kind) in enumerate(zip(arms, order, strict=True)):
            settle = time.monotonic() + OPENING
            if kind == "viewed" and browsers is None:
                browsers = low_priority_child(
                    ["--browsers", host, port, str(folder / "viewed.json"), str(refresh)]
                )
                _wait_open(browsers, len(ids))
            if kind == "alone" and browsers is not None:
                _close(browsers)
                browsers = None
            time.sleep(max(0.0, settle - time.monotonic()))
            before = _ask(browsers) if browsers is not None else None
            sent = int(rclient.get("bench:published") or 0)
            idle, total = _machine_busy()
            cpu, wall, work = _server_cpu(), time.monotonic(), drainer.cpu()
            speed = drainer.drain(jobs)
            took = time.monotonic() - wall
            share = (_server_cpu() - cpu) / took
            drain_cores = (drainer.cpu() - work) / took
            idle2, total2 = _machine_busy()
            busy = 1 - (idle2 - idle) / (total2 - total)
            seen = ""
            if browsers is not None and before is not None:
                after = _ask(browsers)
                assert not after["errors"], after
                published = int(rclient.get("bench:published") or 0) - sent
                got = after["events"] - before["events"]
                live = sum(
                    1
                    for a, b in zip(after["per_stream"], before["per_stream"], strict=True)
                    if a > b
                )
                pages = after["pages"] - before["pages"]
                same = after["unchanged"] - before["unchanged"]
                seen = (
                    f"; {got:,} events received of {published:,} published, on {live}/100 "
                    f"streams; {pages} refreshes ({same} answered 204 unchanged)"
                )
                shares.append(share)
                events.append(got)
                fractions.append(share / drain_cores)
            figures[kind] = (speed, share, busy, os.getloadavg()[0], seen)
            if i % 2 == 1:
                (a, sa, ba, la, _), (v, sv, bv, lv, seen) = figures["alone"], figures["viewed"]
                ratios.append(v / a)
                print(
                    f"  pair {k + 1} ({'AB' if k % 2 == 0 else 'BA'}): alone {a:,.0f} jobs/s, "
                    f"viewed {v:,.0f} jobs/s ({(v / a - 1) * 100:+.1f} %); dashboard CPU "
                    f"{sa * 100:.1f} % / {sv * 100:.1f} % of a core{seen}; machine busy "
                    f"{ba * 100:.0f} % / {bv * 100:.0f} %, load {la:.2f} / {lv:.2f}",
                    flush=True,
                )
        med = statistics.median(ratios)
        print(
            f"  drain with 100 job pages open: median of {pairs} pair ratios "
            f"{(med - 1) * 100:+.1f} % (quartiles "
            f"{', '.join(f'{(q - 1) * 100:+.1f}' for q in statistics.quantiles(ratios, n=4))} %); "
            f"the dashboard used {statistics.median(shares) * 100:.1f} % of one core while "
            f"viewed (median); {sum(events):,} events received in the viewed drains  "
            f"(target: no more than -5 %) {'ok' if med >= 0.95 else 'OVER'}  [{load()}]",
            flush=True,
        )
        print(
            f"  CPU while viewed: the dashboard used {statistics.median(fractions) * 100:.1f} % "
            f"(median; max {max(fractions) * 100:.1f} %) of the CPU the worker and Redis used "
            "for the drain (a drain waits on round trips more than it computes: what the pages "
            "cost it is the dashboard's wake-ups as much as its CPU)",
            flush=True,
        )
    finally:
        if browsers is not None:
            _close(browsers)
        drainer.close()
        publisher.stdin.close()  # type: ignore[union-attr]
        publisher.wait(30)
        proc.terminate()
        proc.wait(30)


def _close(child: subprocess.Popen) -> None:
    child.stdin.close()  # type: ignore[union-attr]
    child.wait(30)


def _backdate(db_url: str, ids: list[str], seconds: float) -> None:
    """Make the viewed jobs queued `seconds` ago: pages kept open are those of jobs that
    wait or run for a while (a job under 2 min old shows its age in seconds, so its live
    section changes at every refresh and is rendered again each time)."""
    from sqlalchemy import update

    from worker.store import jobs as table

    then = datetime.now(UTC) - timedelta(seconds=seconds)
    store = JobStore(db_url)
    with store.engine.begin() as conn:
        conn.execute(
            update(table).where(table.c.id.in_(ids)).values(queued_at=then, updated_at=then)
        )
    store.close()


def _ask(child: subprocess.Popen) -> dict:
    child.stdin.write("counts\n")  # type: ignore[union-attr]
    child.stdin.flush()  # type: ignore[union-attr]
    line = child.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise RuntimeError("the simulated browsers stopped")
    return json.loads(line)


def _wait_open(browsers: subprocess.Popen, pages: int) -> dict:
    """Counts once every stream has its first event and every page was read once."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = _ask(browsers)
        if counts["streams_with_events"] == pages and counts["pages"] >= pages:
            return counts
        time.sleep(0.2)
    raise RuntimeError(f"the job pages did not open: {counts}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--drain-jobs", type=int, default=20_000)
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--drain-pairs", type=int, default=12, help="pairs of drains (alone, viewed)")
    ap.add_argument("--refresh", type=float, default=10.0, help="s between a page's re-reads")
    ap.add_argument(
        "--nice",
        type=int,
        default=-20 if os.geteuid() == 0 else 0,
        help="niceness of Redis, the dashboard and the worker (see SYSTEM)",
    )
    ap.add_argument("--browsers", nargs=4, help=argparse.SUPPRESS)  # harness child processes
    ap.add_argument("--publish", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--skip-lists", action="store_true", help="no SQLite job-list figures")
    ap.add_argument("--skip-overview", action="store_true")
    args = ap.parse_args()
    if args.browsers:
        host, port, ids, refresh = args.browsers
        ids = json.loads(Path(ids).read_text())
        asyncio.run(Browsers(host, int(port), ids, float(refresh)).run())
        return
    if args.publish:
        publish_progress(
            args.publish[0], json.loads(Path(args.publish[1]).read_text()), float(args.publish[2])
        )
        return
    folder = Path(tempfile.mkdtemp(prefix="stoker-web-bench-"))
    server = RedisProcess(folder / "redis", appendonly=False).start()
    SYSTEM["nice"] = args.nice
    SYSTEM["redis_pid"] = server.proc.pid  # type: ignore[union-attr]
    _reprioritize(server.proc.pid)  # type: ignore[union-attr]
    try:
        db_url = f"sqlite:///{folder / 'jobs.db'}"
        print(
            f"bench/web.py on {os.cpu_count()} cores; Redis, dashboard and worker at nice "
            f"{args.nice} [{load()}]",
            flush=True,
        )
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
            # The drain's database in memory when it can be: the disk of this shared VM
            # is busy with other people's work, and its latency is no part of the question.
            shm = Path("/dev/shm")
            where = (
                Path(tempfile.mkdtemp(prefix="stoker-web-drain-", dir=shm))
                if shm.is_dir()
                else folder
            )
            print(f"Drain with open job pages (database in {where})", flush=True)
            try:
                bench_drain(server.url, where, args.drain_jobs, args.drain_pairs, args.refresh)
            finally:
                if where != folder:
                    shutil.rmtree(where, ignore_errors=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
