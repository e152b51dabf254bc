"""The worker's waits for an unreachable Redis or database (`backoff.retry_while_unavailable`),
with what the worker does meanwhile: log each retry, keep the systemd watchdog fed (a
wait is not a hang), have the ledger reconciled and orphans reclaimed after a Redis loss,
restart a dead embedded server. A forced stop (second signal) gives up any wait; during
startup, nothing being held, the first stop request does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from worker.backoff import db_unavailable, redis_unavailable, retry_while_unavailable

if TYPE_CHECKING:
    from worker.worker import Worker

T = TypeVar("T")


class Resilience:
    """`redis(fn)` and `db(fn, what)` for one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def redis(self, fn: Callable[[], T], give_up: Callable[[], bool] | None = None) -> T:
        """Call `fn`, reconnecting with backoff while Redis is unreachable."""
        w = self.worker

        def on_retry(exc: BaseException, delay: float) -> None:
            w._log.warning("redis unavailable; retrying", error=str(exc), retry_in_s=delay)
            w.reconciler.redis_lost()
            w.ops.tick()
            w.prefetcher.orphan_check_due = True
            server = w._redis_server
            if server is not None and server.revive():
                w._log.warning("embedded redis restarted", url=server.url)

        return retry_while_unavailable(
            fn,
            unavailable=redis_unavailable,
            give_up=give_up or (lambda: w.force),
            on_retry=on_retry,
        )

    def db(self, fn: Callable[[], T], what: str, give_up: Callable[[], bool] | None = None) -> T:
        """Call `fn`, retrying with backoff while the database is unreachable."""
        w = self.worker

        def on_retry(exc: BaseException, delay: float) -> None:
            w._log.warning(
                "database unavailable; outcome kept until it returns",
                op=what,
                error=str(getattr(exc, "orig", None) or exc)[:200],
                retry_in_s=delay,
            )
            w.store.reset()
            w.ops.tick()

        return retry_while_unavailable(
            fn,
            unavailable=db_unavailable,
            give_up=give_up or (lambda: w.force),
            on_retry=on_retry,
        )
