"""How an idle worker waits for a push, without polling where Redis allows.

`IdleWait` picks the mechanism, in this order:
- one queue: a BLMOVE on it, the claim riding behind (`Broker.block_fetch`);
- several queues: a BLMOVE on each, on connections of their own (`worker.blockers`);
- where Redis refuses that (CLIENT denied): keyspace notifications, below;
- where it refuses those too: polling (`worker.idle.poll_sleep`).

`QueueWatch` subscribes to Redis keyspace notifications for the queue keys
(`notify-keyspace-events` with `K` and `l`, which the worker turns on if they are off)
and sleeps on that subscription; a push to any of the queues wakes it at once.

Rules of the notification wait:
- The subscription is opened when the worker goes idle and kept while it keeps going
  idle; a worker busy for `BUSY_JOBS` jobs in a row drops it (every push and pop of a
  watched queue is a message: a busy worker would only pile them up).
- Messages that were pending are drained before the worker sleeps, then the queues are
  fetched once more: a push is either seen by that fetch or wakes the sleep after it.
- Where notifications cannot be turned on (CONFIG refused, a managed Redis) or the
  subscription fails, the worker polls as before (`worker.idle.poll_sleep`); a failed
  subscription is tried again after `RETRY_S`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from worker.blockers import Blockers
from worker.broker import Broker, Delivery
from worker.idle import block_timeout, poll_sleep

log = structlog.get_logger("stoker.wakeup")

#: Jobs run in a row without going idle after which the subscription is dropped.
BUSY_JOBS = 256
#: Seconds before a failed subscription is tried again.
RETRY_S = 30.0


def notify_flags(current: str) -> str | None:
    """The `notify-keyspace-events` value that adds keyspace list events to `current`,
    or None when it has them already."""
    has_lists = "l" in current or "A" in current
    if "K" in current and has_lists:
        return None
    return current + ("" if "K" in current else "K") + ("" if has_lists else "l")


class QueueWatch:
    """A keyspace-notification subscription on a worker's queue keys."""

    def __init__(self, client: redis.Redis, queue_keys: list[str]) -> None:
        self.client = client
        self.queue_keys = queue_keys
        self._pubsub: Any = None
        self._failed_at: float | None = None
        self._busy = 0

    @property
    def active(self) -> bool:
        return self._pubsub is not None

    def subscribe(self) -> bool:
        """Open the subscription; False (and polling) where notifications are unavailable."""
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_S:
            return False
        try:
            current = self.client.config_get("notify-keyspace-events").get(
                "notify-keyspace-events", ""
            )
            if (flags := notify_flags(str(current))) is not None:
                self.client.config_set("notify-keyspace-events", flags)
            db = self.client.connection_pool.connection_kwargs.get("db", 0)
            pubsub = self.client.pubsub()
            pubsub.subscribe(*(f"__keyspace@{db}__:{key}" for key in self.queue_keys))
            # Read the confirmations: only then is every later push a message.
            confirmed, deadline = 0, time.monotonic() + 5.0
            while confirmed < len(self.queue_keys) and time.monotonic() < deadline:
                msg = pubsub.get_message(timeout=1.0)
                if msg is not None and msg.get("type") == "subscribe":
                    confirmed += 1
            if confirmed < len(self.queue_keys):
                pubsub.close()
                raise redis.TimeoutError("no confirmation of the subscription")
            pubsub.ignore_subscribe_messages = True
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        self._pubsub, self._busy = pubsub, 0
        return True

    def drain(self) -> bool:
        """Read every pending message; True when there was one (the queues changed)."""
        if self._pubsub is None:
            return False
        seen = False
        try:
            while self._pubsub.get_message(timeout=0.0) is not None:
                seen = True
        except redis.RedisError as exc:
            self._failed(exc)
            return True
        return seen

    def wait(self, timeout: float) -> None:
        """Sleep until a watched queue changes or `timeout` s have passed."""
        if self._pubsub is None:
            time.sleep(timeout)
            return
        try:
            self._pubsub.get_message(timeout=timeout)
        except redis.RedisError as exc:
            self._failed(exc)

    def idle_wait(self, next_due: float | None, idle_sleep: float, poll_interval: float) -> float:
        """Wait for a push after a fetch found nothing: on the subscription, or by
        polling where it is unavailable. Returns the polling sleep (0 when subscribed)."""
        if self.active:
            if not self.drain():  # pending messages: the queues changed; fetch again
                self.wait(block_timeout(next_due, time.time()))
            return 0.0
        if self.subscribe():
            return 0.0  # subscribed: fetch once more before sleeping on it
        sleep = poll_sleep(idle_sleep, poll_interval, next_due, time.time())
        time.sleep(sleep)
        return sleep

    def ran_job(self) -> None:
        """Count a job run without going idle; drop the subscription when busy."""
        if self._pubsub is not None:
            self._busy += 1
            if self._busy >= BUSY_JOBS:
                self.close()

    def _failed(self, exc: Exception) -> None:
        log.warning("queue notifications unavailable; polling", error=str(exc)[:200])
        self._failed_at = time.monotonic()
        self.close()

    def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub = None


class IdleWait:
    """An idle worker's wait for its next job (the mechanism: see the module rules)."""

    def __init__(
        self,
        broker: Broker,
        queues: list[str],
        *,
        poll_interval: float,
        retry_redis: Callable[[Callable[[], Any]], Any],
        on_lost: Callable[[], None],
    ) -> None:
        self.broker = broker
        self.queues = queues
        self.poll_interval = poll_interval
        self.retry_redis = retry_redis
        self.watch = QueueWatch(broker.client, [broker.keys.queue(q) for q in queues])
        self.blockers = Blockers(broker, queues, on_lost=on_lost)
        self._sleep = 0.0

    def wait(self, next_due: float | None) -> Delivery | None:
        """Wait for a push (or `next_due`, a scheduled job's due time): the job it took
        into flight, or None (fetch again)."""
        several = len(self.queues) > 1
        if several and not self.retry_redis(self.blockers.open):
            self._sleep = self.watch.idle_wait(next_due, self._sleep, self.poll_interval)
            return None
        self.watch.close()
        timeout = block_timeout(next_due, time.time())
        if several:
            return self.retry_redis(lambda: self.blockers.wait(timeout))
        return self.retry_redis(lambda: self.broker.block_fetch(self.queues[0], timeout))

    @property
    def unsettled(self) -> bool:
        """Waits cancelled when one of them took a job are still to be read."""
        return self.blockers.unsettled

    def settle(self) -> None:
        """Finish the waits cancelled when one of them took a job (`Blockers.settle`)."""
        self.blockers.settle()

    def ran_job(self) -> None:
        self._sleep = 0.0
        self.watch.ran_job()

    def close(self) -> None:
        self.watch.close()
        self.blockers.close()
