"""Batches: several jobs of one processor run in one `process_batch` call.

A batch is taken in one atomic fetch (`stoker.lua`: the jobs of the first job's processor
right behind it in the same queue). Its rules:

- Every member keeps its own row, attempt, progress, rows, result, retry and failure:
  members are admitted and settled one by one, exactly as single jobs are.
- A batch that fails as a whole (the call raised, the executor crashed, the batch ran
  past its timeout) is run again at once in halves, down to single jobs, before any
  attempt is charged: the job at fault ends up alone and only it is charged (`split`).
  Delivery counts and the poison-pill rule stay per job (a killed worker's batch is
  recovered member by member).
- A stop (shutdown, forced or not) interrupts the whole batch: every member is requeued,
  none charged.
- A member cancelled while the batch runs shares its batchmates' call, so it runs on;
  unless it succeeds, it is settled as cancelled.
- The batch's timeout is the shortest of its members' (`batch_timeout`): no job runs
  past its own timeout; a batch cut short by it is run again in halves like any other
  whole-batch failure, so the others get their own time alone if need be.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import redis

from worker.duties import CANCEL_CHECK_S, Abort, cancel_abort, poll_interval, shutdown_abort
from worker.execution import Task
from worker.executor import JobHandler
from worker.outcome import Outcome
from worker.protocol import BadPayload, utcnow
from worker.running import RunningJob, Supervisor

T = TypeVar("T")


def split(members: list[T]) -> tuple[list[T], list[T]]:
    """Halves of a batch that failed as a whole (the first half the larger)."""
    half = (len(members) + 1) // 2
    return members[:half], members[half:]


def batch_timeout(timeouts: list[float | None]) -> float | None:
    """The shortest member timeout (None: no member has one)."""
    limits = [t for t in timeouts if t]
    return min(limits) if limits else None


class RunningBatch(JobHandler):
    """The supervisor's side of a running batch: each member's own `RunningJob` for
    its progress, rows and results; the duties once for the whole batch."""

    def __init__(self, worker: Supervisor, members: list[RunningJob]) -> None:
        self.worker = worker
        self.members = {m.job_id: m for m in members}
        self.cancelled: set[str] = set()
        self.last_cancel_check = 0.0
        self.cancel_since = 0.0

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        if (member := self.members.get(job_id)) is not None:
            member.progress(job_id, fraction, stage)

    def rows(self, job_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        if (member := self.members.get(job_id)) is not None:
            member.rows(job_id, kind, rows)

    def job_result(self, job_id: str) -> Any:
        return next(iter(self.members.values())).job_result(job_id)

    def stop_requested(self) -> bool:
        return self.poll() is not None

    def sent(self) -> None:
        self.worker.job_sent([(m.delivery, m.job_id) for m in self.members.values()])

    @property
    def poll_interval(self) -> float:  # type: ignore[override]
        w = self.worker
        return poll_interval(holds_prefetched=w.holds_prefetched, hold=w.settings.prefetch_hold)

    def finish_writes(self) -> None:
        for member in self.members.values():
            member.finish_writes()

    def poll(self) -> Abort:
        """The duties of `worker.duties`, once for the batch."""
        w = self.worker
        w.ops.tick()
        for member in self.members.values():
            member.write_pending()
        now = time.monotonic()
        # The first member started with the batch: its hold rule is the batch's.
        next(iter(self.members.values())).hold_prefetched(now)
        if now - self.last_cancel_check >= CANCEL_CHECK_S:
            self.last_cancel_check = now
            w.maintenance()
            self._check_cancels(now)
        if w.force:
            return "kill"
        if len(self.cancelled) == len(self.members):
            return cancel_abort(now=now, cancel_since=self.cancel_since)
        if not w.stopping:
            return None
        return shutdown_abort(now=now, stop_since=w._stop_since, grace=w.settings.shutdown_grace)

    def _check_cancels(self, now: float) -> None:
        w = self.worker
        ids = list(self.members)
        try:
            marks = w.client.smismember(w.keys.cancel, ids)
        except redis.RedisError:
            return
        for job_id, marked in zip(ids, marks, strict=True):
            if marked and job_id not in self.cancelled:
                self.cancelled.add(job_id)
                w._log.info("batch member cancelled; it stops with its batch", job_id=job_id)
        if len(self.cancelled) == len(self.members) and not self.cancel_since:
            self.cancel_since = now


def run_batch(worker: Any, members: list[tuple[Any, Any, Any]]) -> None:
    """Run admitted jobs `(job, delivery, log)` of one processor as a batch and settle
    each (`worker` is the `Worker`)."""
    started_at = utcnow()
    for job, delivery, jlog in members:
        raw = delivery.raw.decode("utf-8")
        worker.writer.started(job, delivery.queue, worker.worker_id, started_at, payload=raw)
        jlog.info("job started", attempt=job.attempts + 1, batch=len(members))
        worker.ops.job_started(delivery.queue, job, started_at)
    cancelled: set[str] = set()
    outcomes = _attempt(worker, members, cancelled)
    if worker.stopping or any(o.kind == "interrupted" for o in outcomes.values()):
        worker.release_prefetched()  # before the members are requeued, keeping the order
    for job, delivery, jlog in members:
        outcome = outcomes[job.id]
        worker.ops.job_ended(job.processor, outcome)
        if job.id in cancelled and not outcome.succeeded:
            outcome = Outcome(
                "interrupted",
                error_type="Cancelled",
                message="cancelled while its batch ran",
                duration=outcome.duration,
            )
        worker.settle(
            delivery,
            job,
            job.attempts + 1,
            outcome,
            started_at,
            jlog,
            cancelled=job.id in cancelled,
        )


def _attempt(
    worker: Any, members: list[tuple[Any, Any, Any]], cancelled: set[str]
) -> dict[str, Outcome]:
    """Each member's outcome; a batch that failed as a whole is run again in halves."""
    if len(members) == 1:
        job, delivery, jlog = members[0]
        outcome = worker.execute_one(job, delivery, jlog)
        if worker._cancel_current:
            cancelled.add(job.id)
        return {job.id: outcome}
    handlers = [RunningJob(worker, job.id, delivery) for job, delivery, _ in members]
    batch = RunningBatch(worker, handlers)
    tasks = [Task.of(job, worker.worker_id) for job, _, _ in members]
    timeout = batch_timeout([worker.timeout_of(job) for job, _, _ in members])
    worker.current = members[0][0]  # what health and the heartbeat show as running
    try:
        result = worker.executor.execute_batch(tasks, timeout, batch)
    finally:
        worker.current = None
    batch.finish_writes()
    cancelled |= batch.cancelled
    if isinstance(result, list):
        return {
            job.id: checked_rows(handler, outcome)
            for (job, _, _), handler, outcome in zip(members, handlers, result, strict=True)
        }
    worker.ops.restarts_since(result.kind)
    if result.kind == "interrupted" or worker.stopping:
        return {job.id: result for job, _, _ in members}
    first, second = split(members)
    worker._log.warning(
        "batch failed as a whole; running it again in halves",
        size=len(members),
        error_type=result.error_type,
        error=(result.message or "")[:200],
    )
    return {**_attempt(worker, first, cancelled), **_attempt(worker, second, cancelled)}


def checked_rows(handler: RunningJob, outcome: Outcome) -> Outcome:
    """A success whose rows the store refused fails (as for a single job)."""
    if handler.row_error is not None and outcome.succeeded:
        return Outcome(
            "error",
            error_type="InvalidRows",
            message=handler.row_error,
            permanent=True,
            duration=outcome.duration,
        )
    return outcome


def fill(worker: Any, first: Any, queue: str, have: int) -> list[tuple[Any, Any, Any]]:
    """More admitted jobs for a batch that is not full, for up to `WORKER_BATCH_WAIT_MS`
    (the batch of `first`, taken from `queue`, holds `have`)."""
    size = worker.broker.batch_sizes.get(first.processor, 1)
    deadline = time.monotonic() + worker.settings.batch_wait_ms / 1000
    more: list[tuple[Any, Any, Any]] = []
    while have + len(more) < size and not worker.stopping:
        limit = size - have - len(more)
        got = worker._retry_redis(lambda n=limit: worker.broker.more(queue, first.processor, n))
        more += [a for d in got if (a := worker.admit(d)) is not None]
        if not got:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.001)
    return more


def prepare_ahead(worker: Any) -> None:
    """Hand the jobs taken ahead to the executor to prepare while the current one runs
    (only processors that prepare; the prefetcher then keeps them: `worker.prefetch`)."""
    ahead, executor = worker.prefetcher, worker.executor
    if not executor.preparers or ahead.prepared:
        return
    ahead.collect()
    tasks = []
    for delivery in ahead.next or ():
        try:
            job, _ = worker.parse(delivery)
        except BadPayload:
            continue
        if job.processor in executor.preparers and not delivery.duplicate_of:
            tasks.append(Task.of(job, worker.worker_id))
    if tasks:
        ahead.prepared = True
        executor.prepare(tasks)
