"""Live progress for job pages: one Redis pub/sub connection fanned out to every viewer.

A job page opens `GET /jobs/<id>/events` (server-sent events). Each open stream gets an
`asyncio.Queue`; the hub subscribes the job's channel (`stoker:progress:<id>`) on the
first viewer and unsubscribes after the last. However many pages are open, the web app
holds one Redis connection for them and no database connection at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger("stoker.web")

#: A viewer slower than this many events loses the oldest ones (progress is advisory).
QUEUE_SIZE = 64


def async_client(sync_client: Any, url: str | None) -> aioredis.Redis:
    """An asyncio client for the same server as `sync_client` (URL, TCP or unix socket)."""
    if url:
        return aioredis.Redis.from_url(url)
    kw = sync_client.connection_pool.connection_kwargs
    keep = ("host", "port", "db", "username", "password")
    extra = {"unix_socket_path": kw["path"]} if kw.get("path") else {}
    return aioredis.Redis(**{k: kw[k] for k in keep if k in kw}, **extra)


class ProgressHub:
    """Subscribe-on-demand fan-out of progress channels to asyncio queues."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._viewers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def viewers(self) -> int:
        return sum(len(v) for v in self._viewers.values())

    async def _ensure_reader(self) -> None:
        if self._pubsub is None:
            self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.1)
                    continue
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: keep the pages, retry shortly
                log.warning("progress subscription failed", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            if msg and msg.get("type") == "message":
                self._dispatch(msg["channel"], msg["data"])

    def _dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            return
        if not isinstance(event, dict):
            return
        for queue in list(self._viewers.get(name, ())):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def watch(self, channel: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue receiving the events published on `channel` while the block runs."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        async with self._lock:
            await self._ensure_reader()
            first = channel not in self._viewers
            self._viewers.setdefault(channel, set()).add(queue)
            if first:
                await self._pubsub.subscribe(channel)
        try:
            yield queue
        finally:
            # No await here: a closed stream's task is being cancelled. The unsubscribe
            # runs as a task of its own.
            viewers = self._viewers.get(channel, set())
            viewers.discard(queue)
            if not viewers:
                self._viewers.pop(channel, None)
                task = asyncio.get_running_loop().create_task(self._unsubscribe(channel))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel not in self._viewers:  # nobody came back meanwhile
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()
