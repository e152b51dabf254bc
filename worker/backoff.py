"""Riding out an unreachable Redis or database: one backoff for every caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

_DB_CONNECTION_HINTS = (
    "could not connect",
    "connection",
    "server closed",
    "database is locked",
    "unable to open",
    "terminating",
    "timeout",
    "no route",
    "refused",
)


def db_unavailable(exc: BaseException) -> bool:
    """A database error that waiting can cure (lost connection, locked file), not a bad query."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig or exc).lower()
    return any(hint in text for hint in _DB_CONNECTION_HINTS)


def redis_unavailable(exc: BaseException) -> bool:
    """Redis unreachable, timing out, or still loading its data after a restart."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return True
    return isinstance(exc, redis.ResponseError) and "LOADING" in str(exc)


def retry_while_unavailable(
    fn: Callable[[], T],
    *,
    unavailable: Callable[[BaseException], bool],
    give_up: Callable[[], bool],
    on_retry: Callable[[BaseException, float], None],
) -> T:
    """Call `fn` until it succeeds, waiting 0.1 s doubling to 5 s while `unavailable(exc)`.

    Any other error, or any error once `give_up()` is true, is raised.
    """
    delay = 0.1
    while True:
        try:
            return fn()
        except Exception as exc:
            if not unavailable(exc) or give_up():
                raise
            on_retry(exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
