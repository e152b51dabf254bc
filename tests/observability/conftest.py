"""Fixtures for the observability tests: a worker process with its metrics port, scrapes."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# The database fixtures (PostgreSQL server, migrated databases on both backends).
from tests.db.conftest import (  # noqa: F401
    _migrated_sqlite,
    fresh_postgres_url,
    migrated_db_url,
    postgres_server,
    postgres_url,
)
from worker.redis_server import RedisProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A redis-server of the module's own, which its tests may stop and start."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "var" / "media").mkdir(parents=True)
    return tmp_path / "var"
