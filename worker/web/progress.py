"""Live progress for job pages: one Redis pub/sub connection fanned out to every viewer.

A job page opens `GET /jobs/<id>/events` (server-sent events). Each open stream is a
`Viewer`; the hub subscribes the job's channel (`stoker:progress:<id>`) on the first
viewer and unsubscribes after the last. However many pages are open, the web app holds
one Redis connection for them and no database connection at all.

What a viewer costs is kept small, since the dashboard may share a machine with workers:
an event is decoded and encoded once per message, not once per viewer; events are
coalesced per job and delivered at most every `INTERVAL` s (a person sees no more than a
few updates a second; the latest state always arrives); and one timer for the whole hub
sends keep-alives, none per stream.
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

#: Seconds between deliveries of a job's coalesced events (at most 1/INTERVAL a second).
INTERVAL = 0.25
#: A stream that had nothing to send for this long gets a comment (proxies close idle ones).
KEEPALIVE = 15.0
KEEPALIVE_CHUNK = b": keepalive\n\n"


def sse_chunk(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + json.dumps(data, default=str).encode() + b"\n\n"


class Viewer:
    """One open stream: the latest chunk not yet sent (older ones are dropped)."""

    __slots__ = ("_ready", "pending", "sent")

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self.pending: bytes | None = None
        self.sent = False  # anything delivered since the last keep-alive tick

    def offer(self, chunk: bytes) -> None:
        self.pending = chunk
        self._ready.set()

    async def next(self) -> bytes:
        """The next chunk to send: the latest event (or a keep-alive) offered."""
        await self._ready.wait()
        self._ready.clear()
        chunk, self.pending = self.pending or KEEPALIVE_CHUNK, None
        return chunk


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
        self._viewers: dict[str, set[Viewer]] = {}
        self._latest: dict[str, bytes] = {}  # channel -> its newest event, not yet delivered
        self._flush_at: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.TimerHandle | None = None
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
        if name not in self._viewers:
            return
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):
            return
        if not isinstance(event, dict):
            return
        self._latest[name] = sse_chunk({k: event.get(k) for k in ("job_id", "progress", "stage")})
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(INTERVAL, self._flush)

    def _flush(self) -> None:
        """Hand every job's latest event to its viewers (one wake-up for all of them)."""
        self._flush_at = None
        latest, self._latest = self._latest, {}
        for channel, chunk in latest.items():
            for viewer in self._viewers.get(channel, ()):
                viewer.offer(chunk)
                viewer.sent = True

    def _tick(self) -> None:
        """A keep-alive to each stream that sent nothing since the last tick."""
        if not self._viewers:
            self._keepalive = None
            return
        for viewers in self._viewers.values():
            for viewer in viewers:
                if not viewer.sent and viewer.pending is None:
                    viewer.offer(KEEPALIVE_CHUNK)
                viewer.sent = False
        self._keepalive = asyncio.get_running_loop().call_later(KEEPALIVE, self._tick)

    @contextlib.asynccontextmanager
    async def watch(self, channel: str) -> AsyncIterator[Viewer]:
        """A viewer receiving the events published on `channel` while the block runs."""
        viewer = Viewer()
        async with self._lock:
            await self._ensure_reader()
            if self._keepalive is None:
                self._keepalive = asyncio.get_running_loop().call_later(KEEPALIVE, self._tick)
            first = channel not in self._viewers
            self._viewers.setdefault(channel, set()).add(viewer)
            if first:
                await self._pubsub.subscribe(channel)
        try:
            yield viewer
        finally:
            # No await here: a closed stream's task is being cancelled. The unsubscribe
            # runs as a task of its own.
            viewers = self._viewers.get(channel, set())
            viewers.discard(viewer)
            if not viewers:
                self._viewers.pop(channel, None)
                self._latest.pop(channel, None)
                task = asyncio.get_running_loop().create_task(self._unsubscribe(channel))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel not in self._viewers:  # nobody came back meanwhile
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def close(self) -> None:
        for timer in (self._flush_at, self._keepalive):
            if timer is not None:
                timer.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()
