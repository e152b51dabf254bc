"""Riding out an unreachable Redis or database: one backoff for every caller.

Three kinds of error, told apart here:
- *unavailable*: waiting can cure it (connection refused or lost, a timeout, Redis still
  loading or BUSY running a long script, a read-only replica during a failover, a locked
  SQLite file): retried with backoff.
- *fatal*: configuration that waiting cannot cure (wrong password, unknown database or
  role): the worker says so in one line and exits 2 (`fatal_reason`).
- anything else: a bug or a bad query, raised to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis
from sqlalchemy.exc import DBAPIError

from processors.errors import ConfigError

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


_DB_FATAL_HINTS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    'role "',
    "does not exist",
    "access denied",
    "permission denied for database",
    "pg_hba.conf",
)
_REDIS_FATAL_HINTS = ("NOAUTH", "WRONGPASS", "invalid password", "invalid username")
_REDIS_TRANSIENT_REPLIES = ("LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN")


def fatal_reason(exc: BaseException) -> str | None:
    """A one-line reason when `exc` is a configuration error no wait can cure, else None."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, redis.AuthenticationError) or (
        isinstance(exc, redis.RedisError) and any(h in str(exc) for h in _REDIS_FATAL_HINTS)
    ):
        return f"Redis refused the credentials: {_first_line(exc)}"
    if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
        text = str(exc.orig or exc)
        if any(hint in text.lower() for hint in _DB_FATAL_HINTS):
            return f"the database refused the connection: {_first_line(exc.orig or exc)}"
    return None


def startup_exit(exc: BaseException, *, stopping: bool) -> int | None:
    """The exit code for an error during startup: 2 for a fatal configuration error, 0 for
    an outage cut short by a stop request, None for anything else (a bug: raised)."""
    if fatal_reason(exc) is not None:
        return 2
    if stopping and (redis_unavailable(exc) or db_unavailable(exc)):
        return 0
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def db_unavailable(exc: BaseException) -> bool:
    """A database error that waiting can cure (lost connection, locked file), not a bad query."""
    if not isinstance(exc, DBAPIError) or fatal_reason(exc) is not None:
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig or exc).lower()
    return any(hint in text for hint in _DB_CONNECTION_HINTS)


def redis_unavailable(exc: BaseException) -> bool:
    """Redis unreachable, timing out, loading, busy with a script, or failing over."""
    if fatal_reason(exc) is not None:
        return False
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_REDIS_TRANSIENT_REPLIES)


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
            _sleep_unless(give_up, delay)
            delay = min(delay * 2, 5.0)


def _sleep_unless(give_up: Callable[[], bool], seconds: float) -> None:
    """Sleep `seconds`, waking early once `give_up()` (a stop request) is true."""
    end = time.monotonic() + seconds
    while not give_up() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
