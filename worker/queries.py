"""Read queries for operators' views (the web dashboard and its API), over the store's engine.

Kept apart from `worker.store` (the worker's hot path): each function here is one short
read that stays fast on a table of millions of rows, thanks to the indexes of migration
0003.

- `list_jobs`: newest first by (queued_at, id), filtered by status, processor or queue,
  paginated by keyset (an opaque cursor), never by OFFSET. Rows without `queued_at`
  (rejected before they ran) come after all the others, by id.
- `Throughput`: jobs finished per minute over the last hour; a finished minute never
  changes, so only the current one is counted again on each call.
- `frame_summary`: count, frame span and value keys of a video job's frame results.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select, tuple_

from models import FrameResult, Job

jobs = Job.__table__
frame_results = FrameResult.__table__

#: Columns a list row carries (the big ones, params and result, stay on the job page).
LIST_COLUMNS = (
    "id",
    "queue",
    "processor",
    "status",
    "attempts",
    "progress",
    "stage",
    "error_type",
    "worker_id",
    "queued_at",
    "started_at",
    "finished_at",
)


class BadCursor(ValueError):
    """A page cursor that was not made by `list_jobs`."""


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    processor: str | None = None
    queue: str | None = None
    search: str | None = None
    """An id prefix: matching ids are listed by id instead of by time."""


@dataclass
class JobPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    filters: JobFilter = field(default_factory=JobFilter)


def encode_cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("invalid page cursor") from exc
    if not (isinstance(key, list) and key and all(isinstance(k, str | None) for k in key)):
        raise BadCursor("invalid page cursor")
    return key


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_jobs(
    engine: Engine, filters: JobFilter, *, limit: int = 50, cursor: str | None = None
) -> JobPage:
    """One page of jobs (see the module docstring); `cursor` is the previous page's."""
    cols = [jobs.c[name] for name in LIST_COLUMNS]
    where = [
        jobs.c[name] == getattr(filters, name)
        for name in ("status", "processor", "queue")
        if getattr(filters, name)
    ]
    after = decode_cursor(cursor) if cursor else None
    with engine.connect() as conn:
        if filters.search:
            rows = _search(conn, cols, where, filters.search, after, limit)
        else:
            rows = _newest_first(conn, cols, where, after, limit)
    out = [_plain(dict(r)) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        if filters.search:
            next_cursor = encode_cursor(("id", last["id"]))
        elif last["queued_at"] is None:
            next_cursor = encode_cursor(("null", last["id"]))
        else:
            next_cursor = encode_cursor(("t", _as_utc(last["queued_at"]).isoformat(), last["id"]))
    return JobPage(out, next_cursor, filters)


def _newest_first(conn: Any, cols: list[Any], where: list[Any], after: Any, limit: int) -> list:
    rows: list[Any] = []
    qa, jid = jobs.c.queued_at, jobs.c.id
    if after is None or after[0] == "t":
        cond = [*where, qa.is_not(None)]
        if after is not None:
            if len(after) != 3:
                raise BadCursor("invalid page cursor")
            cond.append(tuple_(qa, jid) < tuple_(_parse_time(after[1]), after[2]))
        stmt = select(*cols).where(and_(*cond)).order_by(qa.desc(), jid.desc()).limit(limit + 1)
        rows = list(conn.execute(stmt).mappings())
    if len(rows) <= limit:
        cond = [*where, qa.is_(None)]
        if after is not None and after[0] == "null":
            cond.append(jid < after[1])
        stmt = select(*cols).where(and_(*cond)).order_by(jid.desc()).limit(limit + 1 - len(rows))
        rows += list(conn.execute(stmt).mappings())
    return rows


def _search(
    conn: Any, cols: list[Any], where: list[Any], prefix: str, after: Any, limit: int
) -> list:
    jid = jobs.c.id
    # A range on the primary key (an index scan on every backend), then the exact prefix.
    cond = [*where, jid >= prefix, jid < prefix + "\U0010ffff"]
    cond.append(jid.like(_escape_like(prefix) + "%", escape="\\"))
    if after is not None:
        if after[0] != "id" or len(after) != 2:
            raise BadCursor("invalid page cursor")
        cond.append(jid > after[1])
    stmt = select(*cols).where(and_(*cond)).order_by(jid).limit(limit + 1)
    return list(conn.execute(stmt).mappings())


def _parse_time(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError as exc:
        raise BadCursor("invalid page cursor") from exc


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times as ISO 8601 UTC text (as `JobStore.get` gives them)."""
    return {k: _as_utc(v).isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


class Throughput:
    """Jobs finished (any final status) per minute over the last `minutes` minutes."""

    def __init__(self, engine: Engine, minutes: int = 60) -> None:
        self.engine = engine
        self.minutes = minutes
        self._done: dict[datetime, int] = {}  # finished minutes: their counts never change
        self._lock = threading.Lock()

    def per_minute(self, now: datetime | None = None) -> list[tuple[datetime, int]]:
        """[(minute start, count)], oldest first; the last one is the current minute."""
        now = _as_utc(now or datetime.now(UTC))
        current = _minute(now)
        starts = [current - timedelta(minutes=i) for i in range(self.minutes - 1, -1, -1)]
        with self._lock:
            self._done = {m: n for m, n in self._done.items() if m >= starts[0]}
            missing = [m for m in starts[:-1] if m not in self._done]
            with self.engine.connect() as conn:
                if missing:
                    counted = self._count_minutes(conn, missing[0], current)
                    self._done |= {m: counted.get(m, 0) for m in missing}
                now_count = self._count_minutes(conn, current, current + timedelta(minutes=1))
            counts = self._done | {current: now_count.get(current, 0)}
            return [(m, counts.get(m, 0)) for m in starts]

    def _count_minutes(self, conn: Any, start: datetime, end: datetime) -> dict[datetime, int]:
        """Counts per minute in [start, end): one index range scan, bucketed here."""
        fa = jobs.c.finished_at
        out: dict[datetime, int] = {}
        minute = start
        while minute < end:  # one COUNT per minute: each is an index-only range count
            nxt = minute + timedelta(minutes=1)
            n = conn.execute(select(func.count()).where(fa >= minute, fa < nxt)).scalar_one()
            if n:
                out[minute] = int(n)
            minute = nxt
        return out


def frame_summary(engine: Engine, job_id: str, sample: int = 5) -> dict[str, Any] | None:
    """How many frame results a job has, their span and value keys, and the first few."""
    fr = frame_results
    with engine.connect() as conn:
        count, first, last, t0, t1 = conn.execute(
            select(
                func.count(),
                func.min(fr.c.frame_index),
                func.max(fr.c.frame_index),
                func.min(fr.c.timestamp),
                func.max(fr.c.timestamp),
            ).where(fr.c.job_id == job_id)
        ).one()
        if not count:
            return None
        rows = conn.execute(
            select(fr.c.frame_index, fr.c.timestamp, fr.c["values"])
            .where(fr.c.job_id == job_id)
            .order_by(fr.c.frame_index)
            .limit(sample)
        ).mappings()
        head = [dict(r) for r in rows]
    keys = sorted({k for r in head if isinstance(r["values"], dict) for k in r["values"]})
    return {
        "frames": int(count),
        "first_frame": first,
        "last_frame": last,
        "first_timestamp": t0,
        "last_timestamp": t1,
        "value_keys": keys,
        "sample": head,
    }
