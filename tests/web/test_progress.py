"""Live progress: server-sent events fed by the job's pub/sub channel, cheap per viewer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from config import Settings
from tests.support import ROOT, wait_for
from tests.web.conftest import live_server
from worker.redis_server import free_port

pytestmark = pytest.mark.integration


def run(coro: Any) -> Any:
    """asyncio.run in a thread of its own (Playwright's sync API may own this one's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def first_events(base: str, job_id: str, n: int, publish: Callable[[], None]) -> list:
    """Open `n` streams on one job, publish once, return what each stream saw."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as c:
        opened = asyncio.Event()
        count = 0

        async def one() -> list[dict[str, Any]]:
            nonlocal count
            seen = []
            async with c.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if len(seen) == 1:
                            count += 1
                            if count == n:
                                opened.set()
                        if len(seen) == 2:
                            return seen
            return seen

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.wait_for(opened.wait(), 20)
        await asyncio.sleep(0.3)  # the hub has subscribed
        publish()
        return await asyncio.wait_for(asyncio.gather(*tasks), 20)


def test_every_open_stream_receives_a_published_progress_event(
    web_settings: Callable[..., Settings], real_redis: redis.Redis
) -> None:
    event = {"job_id": "p-1", "progress": 0.5, "stage": "<b>decode</b>"}
    with live_server(web_settings()) as base:
        seen = run(
            first_events(
                base, "p-1", 5, lambda: real_redis.publish("stoker:progress:p-1", json.dumps(event))
            )
        )
    assert all(s[0]["status"] == "unknown" for s in seen)  # the first event: the row's state
    assert all(s[1] == event for s in seen)


def test_many_streams_share_one_redis_subscription_and_hold_no_database_connection(
    web_settings: Callable[..., Settings], real_redis: redis.Redis
) -> None:
    from worker.web.app import create_app

    app = create_app(web_settings())
    checked_out: list[int] = []

    def publish() -> None:
        checked_out.append(app.state.core.admin.store.engine.pool.checkedout())
        assert real_redis.pubsub_numsub("stoker:progress:p-2")[0][1] == 1
        real_redis.publish("stoker:progress:p-2", json.dumps({"progress": 1.0}))

    with live_server(app.state.core.settings, app=app) as base:
        run(first_events(base, "p-2", 30, publish))
        wait_for(lambda: app.state.hub.viewers == 0, 10)
        wait_for(lambda: real_redis.pubsub_numsub("stoker:progress:p-2")[0][1] == 0, 10)
    assert checked_out[0] <= 1  # the store's own connection at most, not one per stream


def test_the_server_stops_promptly_with_event_streams_open(redis_url: str, tmp_path: Any) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEB_", "WORKER_"))}
    env |= {
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db'}",
        "WORKER_DATA_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "web", "--port", str(port)], env=env, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base), timeout=60, interval=0.2)
        opened = threading.Event()

        def listen() -> None:
            try:
                with httpx.stream("GET", f"{base}/api/v1/jobs/x/events", timeout=30) as r:
                    for _ in r.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass  # the server went away: what this test does on purpose

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/api/v1/workers", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def stream_until(base: str, job_id: str, last: float, publish: Callable[[], None]) -> list:
    """Open one stream on `job_id`, publish, return its events up to progress `last`."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as c:
        seen: list[dict[str, Any]] = []
        async with c.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                seen.append(json.loads(line[6:]))
                if len(seen) == 1:
                    await asyncio.sleep(0.3)  # the hub has subscribed
                    publish()
                elif seen[-1].get("progress") == last:
                    return seen
    return seen


def test_a_burst_of_progress_events_reaches_a_stream_coalesced_into_its_latest_state(
    web_settings: Callable[..., Settings], real_redis: redis.Redis
) -> None:
    def burst() -> None:
        pipe = real_redis.pipeline(transaction=False)
        for i in range(1, 201):
            event = {"job_id": "p-3", "progress": i / 200, "stage": f"step {i}"}
            pipe.publish("stoker:progress:p-3", json.dumps(event))
        pipe.execute()

    with live_server(web_settings()) as base:
        seen = run(stream_until(base, "p-3", 1.0, burst))
    assert seen[-1] == {"job_id": "p-3", "progress": 1.0, "stage": "step 200"}
    assert len(seen) - 1 < 20  # 200 events published within a few delivery intervals


def test_an_idle_stream_receives_keepalive_comments(
    web_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.web import progress

    monkeypatch.setattr(progress, "KEEPALIVE", 0.2)

    async def comments(base: str) -> int:
        async with httpx.AsyncClient(base_url=base, timeout=20) as c:
            n = 0
            async with c.stream("GET", "/api/v1/jobs/p-4/events") as r:
                async for line in r.aiter_lines():
                    n += line == ": keepalive"
                    if n == 2:
                        return n
            return n

    with live_server(web_settings()) as base:
        assert run(asyncio.wait_for(comments(base), 10)) == 2
