"""`python -m worker demo`: start the daemon, enqueue a job for every processor whose extra
is installed (and a bad one), show their progress, then a readable summary of each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from config import Settings
from worker.demo_jobs import DemoJob, demo_jobs, summarize
from worker.lifecycle import FINAL as FINAL_STATUSES
from worker.lifecycle import JobStatus
from worker.protocol import new_job_id

FINAL = tuple(sorted(FINAL_STATUSES))


def run_demo(settings: Settings, *, only: set[str] | None = None, deadline_s: float = 900.0) -> int:
    """Exit 0 when every demo job but the bad one succeeded (and the bad one failed)."""
    from worker.app import app
    from worker.cli_output import progress_bar

    with app(settings, write=True) as a:
        print(f"data folder {settings.data_dir}; redis {a.where()['redis']}", flush=True)
        jobs, skipped = demo_jobs(settings, only, log=lambda m: print(m, flush=True))
        for note in skipped:
            print(f"skipped: {note}", flush=True)
        # The daemon joins the same embedded server (or uses the same REDIS_URL).
        log_path = settings.data_dir / "demo-worker.log"
        print(f"starting a worker (its log: {log_path})", flush=True)
        with open(log_path, "w") as log_file:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "worker", "run"],
                env=dict(os.environ),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        ids: dict[str, str] = {}
        try:
            for job in jobs:
                ids[job.name] = _enqueue(a, job, ids)
            bad = f"demo-bad-{new_job_id()[:8]}"
            a.client.lpush(  # type: ignore[union-attr]
                a.keys.queue(settings.queues[0]), f'{{"id": "{bad}", "processor": "no_such"}}'
            )
            ids["bad job"] = bad
            print(f"enqueued {len(ids)} demo jobs on {a.keys.queue(settings.queues[0])}")
            end, interrupted = time.monotonic() + deadline_s, False
            shown: dict[str, str] = {}
            while time.monotonic() < end and daemon.poll() is None and not interrupted:
                rows = {
                    name: a.store.get(i) or {"status": JobStatus.QUEUED} for name, i in ids.items()
                }
                for name, row in rows.items():
                    line = progress_bar(row.get("progress"), row.get("stage") or row["status"])
                    if row["status"] in FINAL:
                        line = row["status"]
                    if shown.get(name) != line:
                        print(f"  {name:22} {line}", flush=True)
                        shown[name] = line
                if all(r["status"] in FINAL for r in rows.values()):
                    break
                try:
                    time.sleep(0.5)
                except KeyboardInterrupt:  # Ctrl-C: the worker got it too and stops
                    print("interrupted: stopping the worker", flush=True)
                    interrupted = True
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(90)
        return _report(a, jobs, ids)


def _enqueue(a: Any, job: DemoJob, ids: dict[str, str]) -> str:
    params = job.params(ids) if callable(job.params) else job.params
    spec = a.admin.enqueue(job.processor, params, job_id=f"demo-{job.slug}-{new_job_id()[:8]}")
    return spec.id


def _report(a: Any, jobs: list[DemoJob], ids: dict[str, str]) -> int:
    print("\ndemo jobs:")
    ok = True
    by_name = {j.name: j for j in jobs}
    for name, job_id in ids.items():
        row = a.store.get(job_id) or {}
        status = row.get("status", "?")
        print(f"  {name:22} {status:10} {job_id}")
        if name == "bad job":
            ok = ok and status == "failed"
            print(f"      {row.get('error') or ''}")
            continue
        ok = ok and status == JobStatus.SUCCEEDED
        if status == JobStatus.SUCCEEDED:
            for line in summarize(by_name[name].processor, row.get("result")):
                print(f"      {line}")
        else:
            print(f"      {row.get('error_type')}: {row.get('error')}")
    print("\nfollow one: python -m worker watch ID; all of it: python -m worker results ID")
    return 0 if ok else 1
