"""Values as both backends take them: JSON text without NaN or NUL, UTC times, and an
engine tuned for the worker (SQLite in WAL mode)."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event

#: Longest id the jobs table holds (`String(128)`, as the protocol allows).
MAX_ID = 128
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities (not JSON) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps_json(value: Any) -> str:
    """JSON text both backends accept: no NaN/Infinity (-> null), no NUL (-> U+FFFD).

    PostgreSQL's jsonb rejects both; SQLite would store text no JSON parser reads back.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), allow_nan=False)
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _text(value: str | None, limit: int | None = None) -> str | None:
    """Text a column accepts: PostgreSQL refuses NUL characters; `limit` caps the length."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value[:limit] if limit is not None else value


def make_engine(url: str) -> Engine:
    """An engine tuned for the worker: SQLite in WAL mode with synchronous=NORMAL."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=dumps_json)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=dumps_json)


def _sqlite_time(value: datetime | None) -> str | None:
    # What SQLAlchemy's SQLite DATETIME (behind models.base.UTCDateTime) stores.
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _aware_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    # Every time Stoker stores is UTC (models.base.UTCDateTime reads it back aware).
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
