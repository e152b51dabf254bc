"""Carrying out a job's transitions (see `worker.lifecycle` for the decision): the durable
SQL write first, then the Redis move, each retried while its server is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from worker.broker import Broker, Delivery
from worker.failed import failed_entry
from worker.lifecycle import Decision, JobStatus
from worker.outcome import Outcome
from worker.protocol import Job
from worker.store import JobStore
from worker.writer import OutcomeWriter


class Transitions:
    """Carries out each transition of a job: the durable SQL write first, then the Redis
    move, each retried while its server is unreachable (`retry_db`, `retry_redis`).

    Successes go to the group-committing writer, which commits and then acknowledges them;
    every other transition is synchronous (the caller flushes the writer first, keeping
    the order). A move that finds the job's cancellation asked meanwhile (retry, requeue,
    defer) leaves it out of every queue and records it `cancelled` instead: the methods
    return the status the job ended in.
    """

    def __init__(
        self,
        *,
        store: JobStore,
        broker: Broker,
        writer: OutcomeWriter,
        worker_id: str,
        retry_db: Callable[[Callable[[], Any], str], Any],
        retry_redis: Callable[[Callable[[], Any]], Any],
    ) -> None:
        self.store = store
        self.broker = broker
        self.writer = writer
        self.worker_id = worker_id
        self.retry_db = retry_db
        self.retry_redis = retry_redis

    def settle(
        self,
        decision: Decision,
        delivery: Delivery,
        job: Job,
        attempt: int,
        outcome: Outcome,
        started_at: datetime,
    ) -> JobStatus:
        """Record `decision` for an attempt that ended with `outcome`; the status it left."""
        if decision.action == "succeed":
            self.writer.succeeded(
                delivery,
                job.id,
                attempt=attempt,
                worker_id=self.worker_id,
                outcome=outcome,
                started_at=started_at,
            )
            return JobStatus.SUCCEEDED
        run_at = datetime.fromtimestamp(decision.due, UTC) if decision.due is not None else None
        self.retry_db(
            lambda: self.store.finish(
                job.id,
                attempt=attempt,
                worker_id=self.worker_id,
                outcome=outcome,
                status=decision.status.value,
                started_at=started_at,
                run_at=run_at,
            ),
            "finish",
        )
        if decision.action == "cancel":
            self.retry_redis(lambda: self.broker.ack(delivery, job.id))
            return JobStatus.CANCELLED
        if decision.action == "requeue":
            payload = job.to_payload()
            moved = self.retry_redis(lambda: self.broker.requeue_front(delivery, job.id, payload))
            return JobStatus.QUEUED if moved else self.cancelled_meanwhile(job.id)
        if decision.action == "retry":
            assert decision.due is not None
            due = decision.due
            payload = job.model_copy(update={"attempts": attempt}).to_payload()
            moved = self.retry_redis(lambda: self.broker.schedule(delivery, job.id, payload, due))
            return JobStatus.RETRYING if moved else self.cancelled_meanwhile(job.id)
        entry = failed_entry(
            job_id=job.id,
            job={**job.model_dump(mode="json"), "attempts": attempt},
            queue=delivery.queue,
            outcome=outcome,
            attempts=attempt,
            worker_id=self.worker_id,
            deliveries=delivery.deliveries,
        )
        self.retry_redis(lambda: self.broker.fail(delivery, job.id, entry))
        return JobStatus.FAILED

    def defer(self, delivery: Delivery, job: Job) -> JobStatus:
        """A `run_at` job not due yet: its row, then the scheduled set (score = due time)."""
        assert job.run_at is not None
        self.retry_db(lambda: self.store.enqueued(job, delivery.queue), "defer")
        due = job.run_at.timestamp()
        payload = job.model_copy(update={"run_at": None}).to_payload()
        if self.retry_redis(lambda: self.broker.schedule(delivery, job.id, payload, due)):
            return JobStatus.QUEUED
        return self.cancelled_meanwhile(job.id)

    def reject(
        self, delivery: Delivery, reason: str, error_type: str, job_id: str | None, data: Any
    ) -> JobStatus:
        """A job that can never run: a failed row (when it has an id), then the failed list."""
        if job_id:
            self.retry_db(
                lambda: self.store.failed_early(
                    job_id,
                    queue=delivery.queue,
                    reason=reason,
                    error_type=error_type,
                    data=data,
                    worker_id=self.worker_id,
                ),
                "reject",
            )
        outcome = Outcome("error", error_type=error_type, message=reason, permanent=True)
        # Anything but a decoded object (bad JSON, too deep, not UTF-8) is kept as raw text.
        entry = failed_entry(
            job_id=job_id,
            job=data if isinstance(data, dict) else None,
            queue=delivery.queue,
            outcome=outcome,
            attempts=0,
            worker_id=self.worker_id,
            raw=delivery.raw,
            deliveries=delivery.deliveries,
        )
        self.retry_redis(lambda: self.broker.fail(delivery, job_id, entry))
        return JobStatus.FAILED

    def cancelled_meanwhile(self, job_id: str) -> JobStatus:
        """Its cancellation was asked while the attempt ran: it left flight; the row says so."""
        self.retry_db(lambda: self.store.cancel(job_id), "cancel")
        return JobStatus.CANCELLED
