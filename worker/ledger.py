"""The SQL side of reconciling: the jobs the ledger says must still happen.

Redis only carries the work; the jobs table is the ledger. These reads and writes serve
`worker.reconcile`: the unfinished rows (one range scan of the index that starts with
`status`, however many finished rows the table holds), and storing a payload rebuilt for a
row that had none (rows written before migration 0004, or by a path that never had one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.engine import Connection

from worker.lifecycle import UNFINISHED
from worker.reconcile import LedgerRow
from worker.store import jobs

_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    jobs.c.queue,
    jobs.c.payload,
    jobs.c.processor,
    jobs.c.params,
    jobs.c.attempts,
    jobs.c.max_attempts,
    jobs.c.queued_at,
    jobs.c.run_at,
    jobs.c.worker_id,
    jobs.c.started_at,
    jobs.c.updated_at,
)


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _row(r: Any) -> LedgerRow:
    return LedgerRow(
        id=r.id,
        status=r.status,
        queue=r.queue,
        payload=r.payload,
        processor=r.processor,
        params=r.params,
        attempts=r.attempts or 0,
        max_attempts=r.max_attempts,
        queued_at=_epoch(r.queued_at),
        run_at=_epoch(r.run_at),
        worker_id=r.worker_id,
        started_at=_epoch(r.started_at),
        updated_at=_epoch(r.updated_at) or 0.0,
    )


class Ledger:
    """Reads and writes of the jobs table for reconciling, on connections of `engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def unfinished(self) -> list[LedgerRow]:
        """Every row whose status is queued, running or retrying."""
        stmt = select(*_COLUMNS).where(jobs.c.status.in_(sorted(s.value for s in UNFINISHED)))
        with self._conn() as conn:
            rows = [_row(r) for r in conn.execute(stmt)]
            conn.commit()
        return rows

    def rows(self, ids: list[str]) -> dict[str, LedgerRow]:
        """The current rows of `ids` (a re-read just before restoring them)."""
        out: dict[str, LedgerRow] = {}
        with self._conn() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for r in conn.execute(select(*_COLUMNS).where(jobs.c.id.in_(chunk))):
                    out[r.id] = _row(r)
            conn.commit()
        return out

    def store_payloads(self, payloads: dict[str, str]) -> None:
        """Store rebuilt payloads on rows that still have none."""
        if not payloads:
            return
        with self._conn() as conn, conn.begin():
            for job_id, payload in payloads.items():
                conn.execute(
                    update(jobs)
                    .where(and_(jobs.c.id == job_id, jobs.c.payload.is_(None)))
                    .values(payload=payload)
                )
