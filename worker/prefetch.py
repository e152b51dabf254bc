"""Prefetch: the next job (or batch) is taken from Redis while the current one runs.

The one owner of prefetch state. While a job runs, `send` asks Redis for the next job
without waiting for the reply (the broker sends the fetch; its reply is read later on the
same connection). Between jobs, `take` hands that job to the loop. A prefetched job is
already in this worker's in-flight list (claimed, its delivery not yet counted), so:

- a long job must not hold it: after `WORKER_PREFETCH_HOLD` s `release(wait=False)` hands
  it back to the front of its queue (another worker may be idle), unless its input is
  being prepared (`prepared`: the executor prepares it while the current job runs, one
  job or batch ahead, so it is kept);
- a shutdown hands it back before the running job is requeued, keeping their order;
- a reply lost with its connection may leave a job moved that this worker never saw:
  such orphans are handed back by `reclaim_orphans` between jobs, once every success is
  acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import structlog

from worker.broker import Broker, Delivery

log = structlog.get_logger("stoker.prefetch")


class Prefetcher:
    """Prefetch state for one worker: a fetch in flight, or a job taken ahead."""

    def __init__(
        self,
        broker: Broker,
        queues: list[str],
        *,
        enabled: bool,
        retry_redis: Callable[[Callable[[], Any]], Any],
        flush_outcomes: Callable[[], None],
    ) -> None:
        self.broker = broker
        self.queues = queues
        self.enabled = enabled
        self.retry_redis = retry_redis
        self.flush_outcomes = flush_outcomes
        self.sent = False
        self.next: list[Delivery] | None = None
        self.prepared = False
        """The jobs taken ahead are being prepared by the executor: they are kept."""
        self.orphan_check_due = False
        """Set after any Redis error that may have lost a reply (see `reclaim_orphans`)."""

    @property
    def holds(self) -> bool:
        """A fetch is in flight or a job was taken ahead."""
        return self.sent or self.next is not None

    def send(self, started: Delivery, job_id: str) -> None:
        """While `started` runs, ask Redis for the next job, without waiting for the reply.

        Also counts the delivery of `started` if it was itself prefetched. Best effort: if
        it fails, the loop fetches after the job, as without prefetch.
        """
        self.send_many([(started, job_id)])

    def send_many(self, started: list[tuple[Delivery, str]]) -> None:
        """`send` for the members of a batch. Nothing is sent while jobs are held ahead
        (a batch run again in halves sends once)."""
        if not self.enabled or self.holds:
            return
        uncounted = [job_id for delivery, job_id in started if not delivery.counted]
        try:
            self.broker.prefetch(self.queues, started=uncounted or None)
        except redis.RedisError as exc:
            log.debug("prefetch skipped", error=str(exc))
            self.orphan_check_due = True
            return
        for delivery, _ in started:
            delivery.counted = True
        self.sent = True

    def collect(self) -> None:
        """Read the reply of a sent prefetch, if any."""
        if self.sent:
            self.sent = False
            res = self.broker.prefetched()
            if res is None:  # its reply was lost: Redis may have moved a job all the same
                self.orphan_check_due = True
            self.next = (res.batch or None) if res is not None else None

    def take(self) -> list[Delivery] | None:
        """The job (or batch) taken ahead, now the loop's to run (None when there is none)."""
        self.collect()
        batch, self.next = self.next, None
        self.prepared = False
        return batch

    def release(self, *, wait: bool = True) -> None:
        """Hand the prefetched jobs, if any, back to the front of their queue (the last
        one first, so they keep their order).

        `wait=False` (while a job runs) tries once; after a failed try the job is an
        orphan to this worker: `reclaim_orphans` hands it back between jobs.
        """
        self.collect()
        batch, self.next, self.prepared = self.next or [], None, False
        for delivery in reversed(batch):
            if wait:
                self.retry_redis(lambda d=delivery: self.broker.release(d))
            else:
                try:
                    self.broker.release(delivery)
                except redis.RedisError:
                    self.orphan_check_due = True

    def reclaim_orphans(self) -> None:
        """Hand back in-flight jobs this worker lost track of (after a Redis error).

        Between jobs, once every success is acknowledged, anything in this worker's
        in-flight lists besides the prefetched job is such an orphan, and so is anything in
        its landing lists (a wait whose `land` never ran): it goes back to the front of its
        queue, where it is fetched again.
        """
        self.flush_outcomes()
        broker = self.broker
        held = [d.raw for d in self.next or []]
        for queue in self.queues:
            key = broker.keys.inflight(broker.worker_id, queue)
            for raw in self.retry_redis(lambda k=key: broker.client.lrange(k, 0, -1)):
                if raw in held:
                    held.remove(raw)
                    continue
                # Its delivery stays as counted: whether the lost fetch counted it is unknown.
                orphan = Delivery(raw, queue, key, duplicate_of=None, deliveries=0, counted=False)
                self.retry_redis(lambda d=orphan: broker.release(d))
                log.warning(
                    "orphaned in-flight job handed back to its queue",
                    queue=queue,
                    worker_id=broker.worker_id,
                )
            if landed := self.retry_redis(lambda q=queue: broker.reclaim_landed(q)):
                log.warning(
                    "landed job handed back to its queue",
                    queue=queue,
                    count=landed,
                    worker_id=broker.worker_id,
                )
        self.orphan_check_due = False
