"""Errors told apart: outages are waited out, configuration errors are fatal in one line,
credentials never reach a log, and the statistics add up."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy.exc import OperationalError

from processors.errors import ConfigError
from worker.backoff import db_unavailable, fatal_reason, redis_unavailable, startup_exit
from worker.logs import redact_url
from worker.stats import Stats


def _db_error(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


@pytest.mark.parametrize(
    ("exc", "unavailable", "fatal"),
    [
        (redis.ConnectionError("Connection refused"), True, False),
        (redis.TimeoutError("timed out"), True, False),
        (redis.ResponseError("LOADING Redis is loading the dataset"), True, False),
        (redis.ResponseError("BUSY Redis is busy running a script."), True, False),
        (redis.ResponseError("READONLY You can't write against a read only replica."), True, False),
        (redis.ResponseError("MASTERDOWN Link with MASTER is down"), True, False),
        (redis.AuthenticationError("invalid password"), False, True),
        (redis.ResponseError("WRONGPASS invalid username-password pair"), False, True),
        (redis.ResponseError("NOAUTH Authentication required."), False, True),
        (redis.ResponseError("ERR unknown command"), False, False),
    ],
)
def test_redis_errors_are_told_apart(exc: Exception, unavailable: bool, fatal: bool) -> None:
    assert redis_unavailable(exc) is unavailable
    assert (fatal_reason(exc) is not None) is fatal


@pytest.mark.parametrize(
    ("message", "unavailable", "fatal"),
    [
        ("connection to server at 127.0.0.1, port 1 failed: Connection refused", True, False),
        ("database is locked", True, False),
        ('FATAL:  password authentication failed for user "stoker"', False, True),
        ('FATAL:  database "nope" does not exist', False, True),
        ('FATAL:  role "ghost" does not exist', False, True),
        ("no such table: jobs", False, False),
    ],
)
def test_database_errors_are_told_apart(message: str, unavailable: bool, fatal: bool) -> None:
    exc = _db_error(message)
    assert db_unavailable(exc) is unavailable
    assert (fatal_reason(exc) is not None) is fatal


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://u@h/db?password=hunter2&sslmode=require", "hunter2"),
        ("postgresql://u:hunter2@h/db", "hunter2"),
        ("redis://:hunter2@h:6379/0", "hunter2"),
        ("rediss://user:hunter2@h:6380/0?ssl_cert_reqs=none", "hunter2"),
        ("redis://h:6379/0?password=hunter2", "hunter2"),
        ("host=h dbname=x password=hunter2", "hunter2"),
        ("postgresql://u@h/db?sslpassword=hunter2", "hunter2"),
    ],
)
def test_every_credential_form_is_redacted(url: str, secret: str) -> None:
    redacted = redact_url(url)
    assert secret not in redacted and "***" in redacted


def test_the_statistics_add_up() -> None:
    stats = Stats(succeeded=3, failed=1, retried=2, requeued=1, cancelled=1, rejected=2, skipped=4)
    summary = stats.summary()
    assert summary["processed"] == 3 + 1 + 2 + 1 + 1 + 2
    assert summary["success_rate"] == round(3 / (3 + 1 + 2), 4)


@pytest.mark.parametrize(
    ("exc", "stopping", "code"),
    [
        (ConfigError("WORKER_PROCESSORS: x is not a Processor subclass"), False, 2),
        (redis.AuthenticationError("invalid password"), False, 2),
        (_db_error('FATAL:  database "nope" does not exist'), True, 2),
        (_db_error("Connection refused"), True, 0),
        (redis.ConnectionError("Connection refused"), True, 0),
        (redis.ConnectionError("Connection refused"), False, None),
        (KeyError("bug"), True, None),
    ],
)
def test_startup_errors_map_to_exit_codes(exc: Exception, stopping: bool, code: int | None) -> None:
    assert startup_exit(exc, stopping=stopping) == code
