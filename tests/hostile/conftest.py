"""Hostile-producer fixtures: a burst worker over a real redis-server, and the admin core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from config import Settings
from tests.unit.conftest import Harness
from worker.admin import Admin
from worker.store import JobStore

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Settings:
    return make_settings(isolation="inline", retry_base=0.01, redis_url=redis_url)


@pytest.fixture
def harness(settings: Settings, real_redis: redis.Redis) -> Harness:
    return Harness(settings, real_redis)


@pytest.fixture
def admin(settings: Settings, real_redis: redis.Redis) -> Iterator[Admin]:
    store = JobStore(settings.resolved_database_url)
    store.migrate()
    yield Admin(settings, real_redis, store)
    store.close()


def marks(client: redis.Redis, keys: Any) -> dict[str, Any]:
    """Every per-job mark Stoker keeps in Redis: all must be empty once jobs are settled."""
    return {
        "running": client.hgetall(keys.running),
        "deliveries": client.hgetall(keys.deliveries),
        "cancel": client.smembers(keys.cancel),
    }


NO_MARKS = {"running": {}, "deliveries": {}, "cancel": set()}
