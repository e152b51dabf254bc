"""The job database: every job's status, result and attempt history (SQLAlchemy Core).

One long-lived connection per process; each method is one short transaction. Writes are
idempotent under redelivery: `start` refuses to run a job whose success is recorded.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from models import Attempt, FrameResult, Job
from worker.outcome import Outcome
from worker.protocol import Job as JobSpec
from worker.protocol import utcnow

jobs = Job.__table__
attempts = Attempt.__table__
frame_results = FrameResult.__table__

StartDecision = Literal["run", "succeeded", "cancelled"]

_START_COLUMNS = (
    "id",
    "queue",
    "processor",
    "params",
    "status",
    "attempts",
    "max_attempts",
    "worker_id",
    "queued_at",
    "started_at",
    "finished_at",
    "progress",
    "stage",
    "updated_at",
)

#: Row kinds processors may emit, and the table each goes to.
ROW_TABLES = {"frame_results": frame_results}


def make_engine(url: str) -> Engine:
    """An engine tuned for the worker: SQLite in WAL mode with synchronous=NORMAL."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class JobStore:
    """Reads and writes of the jobs, attempts and frame_results tables."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._conn: Connection | None = None
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
        # Hot-path statements are built once and executed with parameters: building a
        # statement with literal values costs more than the SQLite write itself.
        start = self._insert(jobs)
        self._start_stmt = start.on_conflict_do_update(
            index_elements=["id"],
            set_={c: start.excluded[c] for c in _START_COLUMNS if c not in ("id", "queued_at")},
            where=jobs.c.status.notin_(("succeeded", "cancelled")),
        )
        self._success_stmt = (
            update(jobs)
            .where(jobs.c.id == bindparam("b_id"))
            .values(
                status="succeeded",
                result=bindparam("b_result", type_=jobs.c.result.type),
                progress=1.0,
                finished_at=bindparam("b_now", type_=jobs.c.finished_at.type),
                updated_at=bindparam("b_now", type_=jobs.c.updated_at.type),
                run_at=None,
                error=None,
                error_type=None,
            )
        )
        self._attempt_stmt = insert(attempts)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); never drops data."""
        from models.migrate import upgrade

        upgrade(self.engine)

    @property
    def conn(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def _run(self, *statements: Any) -> list[Any]:
        try:
            with self.conn.begin():
                return [self.conn.execute(s) for s in statements]
        except Exception:
            self.reset()
            raise

    def reset(self) -> None:
        """Drop the connection (after an error); the next call opens a new one."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.reset()
        self.engine.dispose()

    # Writes
    def enqueued(self, job: JobSpec, queue: str) -> None:
        """A queued row for a job handed to Redis (from `enqueue` or a requeue)."""
        now = utcnow()
        values = {
            "id": job.id,
            "queue": queue,
            "processor": job.processor,
            "params": job.params,
            "status": "queued",
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "queued_at": job.queued_at or now,
            "run_at": job.run_at,
            "updated_at": now,
        }
        stmt = self._insert(jobs).values(**values)
        keep = {"id"}
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={k: stmt.excluded[k] for k in values if k not in keep}
            | {
                "result": None,
                "error": None,
                "error_type": None,
                "finished_at": None,
                "progress": None,
                "stage": None,
            },
        )
        self._run(stmt)

    def start(
        self, job: JobSpec, queue: str, worker_id: str, started_at: datetime
    ) -> StartDecision:
        """Mark the job running (attempt `job.attempts + 1`) unless it already succeeded."""
        values = {
            "id": job.id,
            "queue": queue,
            "processor": job.processor,
            "params": job.params,
            "status": "running",
            "attempts": job.attempts + 1,
            "max_attempts": job.max_attempts,
            "worker_id": worker_id,
            "queued_at": job.queued_at,
            "started_at": started_at,
            "finished_at": None,
            "progress": 0.0,
            "stage": None,
            "updated_at": started_at,
        }
        try:
            with self.conn.begin():
                res = self.conn.execute(self._start_stmt, values)
        except Exception:
            self.reset()
            raise
        if res.rowcount:
            return "run"
        status = self.conn.execute(select(jobs.c.status).where(jobs.c.id == job.id)).scalar()
        self.conn.commit()
        return "cancelled" if status == "cancelled" else "succeeded"

    def finish(
        self,
        job_id: str,
        *,
        attempt: int,
        worker_id: str,
        outcome: Outcome,
        status: Literal["succeeded", "retrying", "failed", "queued"],
        started_at: datetime,
        run_at: datetime | None = None,
    ) -> None:
        """Record an attempt's outcome and the job's next status in one transaction."""
        now = utcnow()
        attempt_row = {
            "job_id": job_id,
            "number": attempt,
            "worker_id": worker_id,
            "outcome": outcome.kind,
            "error_type": outcome.error_type,
            "error": outcome.message,
            "traceback": outcome.traceback,
            "started_at": started_at,
            "finished_at": now,
            "duration": outcome.duration,
        }
        if status == "succeeded":
            job_update: Any = (
                self._success_stmt,
                {"b_id": job_id, "b_result": outcome.result, "b_now": now},
            )
        else:
            row: dict[str, Any] = {
                "status": status,
                "updated_at": now,
                "run_at": run_at,
                "error": outcome.message,
                "error_type": outcome.error_type,
            }
            if status == "failed":
                row["finished_at"] = now
            if outcome.kind == "interrupted":
                row["attempts"] = attempt - 1
            job_update = (update(jobs).where(jobs.c.id == job_id).values(**row), None)
        try:
            with self.conn.begin():
                self.conn.execute(*[x for x in job_update if x is not None])
                self.conn.execute(self._attempt_stmt, attempt_row)
        except Exception:
            self.reset()
            raise

    def failed_early(
        self,
        job_id: str,
        *,
        queue: str,
        reason: str,
        error_type: str,
        data: Any,
        worker_id: str | None,
    ) -> None:
        """A failed row for a job rejected before it ran (bad payload, unknown processor)."""
        now = utcnow()
        data = data if isinstance(data, dict) else {}
        params = data.get("params")
        values = {
            "id": job_id,
            "queue": queue,
            "processor": data.get("processor") if isinstance(data.get("processor"), str) else None,
            "params": params if isinstance(params, dict) else None,
            "status": "failed",
            "attempts": 0,
            "error": reason,
            "error_type": error_type,
            "worker_id": worker_id,
            "finished_at": now,
            "updated_at": now,
        }
        stmt = self._insert(jobs).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                k: stmt.excluded[k]
                for k in ("status", "error", "error_type", "worker_id", "finished_at", "updated_at")
            },
            where=jobs.c.status != "succeeded",
        )
        self._run(stmt)

    def lost(self, job_id: str, *, worker_id: str, poisoned: bool) -> None:
        """A job recovered from a dead worker: back to queued, or failed as a poison pill."""
        now = utcnow()
        row = self.conn.execute(select(jobs.c.attempts).where(jobs.c.id == job_id)).first()
        self.conn.commit()
        if row is None:
            return
        status = "failed" if poisoned else "queued"
        message = (
            "poison pill: took down its worker on every delivery"
            if poisoned
            else f"worker {worker_id} died while running this job; requeued"
        )
        values: dict[str, Any] = {
            "status": status,
            "updated_at": now,
            "error": message,
            "error_type": "PoisonPill" if poisoned else "WorkerLost",
        }
        if poisoned:
            values["finished_at"] = now
        self._run(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.notin_(("succeeded", "cancelled")))
            .values(**values),
            insert(attempts).values(
                job_id=job_id,
                number=row.attempts,
                worker_id=worker_id,
                outcome="lost",
                error_type="WorkerLost",
                error=message,
                finished_at=now,
            ),
        )

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        self._run(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(progress=fraction, stage=stage, updated_at=utcnow())
        )

    def save_rows(self, job_id: str, kind: str, rows: list[dict[str, Any]], *, first: bool) -> None:
        """Persist rows a processor emitted; `first` clears rows of an earlier attempt."""
        table = ROW_TABLES.get(kind)
        if table is None:
            raise ValueError(f"unknown row kind {kind!r}")
        statements: list[Any] = []
        if first:
            statements.append(delete(table).where(table.c.job_id == job_id))
        statements.append(insert(table).values([{**r, "job_id": job_id} for r in rows]))
        self._run(*statements)

    def cancel(self, job_id: str) -> None:
        now = utcnow()
        self._run(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.notin_(("succeeded", "failed")))
            .values(status="cancelled", finished_at=now, updated_at=now)
        )

    # Reads
    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        self.conn.commit()
        return _jsonable(dict(row)) if row else None

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        rows = (
            self.conn.execute(
                select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.id)
            )
            .mappings()
            .all()
        )
        self.conn.commit()
        return [_jsonable(dict(r)) for r in rows]

    def result(self, job_id: str) -> Any:
        row = self.get(job_id)
        return row["result"] if row and row["status"] == "succeeded" else None

    def frame_rows(self, job_id: str) -> list[dict[str, Any]]:
        rows = (
            self.conn.execute(
                select(frame_results)
                .where(frame_results.c.job_id == job_id)
                .order_by(frame_results.c.frame_index)
            )
            .mappings()
            .all()
        )
        self.conn.commit()
        return [dict(r) for r in rows]

    def status_counts(self) -> dict[str, int]:
        rows = self.conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
        out = {status: count for status, count in rows}
        self.conn.commit()
        return out

    def ids_with_status(self, status: str) -> set[str]:
        rows = self.conn.execute(select(jobs.c.id).where(jobs.c.status == status)).scalars()
        out = set(rows)
        self.conn.commit()
        return out


def _iso(value: datetime) -> str:
    # SQLite hands back naive datetimes; every time Stoker stores is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
