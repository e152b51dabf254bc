"""Prefetch: the next job is taken from Redis while the current one runs.

The one owner of prefetch state. While a job runs, `send` asks Redis for the next job
without waiting for the reply (the broker sends the fetch; its reply is read later on the
same connection). Between jobs, `take` hands that job to the loop. A prefetched job is
already in this worker's in-flight list (claimed, its delivery not yet counted), so:

- a long job must not hold it: after `WORKER_PREFETCH_HOLD` s `release(wait=False)` hands
  it back to the front of its queue (another worker may be idle);
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
        self.next: Delivery | None = None
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
        if not self.enabled:
            return
        try:
            self.broker.prefetch(self.queues, started=None if started.counted else job_id)
        except redis.RedisError as exc:
            log.debug("prefetch skipped", error=str(exc))
            self.orphan_check_due = True
            return
        started.counted = True
        self.sent = True

    def collect(self) -> None:
        """Read the reply of a sent prefetch, if any."""
        if self.sent:
            self.sent = False
            res = self.broker.prefetched()
            if res is None:  # its reply was lost: Redis may have moved a job all the same
                self.orphan_check_due = True
            self.next = res.delivery if res is not None else None

    def take(self) -> Delivery | None:
        """The job taken ahead, now the loop's to run (None when there is none)."""
        self.collect()
        delivery, self.next = self.next, None
        return delivery

    def release(self, *, wait: bool = True) -> None:
        """Hand the prefetched job, if any, back to the front of its queue.

        `wait=False` (while a job runs) tries once; after a failed try the job is an
        orphan to this worker: `reclaim_orphans` hands it back between jobs.
        """
        self.collect()
        if self.next is None:
            return
        delivery = self.next
        if wait:
            self.retry_redis(lambda: self.broker.release(delivery))
        else:
            try:
                self.broker.release(delivery)
            except redis.RedisError:
                self.orphan_check_due = True
        self.next = None

    def reclaim_orphans(self) -> None:
        """Hand back in-flight jobs this worker lost track of (after a Redis error).

        Between jobs, once every success is acknowledged, anything in this worker's
        in-flight lists besides the prefetched job is such an orphan: it goes back to the
        front of its queue, where it is fetched again.
        """
        self.flush_outcomes()
        broker = self.broker
        held = self.next.raw if self.next is not None else None
        for queue in self.queues:
            key = broker.keys.inflight(broker.worker_id, queue)
            for raw in self.retry_redis(lambda k=key: broker.client.lrange(k, 0, -1)):
                if raw == held:
                    held = None
                    continue
                orphan = Delivery(raw, queue, key, duplicate_of=None, deliveries=0)
                self.retry_redis(lambda d=orphan: broker.release(d))
                log.warning(
                    "orphaned in-flight job handed back to its queue",
                    queue=queue,
                    worker_id=broker.worker_id,
                )
        self.orphan_check_due = False
