"""Group commits off the fetch loop: job starts and successes, then their acknowledgements.

The supervisor's loop hands each `running` mark and each success to this writer and goes
on to the next job. A thread with its own database connection writes whatever has
queued up in one transaction, and only after that commit acknowledges the successful
jobs in Redis (removing them from the in-flight list). So a job still leaves flight only
once its outcome is durable: if the worker dies first, the job is recovered and, its
success never recorded, run again. Other outcomes (retries, failures, shutdown requeues)
are rare and stay synchronous: the loop flushes the writer first, keeping the order.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from worker.broker import Broker, Delivery
from worker.outcome import Outcome
from worker.protocol import Job
from worker.store import JobStore

log = structlog.get_logger("stoker.writer")


@dataclass
class _Ack:
    delivery: Delivery
    job_id: str


class OutcomeWriter:
    """A background writer of starts and successes for one worker."""

    def __init__(
        self, store: JobStore, broker: Broker, *, max_pending: int = 256, gather_s: float = 0.005
    ) -> None:
        self.store = store
        self.gather_s = gather_s
        self.broker = broker
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._pending_success: set[str] = set()
        self._closing = False
        self.abandon = False
        """Set on a forced stop: give up on an unreachable database or Redis."""
        self._thread = threading.Thread(target=self._run, name="stoker-writer", daemon=True)
        self._thread.start()

    def started(self, job: Job, queue_name: str, worker_id: str, started_at: datetime) -> None:
        self._queue.put(("start", (job, queue_name, worker_id, started_at), {}, None))

    def succeeded(
        self,
        delivery: Delivery,
        job_id: str,
        *,
        attempt: int,
        worker_id: str,
        outcome: Outcome,
        started_at: datetime,
    ) -> None:
        with self._lock:
            self._pending_success.add(job_id)
        kwargs = {
            "attempt": attempt,
            "worker_id": worker_id,
            "outcome": outcome,
            "status": "succeeded",
            "started_at": started_at,
        }
        self._queue.put(("finish", (job_id,), kwargs, _Ack(delivery, job_id)))

    def success_pending(self, job_id: str) -> bool:
        """Whether a success of `job_id` is queued but not yet committed."""
        with self._lock:
            return job_id in self._pending_success

    def flush(self) -> None:
        """Wait until everything handed over is committed and acknowledged."""
        self._queue.join()

    def close(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        self._closing = True
        self._queue.put(None)
        self._thread.join(max(0.1, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first]
            # Gather for a few milliseconds: one transaction (and one burst of Python work,
            # which competes with the fetch loop for the GIL) serves many jobs.
            gather_until = time.monotonic() + self.gather_s
            while len(batch) < 512:
                try:
                    item = self._queue.get(timeout=max(0.0, gather_until - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    self._queue.task_done()
                    break
                batch.append(item)
            try:
                self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _commit(self, batch: list[Any]) -> None:
        ops = [(kind, args, kwargs) for kind, args, kwargs, _ in batch]
        acks = [ack for *_, ack in batch if ack is not None]
        if not self._retry(lambda: self.store.write_batch(ops), "write"):
            return
        with self._lock:
            for ack in acks:
                self._pending_success.discard(ack.job_id)
        if acks:
            self._retry(lambda: self._ack(acks), "ack")

    def _ack(self, acks: list[_Ack]) -> None:
        if len(acks) == 1:
            self.broker.ack(acks[0].delivery, acks[0].job_id)
            return
        pipe = self.broker.client.pipeline(transaction=False)
        for ack in acks:
            keys = [
                ack.delivery.inflight_key,
                self.broker.keys.running,
                self.broker.keys.deliveries,
            ]
            self.broker._script(keys=keys, args=["ack", ack.delivery.raw, ack.job_id], client=pipe)
        pipe.execute()

    def _retry(self, fn: Any, what: str) -> bool:
        delay = 0.1
        while True:
            try:
                fn()
                return True
            except (OperationalError, DBAPIError, redis.ConnectionError, redis.TimeoutError) as exc:
                if self.abandon:
                    log.error("outcomes abandoned on forced stop", op=what, error=str(exc)[:200])
                    return False
                is_db = isinstance(exc, OperationalError | DBAPIError)
                log.warning(
                    "database unavailable; outcome kept until it returns"
                    if is_db
                    else "redis unavailable; retrying",
                    op=what,
                    error=str(exc)[:200],
                    retry_in_s=delay,
                )
                if is_db:
                    self.store.reset()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
