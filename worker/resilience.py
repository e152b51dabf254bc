"""The worker's waits for an unreachable Redis or database (`backoff.retry_while_unavailable`).

Each retry is logged and reported (`on_redis_lost` / `on_db_lost`: the worker keeps its
watchdog fed, has the ledger reconciled and orphans reclaimed after a Redis loss, restarts
a dead embedded server, drops its database connection). A forced stop (second signal)
gives up any wait; during startup, nothing being held, the first stop request does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from worker.backoff import db_unavailable, redis_unavailable, retry_while_unavailable

T = TypeVar("T")


class Resilience:
    """`redis(fn)` and `db(fn, what)` for one worker."""

    def __init__(
        self,
        log: Any,
        *,
        forced: Callable[[], bool],
        on_redis_lost: Callable[[], None],
        on_db_lost: Callable[[], None],
    ) -> None:
        self.log = log
        self.forced = forced
        self.on_redis_lost = on_redis_lost
        self.on_db_lost = on_db_lost

    def redis(self, fn: Callable[[], T], give_up: Callable[[], bool] | None = None) -> T:
        """Call `fn`, reconnecting with backoff while Redis is unreachable."""

        def on_retry(exc: BaseException, delay: float) -> None:
            self.log.warning("redis unavailable; retrying", error=str(exc), retry_in_s=delay)
            self.on_redis_lost()

        return retry_while_unavailable(
            fn, unavailable=redis_unavailable, give_up=give_up or self.forced, on_retry=on_retry
        )

    def db(self, fn: Callable[[], T], what: str, give_up: Callable[[], bool] | None = None) -> T:
        """Call `fn`, retrying with backoff while the database is unreachable."""

        def on_retry(exc: BaseException, delay: float) -> None:
            self.log.warning(
                "database unavailable; outcome kept until it returns",
                op=what,
                error=str(getattr(exc, "orig", None) or exc)[:200],
                retry_in_s=delay,
            )
            self.on_db_lost()

        return retry_while_unavailable(
            fn, unavailable=db_unavailable, give_up=give_up or self.forced, on_retry=on_retry
        )
