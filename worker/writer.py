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
from datetime import datetime
from typing import Any

import structlog

from worker.backoff import db_unavailable, redis_unavailable, retry_while_unavailable
from worker.broker import Broker, Delivery
from worker.lifecycle import JobStatus
from worker.outcome import Outcome
from worker.protocol import Job, utcnow
from worker.store import JobStore

log = structlog.get_logger("stoker.writer")


class OutcomeWriter:
    """A background writer of starts and successes for one worker."""

    def __init__(
        self, store: JobStore, broker: Broker, *, max_pending: int = 256, gather_s: float = 0.005
    ) -> None:
        self.store = store
        self.broker = broker
        self.gather_s = gather_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._pending_success: set[str] = set()
        self._error: BaseException | None = None
        self.abandon = False
        """Set on a forced stop: give up on an unreachable database or Redis."""
        self._thread = threading.Thread(target=self._run, name="stoker-writer", daemon=True)

    def start(self) -> None:
        """Start the writing thread (once; the constructor only constructs)."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    def started(
        self,
        job: Job,
        queue_name: str,
        worker_id: str,
        started_at: datetime,
        payload: str | None = None,
    ) -> None:
        """The job's `running` mark; `payload` is its text as delivered (the ledger's copy)."""
        self._put(("start", (job, queue_name, worker_id, started_at), {"payload": payload}, None))

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
            "status": JobStatus.SUCCEEDED,
            "started_at": started_at,
            # When it finished, not when the group commit gets to it.
            "finished_at": utcnow(),
        }
        self._put(("finish", (job_id,), kwargs, (delivery, job_id)))

    def success_pending(self, job_id: str) -> bool:
        """Whether a success of `job_id` is queued but not yet committed."""
        with self._lock:
            return job_id in self._pending_success

    def idle(self) -> bool:
        """Whether everything handed over is committed (never blocks)."""
        return self._queue.unfinished_tasks == 0

    def flush(self) -> None:
        """Wait until everything handed over is committed and acknowledged."""
        self._queue.join()
        self._raise_failure()

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued (the sentinel comes after it), then stop the thread."""
        if self._thread.ident is None:  # never started: nothing was handed over
            self.broker.close()
            self.store.close()
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.broker.close()
            self.store.close()

    def _put(self, item: Any) -> None:
        self._raise_failure()
        self._queue.put(item)

    def _raise_failure(self) -> None:
        # A write that failed for good stops the worker, as a synchronous write would;
        # its jobs stay in flight and are recovered.
        if self._error is not None:
            raise RuntimeError("the outcome writer failed") from self._error

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
                if self._error is None:
                    self._commit(batch)
            except Exception as exc:
                if self.abandon:
                    log.error("outcomes abandoned on forced stop", error=str(exc)[:200])
                else:
                    log.error("outcome writer failed", error=str(exc)[:200])
                    self._error = exc
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _commit(self, batch: list[Any]) -> None:
        ops = [(kind, args, kwargs) for kind, args, kwargs, _ in batch]
        acks = [ack for *_, ack in batch if ack is not None]
        self._retry(lambda: self.store.write_batch(ops), "write", database=True)
        with self._lock:
            for _, job_id in acks:
                self._pending_success.discard(job_id)
        if acks:
            self._retry(lambda: self.broker.ack_many(acks), "ack", database=False)

    def _retry(self, fn: Any, what: str, *, database: bool) -> None:
        def on_retry(exc: BaseException, delay: float) -> None:
            message = (
                "database unavailable; outcome kept until it returns"
                if database
                else "redis unavailable; retrying"
            )
            log.warning(message, op=what, error=str(exc)[:200], retry_in_s=delay)
            if database:
                self.store.reset()

        retry_while_unavailable(
            fn,
            unavailable=db_unavailable if database else redis_unavailable,
            give_up=lambda: self.abandon,
            on_retry=on_retry,
        )
