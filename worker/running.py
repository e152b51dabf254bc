"""The supervisor's side of a running job: what the executor reports (progress, rows,
another job's result) and the periodic duties it polls (`worker.duties`).

Progress is advisory (a lost update never fails the job) and throttled once, in the
executor (`WORKER_PROGRESS_INTERVAL`, stage changes at once). Rows the store refuses fail
the job, not the worker; the job's own row is committed before its first rows.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Protocol

import redis
from sqlalchemy.exc import DBAPIError, OperationalError

from worker.backoff import db_unavailable, redis_unavailable
from worker.broker import Delivery
from worker.duties import (
    CANCEL_CHECK_S,
    Abort,
    cancel_abort,
    hold_expired,
    poll_interval,
    shutdown_abort,
)
from worker.executor import JobHandler

#: Rows a job may emit ahead of the database (an outage, or its row not yet committed)
#: before the supervisor waits for the database.
MAX_PENDING_ROWS = 100_000


class Supervisor(Protocol):
    """What a running job's handler uses of its worker (`worker.worker.Worker`)."""

    settings: Any
    client: Any
    keys: Any
    store: Any
    writer: Any
    ops: Any
    prefetcher: Any
    stopping: bool
    force: bool
    _cancel_current: bool
    _stop_since: float | None
    _log: Any
    _retry_db: Any

    @property
    def holds_prefetched(self) -> bool: ...

    def release_prefetched(self, *, wait: bool = True) -> None: ...

    def prepare_ahead(self) -> None: ...

    def job_sent(self, started: list[tuple[Delivery, str]]) -> None: ...

    def maintenance(self, *, every: float = 0.0) -> None: ...


class RunningJob(JobHandler):
    """Progress, rows and control for the job being run by `worker`."""

    def __init__(self, worker: Supervisor, job_id: str, delivery: Delivery) -> None:
        self.worker = worker
        self.job_id = job_id
        self.delivery = delivery
        self.started = time.monotonic()
        self.rows_seen: set[str] = set()
        self.row_error: str | None = None
        self.pending_rows: list[tuple[str, list[dict[str, Any]], bool]] = []
        self.pending_count = 0
        self.pending_progress: tuple[float, str | None] | None = None
        self.last_cancel_check = 0.0
        self.cancel_since = 0.0

    # Writes never wait inside the executor's loop: until the job's own `running` row is
    # committed (by the group-committing writer) or while the database is down, progress
    # and rows wait here, bounded, and are written from `poll` or when the job ends.
    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        """Save and publish a report (already throttled where the job reported it)."""
        self.pending_progress = (fraction, stage)
        self._write_progress()

    def _write_progress(self) -> None:
        w = self.worker
        if self.pending_progress is None or not w.writer.idle():
            return  # the `running` mark first, or it would reset this report
        fraction, stage = self.pending_progress
        self.pending_progress = None
        try:
            w.store.progress(self.job_id, fraction, stage)
            event = {"job_id": self.job_id, "progress": fraction, "stage": stage}
            w.client.publish(w.keys.progress_channel(self.job_id), json.dumps(event))
        except (redis.RedisError, OperationalError, DBAPIError) as exc:
            # Progress is advisory: losing one update must not fail the job.
            w._log.debug("progress not saved", error=str(exc))
            w.store.reset()

    def stop_requested(self) -> bool:
        """In-process jobs (inline isolation) ask here; the duties decide."""
        return self.poll() is not None

    def rows(self, job_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        first = kind not in self.rows_seen
        self.rows_seen.add(kind)
        if self.row_error is not None:
            return
        self.pending_rows.append((kind, rows, first))
        self.pending_count += len(rows)
        if self.pending_count > MAX_PENDING_ROWS:
            self.finish_writes()  # back-pressure only past the bound
        else:
            self._write_rows(wait=False)

    def _write_rows(self, *, wait: bool) -> None:
        """Write pending rows, in order; without `wait`, stop at the first outage."""
        w = self.worker
        while self.pending_rows and self.row_error is None:
            if not w.writer.idle():
                if not wait:
                    return
                w.writer.flush()
            kind, rows, first = self.pending_rows[0]
            save = functools.partial(w.store.save_rows, self.job_id, kind, rows, first=first)
            try:
                w._retry_db(save, "rows") if wait else save()
            except Exception as exc:
                if db_unavailable(exc) or redis_unavailable(exc):
                    w.store.reset()
                    if wait:
                        raise  # a forced stop while the database is down
                    return
                # Rows the store refuses are the job's fault: it fails, the worker carries on.
                w.store.reset()
                self.row_error = f"rows of kind {kind!r} refused: {type(exc).__name__}: {exc}"[:500]
                self.pending_rows.clear()
                return
            self.pending_rows.pop(0)
            self.pending_count -= len(rows)

    def finish_writes(self) -> None:
        """Write everything still pending, waiting out an outage (the job has ended)."""
        self._write_rows(wait=True)
        if self.pending_progress is not None:
            self.worker.writer.flush()
            self._write_progress()

    def job_result(self, job_id: str) -> Any:
        w = self.worker
        if w.writer.success_pending(job_id):  # its success is queued for the group commit
            w.writer.flush()
        return w._retry_db(lambda: w.store.result(job_id), "job_result")

    def sent(self) -> None:
        self.worker.job_sent([(self.delivery, self.job_id)])

    @property
    def poll_interval(self) -> float:  # type: ignore[override]
        w = self.worker
        return poll_interval(holds_prefetched=w.holds_prefetched, hold=w.settings.prefetch_hold)

    def poll(self) -> Abort:
        """The periodic duties (`worker.duties`), in order; the abort they call for."""
        w = self.worker
        w.ops.tick()  # the supervisor is alive while the executor works (systemd watchdog)
        self.write_pending()
        now = time.monotonic()
        self.hold_prefetched(now)
        if now - self.last_cancel_check >= CANCEL_CHECK_S:
            self.last_cancel_check = now
            w.maintenance()
            if not w._cancel_current and self._cancel_requested():
                w._cancel_current = True
                self.cancel_since = now
        if w.force:
            return "kill"
        if w._cancel_current:
            return cancel_abort(now=now, cancel_since=self.cancel_since)
        if not w.stopping:
            return None
        return shutdown_abort(now=now, stop_since=w._stop_since, grace=w.settings.shutdown_grace)

    def write_pending(self) -> None:
        """Write what waits (rows, progress) without waiting for the database."""
        self._write_rows(wait=False)
        self._write_progress()

    def hold_prefetched(self, now: float) -> None:
        """Prepare the jobs taken ahead, or hand them back once this one has run long."""
        # A long job: the prefetched one must not wait behind it (another worker may be
        # idle, and a higher-priority job may arrive before this one ends), unless the
        # executor is preparing it.
        w = self.worker
        w.prepare_ahead()
        if w.prefetcher.prepared:
            return
        hold = w.settings.prefetch_hold
        if hold_expired(
            now=now, started=self.started, hold=hold, holds_prefetched=w.holds_prefetched
        ):
            w._log.debug("long job; prefetched job released", job_id=self.job_id)
            w.release_prefetched(wait=False)

    def _cancel_requested(self) -> bool:
        w = self.worker
        try:
            # The mark stays until the job leaves flight (stoker.lua's `forget`).
            return bool(w.client.sismember(w.keys.cancel, self.job_id))
        except redis.RedisError:
            return False
