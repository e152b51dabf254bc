"""Reaching Redis: `REDIS_URL`, Sentinel (`REDIS_SENTINELS`), or the data folder's shared
embedded server (`connect_redis` joins it, starting it when needed).

With `REDIS_SENTINELS` the client asks the Sentinels for the current master of
`REDIS_SENTINEL_MASTER` on every new connection. After a failover the old master turns
replica: a write on it raises READONLY, which redis-py turns into a ConnectionError, so
the worker's usual reconnect-with-backoff finds the new master, hands back its orphans
and has the ledger reconciled (the new master may lack the last writes).
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import redis
from redis.sentinel import Sentinel, SentinelManagedConnection

from config import Settings

_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 30,
}


def parse_sentinels(entries: list[str]) -> list[tuple[str, int]]:
    """`["host:port", ...]` -> `[(host, port), ...]`; the port defaults to 26379."""
    out = []
    for entry in entries:
        host, sep, port = entry.strip().rpartition(":")
        if not sep:
            host, port = port, "26379"
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


class FollowingConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the Sentinels on *every* (re)connect.

    redis-py 8.1's `send_packed_command` reconnects through `connect_check_health`, which
    skips the Sentinel lookup `connect()` does: a connection used directly (the broker's
    own one) would dial `localhost:6379`, or the old master after a failover, forever.
    """

    _resolving = False

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._resolving or self._sock:
            super().connect_check_health(check_health, retry_socket_connect)
            return
        self._resolving = True
        try:
            self.connect()  # asks the Sentinels, then connect_to(master) comes back here
        finally:
            self._resolving = False


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def sentinel_client(settings: Settings) -> redis.Redis:
    """A client of the master the Sentinels name (resolved again on each reconnect)."""
    sentinel_password = _secret(settings.redis_sentinel_password)
    sentinel = Sentinel(
        parse_sentinels(settings.redis_sentinels),
        sentinel_kwargs={"password": sentinel_password, "socket_timeout": 2}
        if sentinel_password
        else {"socket_timeout": 2},
        socket_timeout=None,
        password=_secret(settings.redis_password),
    )
    return sentinel.master_for(
        settings.redis_sentinel_master, connection_class=FollowingConnection, **_CLIENT_OPTIONS
    )


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def redis_client(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client (it connects on first use) for Sentinel's master, `url` or `REDIS_URL`."""
    if settings.redis_sentinels:
        return sentinel_client(settings)
    url = url or settings.redis_url
    if not url:
        raise ValueError("no REDIS_URL: join the embedded server with connect_redis()")
    return redis.Redis.from_url(url, **_CLIENT_OPTIONS)


def connect_redis(settings: Settings) -> tuple[redis.Redis, Any]:
    """A client for `REDIS_URL` or Sentinel, or for the data folder's shared embedded server
    (joined, started if needed; the second value, whose `release()` leaves it, shutting it
    down if this process was its last user)."""
    if settings.redis_sentinels or settings.redis_url:
        return redis_client(settings), None
    from worker.redis_server import EmbeddedServer

    server = EmbeddedServer(settings.data_dir, settings.embedded_port)
    return redis_client(settings, server.acquire()), server
