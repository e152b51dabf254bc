"""The web app's connections: one `Admin` (the CLI's core), reached from one thread at a time.

`Admin` and its store hold one Redis client and one database connection that are not
meant for concurrent use, and their calls block. Every page and API call therefore runs
`await core.call(fn, ...)`: in a worker thread (the event loop keeps serving server-sent
events meanwhile), one call at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from anyio import to_thread

from config import Settings
from worker.admin import Admin
from worker.queries import Throughput

T = TypeVar("T")


class WebCore:
    """Admin plus the readers only the web needs; `open()` connects, `close()` lets go."""

    def __init__(self, settings: Settings, admin: Admin | None = None) -> None:
        self.settings = settings
        self.admin = admin
        self.throughput: Throughput | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._app: Any = None

    def open(self) -> None:
        """Connect to Redis and the database (as the CLI does) unless given an Admin."""
        from processors.registry import load_configured

        load_configured(self.settings.processors)  # WORKER_PROCESSORS, as the worker does
        if self.admin is None:
            from worker.app import App

            self._app = App(self.settings)
            self.admin = self._app.admin
        self.throughput = Throughput(self.admin.store.engine)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None

    @property
    def redis_url(self) -> str | None:
        """The URL of the Redis the admin uses (for the async pub/sub client), if known."""
        return getattr(self._app, "redis_url", None) or self.settings.redis_url

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking Admin call in a thread, one at a time."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._limiter)
