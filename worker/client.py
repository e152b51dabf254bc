"""The Python producer API: enqueue jobs ledger-first, look them up, wait for them.

```python
from worker.client import Client

with Client() as stoker:
    job_id = stoker.enqueue("diarization", {"audio_path": "a.wav"}, id="session-42")
    row = stoker.wait(job_id, timeout=600, on_progress=print)
```

`enqueue` is `worker.admin.Admin.enqueue`, the CLI's and the HTTP API's path too: the
params are validated, the `queued` row (with the payload) is committed, and only then is
the job pushed. So a job the producer was told about is in the ledger even if Redis loses
it, and `python -m worker reconcile` (or the worker holding the recovery lock) restores
it. A job pushed raw (`redis-cli LPUSH`) gets its row only when a worker takes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from config import Settings, get_settings
from worker.admin import Admin, AdminError
from worker.keys import Keys
from worker.lifecycle import FINAL
from worker.store import JobStore

__all__ = ["AdminError", "Client", "JobTimeout"]

#: Seconds between looks at the row while waiting (progress events wake it sooner).
ROW_POLL_S = 0.25


class JobTimeout(TimeoutError):
    """`wait` ran out of time; `row` is the job's last known state (None: unknown)."""

    def __init__(self, job_id: str, timeout: float, row: dict[str, Any] | None) -> None:
        status = row["status"] if row else "unknown"
        super().__init__(f"job {job_id} still {status} after {timeout} s")
        self.row = row


class Client:
    """A producer's connection to Stoker. Connects on first use; `close()` when done."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redis_client: redis.Redis | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.keys = Keys.from_settings(self.settings)
        self._redis = redis_client
        self._store = store
        self._owns_store = store is None
        self._server: Any = None
        self._admin: Admin | None = None

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            from worker.connection import connect_redis

            self._redis, self._server = connect_redis(self.settings)
        return self._redis

    @property
    def store(self) -> JobStore:
        if self._store is None:
            self._store = JobStore(self.settings.resolved_database_url)
            self._store.migrate()
        return self._store

    @property
    def admin(self) -> Admin:
        if self._admin is None:
            self._admin = Admin(self.settings, self.redis, self.store)
        return self._admin

    def enqueue(
        self,
        processor: str,
        params: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        queue: str | None = None,
        delay: float = 0.0,
        max_attempts: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """Commit the job's `queued` row, then push it; returns its id.

        Raises AdminError: 422 for an unknown processor, invalid params or queue name;
        409 when a job with this id is still unfinished.
        """
        job = self.admin.enqueue(
            processor,
            params if params is not None else {},
            queue=queue,
            job_id=id,
            delay=delay,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        return job.id

    def status(self, job_id: str) -> dict[str, Any] | None:
        """The job's row (status, result, error, progress, ...), or where it sits in
        Redis when it has no row yet; None when unknown."""
        return self.admin.job(job_id)

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the job is `succeeded`, `failed` or `cancelled`; return its row.

        Follows the job's progress channel (each event goes to `on_progress`) and reads
        the row after every event and at least every 0.25 s. Raises JobTimeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.progress_channel(job_id))
        try:
            while True:
                row = self.store.get(job_id)
                if row is not None and row["status"] in FINAL:
                    return row
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise JobTimeout(job_id, timeout or 0.0, row or self.status(job_id))
                wait_s = ROW_POLL_S if left is None else min(ROW_POLL_S, left)
                message = pubsub.get_message(timeout=wait_s)
                if message is not None and on_progress is not None:
                    on_progress(_event(message))
        finally:
            pubsub.close()

    def close(self) -> None:
        if self._store is not None and self._owns_store:
            self._store.close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _event(message: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(message["data"])
    except (TypeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
