"""Screenshots of the dashboard's main pages for the docs, over a made-up busy deployment.

    python -m tests.web.screenshots docs/img

Starts its own Redis and SQLite database, fills them (queues with waiting jobs, an hour
of finished jobs, failed jobs of two kinds, scheduled retries, workers live and dead, one
job running with progress), serves the dashboard and photographs each page with headless
Debian Chromium.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import insert

from config import Settings, WebSettings
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, live_server
from worker.admin import Admin
from worker.redis_server import RedisProcess
from worker.store import JobStore, jobs

QUEUES = ["realtime", "default", "batch", "reprocess"]


def seed(admin: Admin, client: redis.Redis) -> str:
    """Fill Redis and the database; return the id of the running job."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    rows = []
    for i in range(2400):
        finished = now - timedelta(seconds=rng.uniform(0, 3600) ** 1.02 % 3600)
        status = "failed" if i % 23 == 0 else "succeeded"
        rows.append(
            {
                "id": f"{rng.getrandbits(64):016x}",
                "queue": rng.choice(QUEUES),
                "processor": rng.choice(["transcription", "diarization", "video_pipeline", "echo"]),
                "params": {"audio_path": f"calls/{i}.wav"},
                "status": status,
                "attempts": 1,
                "error_type": "TransientError" if status == "failed" else None,
                "queued_at": finished - timedelta(seconds=40),
                "started_at": finished,
                "finished_at": finished,
                "updated_at": finished,
                "result": None,
            }
        )
    with admin.store.engine.begin() as conn:
        conn.execute(insert(jobs), rows)
    for q, n in zip(QUEUES, (3, 42, 310, 7), strict=True):
        for i in range(n):
            admin.enqueue("echo", {"text": f"{q} {i}"}, queue=q)
    running = admin.enqueue(
        "echo", {"text": "meeting-2026-11-30.wav", "sleep": 60}, queue="realtime"
    )
    client.lrem("stoker:queue:realtime", 1, running.to_payload())
    admin.store.start(running, "realtime", "gpu-node-1-4121", now)
    admin.store.progress(running.id, 0.62, "transcribe")
    for i, (etype, msg) in enumerate(
        [
            ("PermanentError", "unsupported codec: amr-wb"),
            ("PermanentError", "input file not found: m7.wav"),
            ("TimeoutError", "job ran past its 600 s timeout"),
            ("CUDAOutOfMemory", "CUDA out of memory (tried 2.1 GiB)"),
        ]
    ):
        job = {
            "id": f"call-{900 + i}",
            "processor": "diarization",
            "params": {"audio_path": "m.wav"},
        }
        client.lpush(
            "stoker:failed",
            json.dumps(
                {
                    "id": job["id"],
                    "job": job,
                    "queue": "default",
                    "attempts": 3,
                    "worker_id": "gpu-node-2",
                    "error": {
                        "type": etype,
                        "message": msg,
                        "traceback": f"Traceback ...\n{etype}: {msg}",
                    },
                    "failed_at": (now - timedelta(minutes=5 * i)).isoformat(),
                }
            ),
        )
    for i in range(3):
        admin.enqueue("echo", {"text": f"retry {i}"}, queue="batch", delay=60 * (i + 1))
    for w, (gpu, alive) in enumerate([("cuda:0", True), ("cuda:1", True), ("cuda:0", False)]):
        wid = ["gpu-node-1-4121", "gpu-node-1-4188", "gpu-node-2-977"][w]
        client.sadd("stoker:workers", wid)
        client.hset(
            f"stoker:worker:{wid}",
            mapping={
                "queues": ",".join(QUEUES),
                "host": wid.rsplit("-", 1)[0],
                "pid": wid.rsplit("-", 1)[1],
                "device": gpu,
                "started_at": (now - timedelta(hours=5 + w)).isoformat(),
                "seen_at": now.isoformat(),
                "state": "busy" if w == 0 else "idle",
            },
        )
        if alive:
            client.set(f"stoker:heartbeat:{wid}", "1", px=3_600_000)
    client.lpush("stoker:inflight:gpu-node-1-4121:realtime", running.to_payload())
    return running.id


def main(folder: str) -> None:
    from playwright.sync_api import sync_playwright

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stoker-shots-"))
    server = RedisProcess(tmp / "redis", appendonly=False).start()
    try:
        settings = Settings(
            redis_url=server.url,
            database_url=f"sqlite:///{tmp / 'db'}",
            data_dir=tmp / "var",
            queues=QUEUES,
            web=WebSettings(refresh=30),
        )
        store = JobStore(settings.resolved_database_url)
        store.migrate()
        client = redis.Redis.from_url(server.url)
        running = seed(Admin(settings, client, store), client)
        with live_server(settings) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            for name, path in [
                ("overview", "/"),
                ("workers", "/workers"),
                ("jobs", "/jobs"),
                ("job", f"/jobs/{running}"),
                ("failed", "/failed"),
                ("scheduled", "/scheduled"),
                ("processors", "/processors"),
            ]:
                page.goto(base + path)
                time.sleep(0.3)
                page.screenshot(path=str(out / f"{name}.png"))
                print(out / f"{name}.png")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
