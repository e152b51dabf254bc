"""Unit-test fixtures: a worker on fakeredis with jobs run in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from config import Settings
from worker.executor import InlineExecutor
from worker.keys import Keys
from worker.worker import Worker


class Harness:
    """A burst worker over fakeredis and a SQLite file, plus ways to look at the result."""

    def __init__(self, settings: Settings, client: Any) -> None:
        self.settings = settings
        self.client = client
        self.keys = Keys.from_settings(settings)

    def push(self, payload: Any, queue: str = "default") -> None:
        text = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        self.client.lpush(self.keys.queue(queue), text)

    def drain(self, **overrides: Any) -> Worker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        worker = Worker(
            settings,
            burst=True,
            client=self.client,
            executor=InlineExecutor(settings),
            worker_id="unit-worker",
        )
        assert worker.run() == 0
        return worker

    def failed(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.client.lrange(self.keys.failed, 0, -1)]

    def queue(self, name: str = "default") -> list[bytes]:
        return self.client.lrange(self.keys.queue(name), 0, -1)

    def row(self, job_id: str) -> dict[str, Any] | None:
        from worker.store import JobStore

        store = JobStore(self.settings.resolved_database_url)
        try:
            return store.get(job_id)
        finally:
            store.close()


@pytest.fixture
def harness(make_settings: Callable[..., Settings], fake_redis: Any) -> Harness:
    return Harness(make_settings(isolation="inline", retry_base=0.01), fake_redis)
