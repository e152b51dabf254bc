"""What the per-worker metrics cost on the hot path.

    python bench/metrics_cost.py [--jobs N] [--repeat R]

Drains N `echo` jobs with one worker (process isolation, SQLite, Redis AOF, as
`bench/throughput.py`) with `WORKER_METRICS_PORT` unset and set, alternating off/on R
times, and scraping /metrics once a second while metrics are on; prints the medians.
Also times each per-job metric update directly (microseconds), and the worker's CPU
time per job (supervisor and executor, from getrusage of the finished worker): far less
sensitive to a busy machine than the drain rate.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from throughput import drain  # noqa: E402

from worker.metrics import WorkerMetrics  # noqa: E402
from worker.redis_server import RedisProcess  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scraping(port: int, stop: threading.Event, counts: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                r.read()
            counts.append(1)
        except OSError:
            pass


def drain_with_metrics(url: str, jobs: int) -> tuple[float, int]:
    port = free_port()
    stop, counts = threading.Event(), []
    t = threading.Thread(target=scraping, args=(port, stop, counts), daemon=True)
    t.start()
    try:
        rate = drain(url, 1, jobs, WORKER_METRICS_PORT=str(port), WORKER_METRICS_HOST="127.0.0.1")
    finally:
        stop.set()
        t.join()
    return rate, len(counts)


def per_update_us(n: int = 200_000) -> dict[str, float]:
    m = WorkerMetrics("bench")
    out = {}
    for name, fn in (
        ("settled", lambda: m.settled("default", "echo", "succeeded")),
        ("ran", lambda: m.ran("echo", 0.001)),
        ("waited", lambda: m.waited("default", 0.002)),
        ("busy start+stop", lambda: (m.busy.start(), m.busy.stop())),
    ):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = (time.perf_counter() - t0) / n * 1e6
    return out


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def hooks_per_job_us(metrics_port: int, n: int = 100_000) -> float:
    """The worker's per-job `Ops` calls (two ticks, start, end, settle) on a stub worker."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from config import Settings
    from worker.keys import Keys
    from worker.ops import Ops
    from worker.stats import Stats

    worker = SimpleNamespace(
        settings=Settings(metrics_port=metrics_port),
        worker_id="bench",
        client=None,
        keys=Keys(),
        store=SimpleNamespace(url="sqlite://"),
        executor=SimpleNamespace(restarts=0, reports=[]),
        heartbeat=SimpleNamespace(fields={}),
        current=None,
        stopping=False,
        stats=Stats(),
        queues=["default"],
    )
    ops = Ops(worker)
    job = SimpleNamespace(attempts=0, queued_at=datetime.now(UTC))
    outcome = SimpleNamespace(kind="succeeded", duration=0.001)
    t0 = time.perf_counter()
    for _ in range(n):
        ops.tick()
        ops.job_started("default", job, datetime.now(UTC))
        ops.job_ended("echo", outcome)
        ops.settled("default", "echo", "succeeded", "succeeded")
        ops.tick()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    for name, us in per_update_us().items():
        print(f"  {name:16} {us:.2f} us per call")
    off_us, on_us = hooks_per_job_us(0), hooks_per_job_us(9999)
    print(f"  per-job hooks: metrics off {off_us:.2f} us, on {on_us:.2f} us")
    off, on, scrapes = [], [], 0
    cpu_off, cpu_on = [], []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp), appendonly=True).start()
        try:
            for i in range(args.repeat):
                # Alternate which goes first (off-on, on-off, ...): no drift favours either.
                for metrics in (False, True) if i % 2 == 0 else (True, False):
                    c0 = cpu_s()
                    if metrics:
                        rate, n = drain_with_metrics(server.url, args.jobs)
                        on.append(rate)
                        cpu_on.append((cpu_s() - c0) / args.jobs * 1e6)
                    else:
                        off.append(drain(server.url, 1, args.jobs))
                        cpu_off.append((cpu_s() - c0) / args.jobs * 1e6)
                scrapes += n
                print(
                    f"run {i + 1}: off {off[-1]:.0f} jobs/s, on {on[-1]:.0f} jobs/s "
                    f"({n} scrapes); worker CPU {cpu_off[-1]:.0f} vs {cpu_on[-1]:.0f} us/job;"
                    f" load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        finally:
            server.stop()
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(
        f"metrics off: median {m_off:.0f} jobs/s ({min(off):.0f}-{max(off):.0f}); "
        f"on: median {m_on:.0f} jobs/s ({min(on):.0f}-{max(on):.0f}), {scrapes} scrapes; "
        f"on/off {m_on / m_off:.3f}; load {os.getloadavg()[0]:.2f}"
    )
    c_off, c_on = statistics.median(cpu_off), statistics.median(cpu_on)
    print(
        f"worker CPU per job (supervisor + executor, incl. startup): off {c_off:.0f} us, "
        f"on {c_on:.0f} us (median), on/off {c_on / c_off:.3f}"
    )


if __name__ == "__main__":
    main()
