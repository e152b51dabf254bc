"""The worker: a supervisor that fetches jobs, hands them to an executor, records outcomes.

One loop, one job at a time:

1. `fetch`: atomically move the oldest job of the first non-empty queue (strict priority)
   into this worker's in-flight list, promoting due retries first. With one queue an idle
   worker blocks on it (BLMOVE); with several it polls them.
2. Validate the payload; reject bad ones to the failed list with a readable reason.
3. Skip jobs whose success is already recorded; hand the `running` mark to the writer.
4. Run it on the executor (its own process by default) with its timeout.
5. Record the outcome, then move the job in Redis. Successes go to the writer thread,
   which group-commits them and only then acknowledges them; retries, failures and
   shutdown requeues are written synchronously, after the writer has caught up.
   Nothing leaves the in-flight list before its outcome is durable.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from config import Settings
from processors.base import ConfigError
from processors.registry import known_names, load_configured
from worker.backoff import (
    db_unavailable,
    fatal_reason,
    redis_unavailable,
    retry_while_unavailable,
)
from worker.broker import Broker, Delivery
from worker.execution import Task
from worker.executor import Abort, Executor, JobHandler, make_executor
from worker.failed import failed_entry
from worker.heartbeat import Heartbeat
from worker.keys import Keys, queue_name_error
from worker.ops import Ops
from worker.outcome import Outcome
from worker.protocol import BadPayload, Job, parse_payload, utcnow
from worker.reconciler import Reconciler
from worker.recovery import Recovery
from worker.retry_policy import RetryPolicy
from worker.stats import Stats
from worker.store import JobStore
from worker.writer import OutcomeWriter

log = structlog.get_logger("stoker.worker")

T = TypeVar("T")

#: How often a running job's cancel mark is checked (seconds).
CANCEL_CHECK_S = 0.5
#: How long a job asked to stop may take before its executor is killed (seconds).
STOP_BEFORE_KILL_S = 5.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def connect_redis(settings: Settings) -> tuple[redis.Redis, Any]:
    """A client for `REDIS_URL`, or for the data folder's shared embedded server (started
    if needed; the second value, whose `stop()` leaves it, shutting it down if last)."""
    if settings.redis_sentinels:
        from worker.connection import sentinel_client

        return sentinel_client(settings), None
    server = None
    url = settings.redis_url
    if not url:
        from worker.redis_server import EmbeddedServer

        server = EmbeddedServer(settings.data_dir, settings.embedded_port)
        url = server.acquire()
    client = redis.Redis.from_url(
        url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=30
    )
    return client, server


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
    ) -> None:
        self.settings = settings
        self.burst = burst
        self.worker_id = worker_id or settings.id or default_worker_id()
        self.keys = Keys.from_settings(settings)
        self.queues = list(settings.queues)
        self._redis_server = None
        if client is None:
            client, self._redis_server = connect_redis(settings)
        self.client = client
        self.broker = self._broker(client)
        self.store = store or JobStore(settings.resolved_database_url)
        self.executor = executor or make_executor(settings, self.worker_id)
        self.policy = RetryPolicy.from_settings(settings)
        self.stats = Stats()
        self.heartbeat = Heartbeat(client, self.keys, self.worker_id, settings, self.queues)
        self.recovery = Recovery(self.broker, self.store, settings, self.worker_id)
        self.reconciler = Reconciler(client, self.keys, self.store.engine, settings, self.worker_id)
        self._registered = False
        # The writer thread gets its own store and broker (each holds one connection).
        self.writer = OutcomeWriter(JobStore(self.store.url), self._broker(client))
        self.stopping = False
        self.force = False
        self._stop_since: float | None = None
        self.current: Job | None = None
        self._next: Delivery | None = None
        """A job prefetched while the current one runs (already in flight in Redis)."""
        self._prefetch_sent = False
        self._orphan_check_due = False
        self._cancel_current = False
        self._last_maintenance = 0.0
        self._log = log.bind(worker_id=self.worker_id)
        self.ops = Ops(self)  # metrics, health, systemd notify, retention (worker/ops.py)

    def _broker(self, client: redis.Redis) -> Broker:
        return Broker(
            client,
            self.keys,
            self.worker_id,
            max_payload_bytes=self.settings.max_payload_bytes,
            failed_max=getattr(self.settings, "failed_max", 0),
        )

    # Lifecycle
    def install_signal_handlers(self) -> None:
        from worker import signals

        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for signum in signals.pending:
            self._on_signal(signum, None)
        signals.pending.clear()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request_stop(force=self.stopping, reason=signal.Signals(signum).name)

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
        self.heartbeat.fields["device"] = self.executor.device
        self._log.info(
            "stoker worker started",
            queues=self.queues,
            queue_keys=[self.keys.queue(q) for q in self.queues],
            failed_key=self.keys.failed,
            device=self.executor.device,
            isolation=self.settings.isolation,
            database=_safe_url(self.store.url),
            redis=_safe_url(self.client.connection_pool.connection_kwargs.get("host", "")),
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
            reason = str(exc) if isinstance(exc, ConfigError) else fatal_reason(exc)
            stopped = self.stopping and (redis_unavailable(exc) or db_unavailable(exc))
            if reason is None and not stopped:
                raise
            with contextlib.suppress(Exception):
                self.close()
            if stopped:
                self._log.warning("stopped before startup completed", error=str(exc)[:300])
                return 0
            self._log.error("configuration error; not starting", error=reason)
            return 2
        try:
            self.loop()
        finally:
            self.close()
            self._log.info("stoker worker stopped", **self.stats.summary())
        return 0

    def close(self) -> None:
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
        idle_sleep = 0.0
        while not self.stopping:
            self.ops.tick()
            self.maintenance()
            self._collect_prefetched()
            if self._orphan_check_due:
                self.reclaim_orphans()
            if self._next is not None:
                delivery, self._next = self._next, None
                self.handle(delivery)
                continue
            res = self._retry_redis(lambda: self.broker.fetch(self.queues))
            delivery = res.delivery
            if delivery is None:
                if self.burst:
                    return
                if len(self.queues) > 1:
                    # BLMOVE watches one list, and Redis checks blocking timeouts only ~10
                    # times a second, so several queues are polled: sleeps grow from 1 ms
                    # to WORKER_POLL_INTERVAL, bounding the pickup latency on any queue.
                    idle_sleep = min(max(idle_sleep * 2, 0.001), self.settings.poll_interval)
                    if res.next_due is not None:
                        idle_sleep = min(idle_sleep, max(0.0, res.next_due - time.time()))
                    time.sleep(idle_sleep)
                    continue
                delivery = self._retry_redis(
                    lambda nd=res.next_due: self.broker.block_fetch(
                        self.queues[0], self._block_timeout(nd)
                    )
                )
                if delivery is None:
                    continue
            idle_sleep = 0.0
            self.handle(delivery)

    def _block_timeout(self, next_due: float | None) -> float:
        # A push wakes BLMOVE at once; the timeout only bounds how late a due retry or a
        # shutdown request is noticed.
        timeout = 1.0
        if next_due is not None:
            timeout = min(timeout, max(0.01, next_due - time.time()))
        return max(0.01, timeout)

    def prefetch(self, started: Delivery, job_id: str) -> None:
        """While `started` runs, ask Redis for the next job, without waiting for the reply.

        Also counts the delivery of `started` if it was itself prefetched. Best effort:
        if it fails, the loop fetches after the job, as without prefetch.
        """
        if not self.settings.prefetch or self.stopping:
            return
        try:
            self.broker.prefetch(self.queues, started=None if started.counted else job_id)
        except redis.RedisError as exc:
            self._log.debug("prefetch skipped", error=str(exc))
            self._orphan_check_due = True
            return
        started.counted = True
        self._prefetch_sent = True

    def _collect_prefetched(self) -> None:
        if self._prefetch_sent:
            self._prefetch_sent = False
            res = self.broker.prefetched()
            if res is None:  # its reply was lost: Redis may have moved a job all the same
                self._orphan_check_due = True
            self._next = res.delivery if res is not None else None

    @property
    def holds_prefetched(self) -> bool:
        return self._prefetch_sent or self._next is not None

    def release_prefetched(self, *, wait: bool = True) -> None:
        """Hand the prefetched job, if any, back to the front of its queue.

        `wait=False` (while a job runs) tries once; after a failed try the job is an
        orphan to this worker: `reclaim_orphans` hands it back between jobs.
        """
        self._collect_prefetched()
        if self._next is None:
            return
        delivery = self._next
        if wait:
            self._retry_redis(lambda: self.broker.release(delivery))
        else:
            try:
                self.broker.release(delivery)
            except redis.RedisError:
                self._orphan_check_due = True
        self._next = None

    def reclaim_orphans(self) -> None:
        """Hand back in-flight jobs this worker lost track of (after a Redis error).

        A reply lost with its connection can leave a job moved into this worker's
        in-flight list that the loop never saw. Between jobs, once every success is
        acknowledged, anything there besides the prefetched job is such an orphan: it
        goes back to the front of its queue, where it is fetched again.
        """
        self.writer.flush()
        held = self._next.raw if self._next is not None else None
        for queue in self.queues:
            key = self.keys.inflight(self.worker_id, queue)
            for raw in self._retry_redis(lambda k=key: self.client.lrange(k, 0, -1)):
                if raw == held:
                    held = None
                    continue
                orphan = Delivery(raw, queue, key, duplicate_of=None, deliveries=0)
                self._retry_redis(lambda d=orphan: self.broker.release(d))
                self._log.warning("orphaned in-flight job handed back to its queue", queue=queue)
        self._orphan_check_due = False

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

    # One job
    def handle(self, delivery: Delivery) -> None:
        """Run one delivered job to a recorded (or handed-over) outcome."""
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
            job, generated = parse_payload(
                delivery.raw,
                default_processor=self.settings.queue_processors.get(delivery.queue),
                max_bytes=self.settings.max_payload_bytes,
            )
        except BadPayload as exc:
            self.reject(delivery, exc.reason, "BadPayload", exc.job_id, exc.data)
            return None
        if generated:
            payload = job.to_payload()
            delivery = self._retry_redis(lambda: self.broker.rewrite(delivery, payload))
        jlog = self._log.bind(job_id=job.id, processor=job.processor, queue=delivery.queue)
        if job.processor not in known_names():
            self.reject(
                delivery,
                f"unknown processor {job.processor!r}; known: {', '.join(sorted(known_names()))}",
                "UnknownProcessor",
                job.id,
                job.model_dump(mode="json"),
            )
            return None
        if job.run_at and job.run_at.timestamp() > time.time() + 0.001:
            self._retry_db(lambda: self.store.enqueued(job, delivery.queue), "defer")
            due = job.run_at.timestamp()
            # The scheduled set's score holds the due time: once promoted, the job runs.
            payload = job.model_copy(update={"run_at": None}).to_payload()
            if self._retry_redis(lambda: self.broker.schedule(delivery, job.id, payload, due)):
                self.stats.deferred += 1
                jlog.info("job deferred", run_at=job.run_at.isoformat())
            else:
                self._retry_db(lambda: self.store.cancel(job.id), "cancel")
                jlog.info("job cancelled before it was deferred")
            return None

        if self.writer.success_pending(job.id):
            self.writer.flush()
        status = self._retry_db(lambda: self.store.status_of(job.id), "status")
        if status in ("succeeded", "cancelled"):
            jlog.info("job already finished; acknowledged without running", status=status)
            self._retry_redis(lambda: self.broker.ack(delivery, job.id))
            self.stats.skipped += 1
            return None
        started_at = utcnow()
        # The `running` mark is written by the group-committing writer (in order, before
        # this job's outcome); a recorded success still cannot be overwritten by it.
        self.writer.started(job, delivery.queue, self.worker_id, started_at)

        attempt = job.attempts + 1
        timeout = job.timeout if job.timeout is not None else self.settings.job_timeout
        jlog.info("job started", attempt=attempt, deliveries=delivery.deliveries)
        self.current, self._cancel_current = job, False
        self.ops.job_started(delivery.queue, job, started_at)
        handler = _Handler(self, job.id, delivery)
        try:
            outcome = self.executor.execute(
                Task(job.id, job.processor, job.params, attempt, self.worker_id),
                timeout or None,
                handler,
            )
        finally:
            self.current = None
        self.ops.job_ended(job.processor, outcome)
        if self.stopping or outcome.kind == "interrupted":
            # Before this job is requeued at the front, so the two keep their order.
            self.release_prefetched()
        handler.flush()
        if handler.row_error is not None and outcome.succeeded:
            outcome = Outcome(
                "error",
                error_type="InvalidRows",
                message=handler.row_error,
                permanent=True,
                duration=outcome.duration,
            )
        return self.settle(delivery, job, attempt, outcome, started_at, jlog)

    def settle(
        self,
        delivery: Delivery,
        job: Job,
        attempt: int,
        outcome: Outcome,
        started_at: datetime,
        jlog: Any,
    ) -> None:
        """Record the outcome durably, then move the job in Redis accordingly."""

        def finish(status: Any, run_at: datetime | None = None) -> None:
            self._retry_db(
                lambda: self.store.finish(
                    job.id,
                    attempt=attempt,
                    worker_id=self.worker_id,
                    outcome=outcome,
                    status=status,
                    started_at=started_at,
                    run_at=run_at,
                ),
                "finish",
            )

        fields = {"attempt": attempt, "duration_s": round(outcome.duration, 4)}
        if outcome.kind == "timeout":
            self.stats.timeouts += 1
        elif outcome.kind == "crashed":
            self.stats.crashes += 1

        if outcome.succeeded:
            # Written and then acknowledged by the writer thread, in a group commit.
            self.writer.succeeded(
                delivery,
                job.id,
                attempt=attempt,
                worker_id=self.worker_id,
                outcome=outcome,
                started_at=started_at,
            )
            self.stats.succeeded += 1
            self.ops.settled(delivery.queue, job.processor, "succeeded", outcome.kind)
            jlog.info("job succeeded", **fields)
            return None

        # Rare outcomes stay synchronous, after everything queued before them.
        self.writer.flush()

        if outcome.kind == "interrupted":
            if self._cancel_current:
                finish("cancelled")
                jlog.info("job cancelled while running", **fields)
                self._retry_redis(lambda: self.broker.ack(delivery, job.id))
                self.stats.cancelled += 1
                self.ops.settled(delivery.queue, job.processor, "cancelled", outcome.kind)
                return None
            finish("queued")
            payload = job.to_payload()
            if self._retry_redis(lambda: self.broker.requeue_front(delivery, job.id, payload)):
                self.stats.requeued += 1
                jlog.info("job interrupted by shutdown; back at the front of its queue", **fields)
            else:
                self._cancelled_meanwhile(job.id, jlog)
            return None

        max_attempts = job.max_attempts or self.policy.max_attempts
        if not outcome.permanent and self.policy.should_retry(attempt, max_attempts):
            delay = max(self.policy.delay(attempt), outcome.retry_after or 0.0)
            due = time.time() + delay
            finish("retrying", datetime.fromtimestamp(due, UTC))
            retry = job.model_copy(update={"attempts": attempt})
            payload = retry.to_payload()
            if not self._retry_redis(lambda: self.broker.schedule(delivery, job.id, payload, due)):
                self._cancelled_meanwhile(job.id, jlog)
                return None
            self.stats.retried += 1
            self.ops.settled(delivery.queue, job.processor, "retried", outcome.kind)
            jlog.warning(
                "job failed; retry scheduled",
                kind=outcome.kind,
                error_type=outcome.error_type,
                error=outcome.message,
                retry_in_s=round(delay, 2),
                **fields,
            )
            return None

        finish("failed")
        entry = failed_entry(
            job_id=job.id,
            job={**job.model_dump(mode="json"), "attempts": attempt},
            queue=delivery.queue,
            outcome=outcome,
            attempts=attempt,
            worker_id=self.worker_id,
            deliveries=delivery.deliveries,
        )
        self._retry_redis(lambda: self.broker.fail(delivery, job.id, entry))
        self.stats.failed += 1
        self.ops.settled(delivery.queue, job.processor, "failed", outcome.kind)
        jlog.error(
            "job failed",
            kind=outcome.kind,
            error_type=outcome.error_type,
            error=outcome.message,
            permanent=outcome.permanent,
            **fields,
        )
        return None

    def _cancelled_meanwhile(self, job_id: str, jlog: Any) -> None:
        """Its cancellation was asked while the attempt ran: the job left flight, not
        requeued or scheduled; its row says so."""
        self._retry_db(lambda: self.store.cancel(job_id), "cancel")
        self.stats.cancelled += 1
        jlog.info("job cancelled while running; not run again")

    def reject(
        self, delivery: Delivery, reason: str, error_type: str, job_id: str | None, data: Any
    ) -> None:
        """A job that can never run: straight to the failed list (and a failed row)."""
        if job_id:
            self._retry_db(
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
        job = data if isinstance(data, dict) else None
        entry = failed_entry(
            job_id=job_id,
            job=job,
            queue=delivery.queue,
            outcome=outcome,
            attempts=0,
            worker_id=self.worker_id,
            raw=delivery.raw,
            deliveries=delivery.deliveries,
        )
        self._retry_redis(lambda: self.broker.fail(delivery, job_id, entry))
        self.stats.rejected += 1
        self.ops.settled(delivery.queue, None, "rejected", None)
        self._log.error(
            "job rejected",
            job_id=job_id,
            error_type=error_type,
            error=reason,
            queue=delivery.queue,
        )

    # Fault tolerance
    def _retry_redis(self, fn: Callable[[], T], give_up: Callable[[], bool] | None = None) -> T:
        """Call `fn`, reconnecting with backoff while Redis is unreachable."""

        def on_retry(exc: BaseException, delay: float) -> None:
            self._log.warning("redis unavailable; retrying", error=str(exc), retry_in_s=delay)
            self.reconciler.redis_lost()
            self.ops.tick()  # waiting out an outage is not a hang
            self._orphan_check_due = True
            if self._redis_server is not None and self._redis_server.revive():
                self._log.warning("embedded redis restarted", url=self._redis_server.url)

        return retry_while_unavailable(
            fn,
            unavailable=redis_unavailable,
            give_up=give_up or (lambda: self.force),
            on_retry=on_retry,
        )

    def _retry_db(
        self, fn: Callable[[], T], what: str, give_up: Callable[[], bool] | None = None
    ) -> T:
        """Call `fn`, retrying with backoff while the database is unreachable."""

        def on_retry(exc: BaseException, delay: float) -> None:
            self._log.warning(
                "database unavailable; outcome kept until it returns",
                op=what,
                error=str(getattr(exc, "orig", None) or exc)[:200],
                retry_in_s=delay,
            )
            self.store.reset()
            self.ops.tick()  # waiting out an outage is not a hang

        return retry_while_unavailable(
            fn,
            unavailable=db_unavailable,
            give_up=give_up or (lambda: self.force),
            on_retry=on_retry,
        )


class _Handler(JobHandler):
    """Progress, rows and control for the job being run by `worker`."""

    def __init__(self, worker: Worker, job_id: str, delivery: Delivery) -> None:
        self.worker = worker
        self.job_id = job_id
        self.delivery = delivery
        self.started = time.monotonic()
        self.interval = worker.settings.progress_interval
        self.last_write = 0.0
        self.pending: tuple[float, str | None] | None = None
        self.rows_seen: set[str] = set()
        self.row_error: str | None = None
        self.last_cancel_check = 0.0
        self.cancel_since = 0.0

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        self.pending = (fraction, stage)
        now = time.monotonic()
        if now - self.last_write >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending is None:
            return
        fraction, stage = self.pending
        self.pending = None
        self.last_write = time.monotonic()
        w = self.worker
        try:
            w.store.progress(self.job_id, fraction, stage)
            event = {"job_id": self.job_id, "progress": fraction, "stage": stage}
            w.client.publish(w.keys.progress_channel(self.job_id), json.dumps(event))
        except (redis.RedisError, OperationalError, DBAPIError) as exc:
            # Progress is advisory: losing one update must not fail the job.
            w._log.debug("progress not saved", error=str(exc))
            w.store.reset()

    def rows(self, job_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        w = self.worker
        if not self.rows_seen:
            w.writer.flush()  # the job's own row (the writer's `running` mark) comes first
        first = kind not in self.rows_seen
        self.rows_seen.add(kind)
        if self.row_error is not None:
            return
        try:
            w._retry_db(lambda: w.store.save_rows(job_id, kind, rows, first=first), "rows")
        except Exception as exc:
            if db_unavailable(exc) or redis_unavailable(exc):
                raise  # a forced stop while the database is down
            # Rows the store refuses are the job's fault: it fails, the worker carries on.
            w.store.reset()
            self.row_error = f"rows of kind {kind!r} refused: {type(exc).__name__}: {exc}"[:500]

    def job_result(self, job_id: str) -> Any:
        w = self.worker
        if w.writer.success_pending(job_id):  # its success is queued for the group commit
            w.writer.flush()
        return w._retry_db(lambda: w.store.result(job_id), "job_result")

    def sent(self) -> None:
        self.worker.prefetch(self.delivery, self.job_id)

    @property
    def poll_interval(self) -> float:  # type: ignore[override]
        hold = self.worker.settings.prefetch_hold
        return min(hold, 0.25) if self.worker.holds_prefetched else 0.25

    def poll(self) -> Abort:
        w = self.worker
        w.ops.tick()  # the supervisor is alive while the executor works (systemd watchdog)
        now = time.monotonic()
        if w.holds_prefetched and now - self.started >= w.settings.prefetch_hold:
            # A long job: the prefetched one must not wait behind it (another worker may
            # be idle, and a higher-priority job may arrive before this one ends).
            w._log.debug("long job; prefetched job released", job_id=self.job_id)
            w.release_prefetched(wait=False)
        if now - self.last_cancel_check >= CANCEL_CHECK_S:
            self.last_cancel_check = now
            w.maintenance()
            if not w._cancel_current and self._cancel_requested():
                w._cancel_current = True
                self.cancel_since = now
        if w.force:
            return "kill"
        if w._cancel_current:
            # Asked to stop at its next safe point first: killing the executor would cost
            # the resident models a reload.
            return "kill" if now - self.cancel_since >= STOP_BEFORE_KILL_S else "stop"
        grace = w.settings.shutdown_grace
        if w.stopping and w._stop_since is not None and now - w._stop_since >= grace:
            # Past the grace: ask the job to stop at its next safe point, and stop the
            # executor outright if it has not within a few more seconds.
            past = now - w._stop_since - grace
            return "kill" if past >= min(STOP_BEFORE_KILL_S, max(grace, 0.5)) else "stop"
        return None

    def _cancel_requested(self) -> bool:
        w = self.worker
        try:
            # The mark stays until the job leaves flight (stoker.lua's `forget`).
            return bool(w.client.sismember(w.keys.cancel, self.job_id))
        except redis.RedisError:
            return False


def _safe_url(url: str) -> str:
    from worker.logs import redact_url

    return redact_url(str(url))
