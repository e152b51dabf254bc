"""Connections shared by the CLI commands and the web app: one Redis client (joining the
data folder's embedded server, or not, as asked), one store, and the admin core on them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from config import Settings
from worker.admin import Admin
from worker.keys import Keys
from worker.store import JobStore


class App:
    """Connections shared by the CLI commands.

    With `write`, the embedded Redis is joined or started (and left, shutting it down when
    no worker uses it, on `close`); without, it is only joined when it already runs, and
    `client` is None otherwise.
    """

    def __init__(self, settings: Settings, *, write: bool = True) -> None:
        from worker.redis_server import EmbeddedServer

        self.settings = settings
        self.keys = Keys.from_settings(settings)
        self.server: EmbeddedServer | None = None
        url = settings.redis_url
        if not url and not settings.redis_sentinels:
            self.server = EmbeddedServer(settings.data_dir, settings.embedded_port)
            url = self.server.acquire(start=write)
        self.redis_url = url
        self.client = (
            redis.Redis.from_url(url, socket_connect_timeout=5, socket_keepalive=True)
            if url
            else None
        )
        if settings.redis_sentinels:  # the master the Sentinels name (worker/connection.py)
            from worker.connection import sentinel_client

            self.client = sentinel_client(settings)
        self.store = JobStore(settings.resolved_database_url)
        if write or not _sqlite_file_exists(settings.resolved_database_url):
            self.store.migrate()
        self.admin = Admin(settings, self.client, self.store) if self.client else None
        self.broker = self.admin.broker if self.admin else None

    def where(self) -> dict[str, str]:
        """Which Redis and which database this CLI talks to, and the data folder."""
        from worker.logs import redact_url

        if self.server is None:
            redis_text = redact_url(self.redis_url or "")
        elif self.client is None:
            redis_text = f"embedded, not running (starts with a worker; data {self.server.folder})"
        else:
            redis_text = f"{self.redis_url} (embedded, data {self.server.folder})"
        return {
            "redis": redis_text,
            "database": redact_url(self.settings.resolved_database_url),
            "data": str(self.settings.data_dir),
        }

    def close(self) -> None:
        self.store.close()
        if self.server is not None:
            self.server.release()


def _sqlite_file_exists(url: str) -> bool:
    """True unless `url` names a SQLite file that does not exist yet."""
    if not url.startswith("sqlite:///"):
        return True
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).exists()


@contextmanager
def app(settings: Settings, *, write: bool = True) -> Iterator[App]:
    a = App(settings, write=write)
    try:
        yield a
    finally:
        a.close()
