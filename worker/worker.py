"""The worker: a supervisor that fetches jobs, hands them to an executor, records outcomes.

One loop, one job at a time: fetch -> admit -> run -> settle.

1. fetch: atomically move the oldest job of the first non-empty queue (strict priority)
   into this worker's in-flight list, promoting due retries first (`worker.idle`: how
   an idle worker waits; `worker.prefetch`: the next job taken while one runs).
2. admit: validate the payload (bad ones go to the failed list with a readable reason),
   skip jobs already finished, defer `run_at` jobs not yet due.
3. run: on the executor (its own process by default) with its timeout and the periodic
   duties (`worker.running`, `worker.duties`).
4. settle: `lifecycle.decide`, then `transitions` records the outcome durably and only
   then moves the job in Redis. Nothing leaves flight before its outcome is durable.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime
from typing import Any, TypeVar

import redis
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from config import Settings
from processors.base import ConfigError
from processors.registry import known_names, load_configured
from worker import signals
from worker.backoff import fatal_reason, startup_exit
from worker.batches import checked_rows, fill, prepare_ahead, run_batch
from worker.broker import Broker, Delivery
from worker.connection import default_worker_id, redis_client
from worker.execution import Task
from worker.executor import Executor, make_executor
from worker.heartbeat import Heartbeat
from worker.keys import Keys, queue_name_error
from worker.lifecycle import JobStatus, decide, log_settled
from worker.logs import redact_url
from worker.ops import Ops
from worker.outcome import Outcome
from worker.prefetch import Prefetcher
from worker.protocol import BadPayload, Job, parse_payload, utcnow
from worker.reconciler import Reconciler
from worker.recovery import Recovery
from worker.resilience import Resilience
from worker.retry_policy import RetryPolicy
from worker.running import RunningJob
from worker.stats import Stats
from worker.store import JobStore
from worker.transitions import Transitions
from worker.wakeup import IdleWait
from worker.writer import OutcomeWriter

log = structlog.get_logger("stoker.worker")

T = TypeVar("T")


class Worker:
    """A long-lived worker process. `run()` returns the process exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        burst: bool = False,
        client: redis.Redis | None = None,
        store: JobStore | None = None,
        executor: Executor | None = None,
        worker_id: str | None = None,
        redis_server: Any = None,
    ) -> None:
        """Construct only: connections open and threads start in `run()`. `client` is
        made from the settings when not given (it connects on first use); `redis_server`
        is the embedded server the caller joined (`connection.connect_redis`), released
        when the worker closes."""
        self.settings = settings
        self.burst = burst
        self.worker_id = worker_id or settings.id or default_worker_id()
        self.keys = Keys.from_settings(settings)
        self.queues = list(settings.queues)
        self._redis_server = redis_server
        self.client = client = client or redis_client(settings)
        self.broker = self._broker(client)
        self.store = store or JobStore(settings.resolved_database_url)
        self.executor = executor or make_executor(settings, self.worker_id)
        self.policy, self.stats = RetryPolicy.from_settings(settings), Stats()
        self.heartbeat = Heartbeat(client, self.keys, self.worker_id, settings, self.queues)
        self.recovery = Recovery(self.broker, self.store, settings, self.worker_id)
        self.reconciler = Reconciler(client, self.keys, self.store.engine, settings, self.worker_id)
        self._log = log.bind(worker_id=self.worker_id)
        resilience = Resilience(
            self._log,
            forced=lambda: self.force,
            on_redis_lost=self._on_redis_lost,
            on_db_lost=self._on_db_lost,
        )
        self._retry_redis, self._retry_db = resilience.redis, resilience.db
        # The writer thread gets its own store and broker (each holds one connection).
        self.writer = OutcomeWriter(JobStore(self.store.url), self._broker(client))
        self.transitions = Transitions(
            store=self.store,
            broker=self.broker,
            writer=self.writer,
            worker_id=self.worker_id,
            retry_db=self._retry_db,
            retry_redis=self._retry_redis,
        )
        self.stopping = self.force = self._cancel_current = self._registered = False
        self._stop_since: float | None = None
        self.current: Job | None = None
        self.prefetcher = Prefetcher(
            self.broker,
            self.queues,
            enabled=settings.prefetch,
            retry_redis=self._retry_redis,
            flush_outcomes=self.writer.flush,
        )
        self.idle = IdleWait(
            self.broker,
            self.queues,
            poll_interval=settings.poll_interval,
            retry_redis=self._retry_redis,
            on_lost=self._on_wait_lost,
        )
        self._last_maintenance = 0.0
        self.ops = Ops(self)  # metrics, health, systemd notify, retention (worker/ops.py)
        self.reconciler.on_restored = lambda r: self.ops.restored(r.where, r.reason)

    def _on_wait_lost(self) -> None:
        self.prefetcher.orphan_check_due = True

    def _on_redis_lost(self) -> None:
        self.reconciler.redis_lost()
        self.ops.tick()  # waiting out an outage is not a hang
        self.prefetcher.orphan_check_due = True
        server = self._redis_server
        if server is not None and server.revive():
            self._log.warning("embedded redis restarted", url=server.url)

    def _on_db_lost(self) -> None:
        self.store.reset()
        self.ops.tick()

    def _broker(self, client: redis.Redis) -> Broker:
        cfg = self.settings
        limits = {"max_payload_bytes": cfg.max_payload_bytes, "failed_max": cfg.failed_max}
        return Broker(client, self.keys, self.worker_id, **limits)

    # Lifecycle
    def install_signal_handlers(self) -> None:
        signals.install(self.request_stop, lambda: self.stopping)

    def request_stop(self, *, force: bool = False, reason: str = "") -> None:
        """Stop fetching; `force` also stops the running job now."""
        if force:
            self.force = True
            self.writer.abandon = True
        if not self.stopping:
            self.stopping = True
            self._stop_since = time.monotonic()
            self.ops.stopping()
        self._log.info(
            "shutdown requested",
            reason=reason,
            force=self.force,
            grace_s=self.settings.shutdown_grace,
            running=self.current.id if self.current else None,
        )

    def setup(self) -> None:
        self.writer.start()
        self.settings.media_root.mkdir(parents=True, exist_ok=True)
        self.settings.output_dir.mkdir(parents=True, exist_ok=True)
        for queue in self.queues:
            if (error := queue_name_error(queue)) is not None:
                raise ConfigError(error)
        # Nothing is held yet: the first stop request ends any wait for Redis or the database.
        self._retry_db(self.store.migrate, "migrate", give_up=lambda: self.stopping)
        # Configured processor classes are the user's: a bad path fails here, loudly.
        load_configured(self.settings.processors)
        key = self.keys.heartbeat(self.worker_id)
        if self._retry_redis(lambda: self.client.exists(key), give_up=lambda: self.stopping):
            raise ConfigError(
                f"worker id {self.worker_id!r} is in use by a live worker; ids must be unique"
            )
        self.ops.start()
        self.heartbeat.beat()
        self._registered = True
        self.heartbeat.start()
        self.executor.start()
        self.broker.batch_sizes = dict(self.executor.batch_sizes)
        self.broker.queue_processors = dict(self.settings.queue_processors)
        self.heartbeat.fields["device"] = self.executor.device
        self._log.info(
            "stoker worker started",
            queues=self.queues,
            queue_keys=[self.keys.queue(q) for q in self.queues],
            failed_key=self.keys.failed,
            device=self.executor.device,
            isolation=self.settings.isolation,
            database=redact_url(self.store.url),
            redis=redact_url(self.client.connection_pool.connection_kwargs.get("host", "")),
            processors=sorted(known_names()),
            pid=os.getpid(),
            burst=self.burst,
        )
        self.maintenance(every=0.001)
        self.ops.ready()

    def run(self) -> int:
        try:
            self.setup()
        except Exception as exc:
            if (code := startup_exit(exc, stopping=self.stopping)) is None:
                raise
            with contextlib.suppress(Exception):
                self.close()
            if code == 0:
                self._log.warning("stopped before startup completed", error=str(exc)[:300])
            else:
                self._log.error("configuration error; not starting", error=fatal_reason(exc))
            return code
        try:
            self.loop()
        finally:
            self.close()
            self._log.info("stoker worker stopped", **self.stats.summary())
        return 0

    def close(self) -> None:
        self.idle.close()
        self.ops.close()
        self.writer.close()
        self.heartbeat.stop()
        try:
            self.executor.close()
        finally:
            with contextlib.suppress(redis.RedisError):
                self._unregister()
            self.broker.close()
            self.store.close()
            if self._redis_server is not None:
                self._redis_server.stop()

    def _unregister(self) -> None:
        """Forget this worker, unless a job is still in flight: that one is left for
        recovery by a live worker once the heartbeat expires."""
        if not self._registered:
            return
        left = sum(self.client.llen(self.keys.inflight(self.worker_id, q)) for q in self.queues)
        if left:
            self._log.warning("jobs left in flight for recovery", count=left)
            return
        self.heartbeat.unregister()

    # The loop
    def loop(self) -> None:
        try:
            self._loop()
        finally:
            with contextlib.suppress(redis.RedisError):
                self.release_prefetched()

    def _loop(self) -> None:
        while not self.stopping:
            self.ops.tick()
            self.maintenance()
            self.idle.settle()
            self.prefetcher.collect()
            if self.prefetcher.orphan_check_due:
                self.prefetcher.reclaim_orphans()
            if (ahead := self.prefetcher.take()) is not None:
                self.handle_batch(ahead)
                continue
            res = self._retry_redis(lambda: self.broker.fetch(self.queues))
            batch = res.batch
            if not batch:
                if self.burst:
                    return
                if (delivery := self.idle.wait(res.next_due)) is None:
                    continue
                batch = [delivery]
            self.handle_batch(batch)

    def job_sent(self, started: list[tuple[Delivery, str]]) -> None:
        """The executor has the jobs: settle the cancelled waits, then prefetch."""
        self.idle.settle()
        if not self.stopping:
            self.prefetcher.send_many(started)

    @property
    def holds_prefetched(self) -> bool:
        return self.prefetcher.holds

    def release_prefetched(self, *, wait: bool = True) -> None:
        self.prefetcher.release(wait=wait)

    def maintenance(self, *, every: float = 0.0) -> None:
        """Periodic work between jobs and while one runs: recover dead workers' jobs."""
        now = time.monotonic()
        interval = every or max(0.5, self.settings.heartbeat_ttl / 6)
        if now - self._last_maintenance < interval:
            return
        self._last_maintenance = now
        try:
            self.recovery.run(self.stats)
        except (redis.RedisError, OperationalError, DBAPIError) as exc:
            self._log.warning("recovery skipped", error=str(exc))
        try:  # the ledger: restore jobs Redis lost (worker/reconcile.py)
            self.reconciler.tick()
        except (redis.RedisError, OperationalError, DBAPIError) as exc:
            self._log.warning("reconcile skipped", error=str(exc))

    # One job (or batch): admit -> run -> settle
    def handle(self, delivery: Delivery) -> None:
        """Run one delivered job to a recorded (or handed-over) outcome."""
        self.handle_batch([delivery])

    def handle_batch(self, deliveries: list[Delivery]) -> None:
        """Run jobs taken together (one job, or a batch of one processor: see
        `worker.batches`) to recorded (or handed-over) outcomes."""
        self.idle.ran_job()
        if self.idle.unsettled and not self.executor.reports_sent():
            self.idle.settle()  # not after a start: the other queues' waits end first
        admitted = [a for d in deliveries if (a := self.admit(d)) is not None]
        if admitted and self.settings.batch_wait_ms:
            admitted += fill(self, admitted[0][0], admitted[0][1].queue, len(admitted))
        if len(admitted) == 1:
            self.run_one(*admitted[0])
        elif admitted:
            run_batch(self, admitted)

    def parse(self, delivery: Delivery) -> tuple[Job, bool]:
        """`protocol.parse_payload` under this worker's settings (raises BadPayload)."""
        return parse_payload(
            delivery.raw,
            default_processor=self.settings.queue_processors.get(delivery.queue),
            max_bytes=self.settings.max_payload_bytes,
        )

    def admit(self, delivery: Delivery) -> tuple[Job, Delivery, Any] | None:
        """The job to run, or None when the delivery was settled without running it
        (a duplicate, a bad payload, an unknown processor, a `run_at` not due yet, a job
        already finished)."""
        if delivery.duplicate_of:
            self._log.warning(
                "duplicate job id is already running elsewhere; dropped",
                holder=delivery.duplicate_of,
                queue=delivery.queue,
            )
            self._retry_redis(lambda: self.broker.drop_duplicate(delivery))
            self.stats.skipped += 1
            return None
        try:
            job, generated = self.parse(delivery)
        except BadPayload as exc:
            self.reject(delivery, exc.reason, "BadPayload", exc.job_id, exc.data)
            return None
        if generated:
            payload = job.to_payload()
            delivery = self._retry_redis(lambda: self.broker.rewrite(delivery, payload))
        jlog = self._log.bind(job_id=job.id, processor=job.processor, queue=delivery.queue)
        if job.processor not in known_names():
            known = ", ".join(sorted(known_names()))
            reason = f"unknown processor {job.processor!r}; known: {known}"
            self.reject(delivery, reason, "UnknownProcessor", job.id, job.model_dump(mode="json"))
            return None
        if job.run_at and job.run_at.timestamp() > time.time() + 0.001:
            if self.transitions.defer(delivery, job) == JobStatus.QUEUED:
                self.stats.deferred += 1
                jlog.info("job deferred", run_at=job.run_at.isoformat())
            else:
                jlog.info("job cancelled before it was deferred")
            return None
        if delivery.named and job.attempts == 0:
            return job, delivery, jlog  # named by this fetch: it has no row to check
        if self.writer.success_pending(job.id):
            self.writer.flush()
        status = self._retry_db(lambda: self.store.status_of(job.id), "status")
        if status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED):
            jlog.info("job already finished; acknowledged without running", status=status)
            self._retry_redis(lambda: self.broker.ack(delivery, job.id))
            self.stats.skipped += 1
            return None
        return job, delivery, jlog

    def run_one(self, job: Job, delivery: Delivery, jlog: Any) -> None:
        """Mark the job running, run one attempt on the executor, settle its outcome."""
        started_at, attempt = utcnow(), job.attempts + 1
        # The `running` mark is written by the group-committing writer (in order, before
        # this job's outcome); a recorded success still cannot be overwritten by it.
        raw = delivery.raw.decode("utf-8")
        self.writer.started(job, delivery.queue, self.worker_id, started_at, payload=raw)
        jlog.info("job started", attempt=attempt, deliveries=delivery.deliveries)
        self.ops.job_started(delivery.queue, job, started_at)
        outcome = self.execute_one(job, delivery, jlog)
        self.ops.job_ended(job.processor, outcome)
        if self.stopping or outcome.kind == "interrupted":
            # Before this job is requeued at the front, so the two keep their order.
            self.release_prefetched()
        self.settle(delivery, job, attempt, outcome, started_at, jlog)

    def execute_one(self, job: Job, delivery: Delivery, jlog: Any) -> Outcome:
        """One attempt of one job on the executor; its outcome (rows written)."""
        self.current, self._cancel_current = job, False
        handler = RunningJob(self, job.id, delivery)
        task = Task.of(job, self.worker_id)
        try:
            outcome = self.executor.execute(task, self.timeout_of(job), handler)
        finally:
            self.current = None
        handler.finish_writes()
        return checked_rows(handler, outcome)

    def timeout_of(self, job: Job) -> float | None:
        timeout = job.timeout if job.timeout is not None else self.settings.job_timeout
        return timeout or None

    def prepare_ahead(self) -> None:
        """Have the executor prepare the jobs taken ahead while the current one runs."""
        prepare_ahead(self)

    def settle(
        self,
        delivery: Delivery,
        job: Job,
        attempt: int,
        outcome: Outcome,
        started_at: datetime,
        jlog: Any,
        *,
        cancelled: bool | None = None,
    ) -> None:
        """Decide what the outcome means (`lifecycle.decide`), then record it durably and
        move the job in Redis (`lifecycle.Transitions`)."""
        decision = decide(
            outcome,
            attempt=attempt,
            max_attempts=job.max_attempts or self.policy.max_attempts,
            policy=self.policy,
            cancelled=self._cancel_current if cancelled is None else cancelled,
        )
        if outcome.kind == "timeout":
            self.stats.timeouts += 1
        elif outcome.kind == "crashed":
            self.stats.crashes += 1
        if decision.action != "succeed":
            self.writer.flush()  # rare outcomes stay synchronous, after everything before them
        status = self.transitions.settle(decision, delivery, job, attempt, outcome, started_at)
        if (disposition := self.stats.settled(decision.action, status)) is not None:
            self.ops.settled(delivery.queue, job.processor, disposition, outcome.kind)
        log_settled(jlog, decision, status, outcome, attempt)

    def reject(
        self, delivery: Delivery, reason: str, error_type: str, job_id: str | None, data: Any
    ) -> None:
        """A job that can never run: straight to the failed list (and a failed row)."""
        self.transitions.reject(delivery, reason, error_type, job_id, data)
        self.stats.rejected += 1
        self.ops.settled(delivery.queue, None, "rejected", None)
        self._log.error(
            "job rejected",
            job_id=job_id,
            error_type=error_type,
            error=reason,
            queue=delivery.queue,
        )
