"""The store's writes: every transition of a job's row, and the group commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from worker.lifecycle import FINAL, JobStatus
from worker.outcome import Outcome
from worker.protocol import Job as JobSpec
from worker.protocol import utcnow
from worker.store.base import StoreBase
from worker.store.batch import _Batch
from worker.store.encoding import MAX_ID, _text
from worker.store.schema import (
    _ATTEMPT_COLUMNS,
    _DONE_COLUMNS,
    _FINAL_FOR_SETTLE,
    _START_COLUMNS,
    ROW_TABLES,
    _not_final,
    attempts,
    jobs,
    settle_update,
    success_update,
)


class Writes(StoreBase):
    """Writes of the jobs, attempts and frame_results tables (see `StoreBase`)."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        super().__init__(url, engine)
        # Hot-path statements are built once and executed with parameters: building a
        # statement with literal values costs more than the SQLite write itself.
        start = self._insert(jobs)
        self._start_stmt = start.on_conflict_do_update(
            index_elements=["id"],
            set_={c: start.excluded[c] for c in _START_COLUMNS if c not in ("id", "queued_at")},
            where=_not_final(),
        ).execution_options(
            # An INSERT's rowcount is otherwise not kept (psycopg reports -1 once the cursor
            # is closed), and it is how `start` knows the upsert was refused.
            preserve_rowcount=True
        )
        # A job started and succeeded within one group commit: one row write, not two.
        done = self._insert(jobs)
        self._done_stmt = done.on_conflict_do_update(
            index_elements=["id"],
            set_={c: done.excluded[c] for c in _DONE_COLUMNS if c not in ("id", "queued_at")},
        )
        self._success_stmt = success_update()
        # Any other outcome: never overwrites a recorded success or a cancellation.
        self._settle_stmt = settle_update()
        self._attempt_stmt = insert(attempts)
        self._batches = {
            stmt: _Batch(stmt, self.engine.dialect, columns)
            for stmt, columns in (
                (self._start_stmt, _START_COLUMNS),
                (self._done_stmt, _DONE_COLUMNS),
                (self._success_stmt, ()),
                (self._attempt_stmt, _ATTEMPT_COLUMNS),
            )
        }
        self._status_stmt = select(jobs.c.status).where(jobs.c.id == bindparam("b_id"))
        compiled = self._status_stmt.compile(dialect=self.engine.dialect)
        self._status_sql = compiled.string
        self._status_positional = bool(self.engine.dialect.positional)

    def enqueued(self, job: JobSpec, queue: str) -> None:
        """A queued row for a job handed to Redis (from `enqueue` or a requeue)."""
        now = utcnow()
        values = {
            "id": job.id,
            "queue": queue,
            "processor": job.processor,
            "params": job.params,
            "status": JobStatus.QUEUED,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "queued_at": job.queued_at or now,
            "run_at": job.run_at,
            "updated_at": now,
            "payload": job.to_payload(),  # the ledger's copy (worker.reconcile)
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

    def start(self, job: JobSpec, queue: str, worker_id: str, started_at: datetime) -> str:
        """The group commit's `running` mark, alone: "run", or the final status that
        refused it (a recorded success or cancellation is never overwritten)."""
        self.write_batch([("start", (job, queue, worker_id, started_at), {})])
        status = self.status_of(job.id)
        return "run" if status == JobStatus.RUNNING else str(status)

    def _start_params(
        self,
        job: JobSpec,
        queue: str,
        worker_id: str,
        started_at: datetime,
        payload: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": job.id,
            "queue": queue,
            "processor": job.processor,
            "params": job.params,
            "status": JobStatus.RUNNING,
            "attempts": job.attempts + 1,
            "max_attempts": job.max_attempts,
            "worker_id": worker_id,
            "queued_at": job.queued_at,
            "started_at": started_at,
            "finished_at": None,
            "run_at": None,
            "progress": 0.0,
            "stage": None,
            "updated_at": started_at,
            # The ledger's copy (worker.reconcile): the delivered payload when the caller has
            # it (serializing the job again costs as much as the row write).
            "payload": payload if payload is not None else job.to_payload(),
        }

    def status_of(self, job_id: str) -> str | None:
        """The job's recorded status (None when it has no row).

        Read once per job, so it goes through the DBAPI cursor: SQLAlchemy's execution
        path costs several times the SQLite lookup itself. Errors are wrapped as
        SQLAlchemy's, like every other call's.
        """
        params: Any = (job_id,) if self._status_positional else {"b_id": job_id}
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            raw = self.conn.connection.dbapi_connection
            cursor = raw.cursor()
            try:
                cursor.execute(self._status_sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
            raw.commit()
        except dbapi.Error as exc:
            self.reset()
            raise DBAPIError.instance(self._status_sql, params, exc, dbapi.Error) from exc
        except Exception:
            self.reset()
            raise
        return row[0] if row else None

    def write_batch(self, ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        """Apply several `start` / `finish` writes in one transaction (a group commit).

        Each op is `("start", args, kwargs)` or `("finish", args, kwargs)` with the
        arguments of those methods; `start`'s refusal to re-run a success still holds.
        A start whose success is in the same batch becomes one upsert of the final row.
        """
        starts: dict[str, dict[str, Any]] = {}
        done: list[dict[str, Any]] = []
        groups: dict[Any, list[dict[str, Any]]] = {}
        for kind, args, kwargs in ops:
            if kind == "start":
                params = self._start_params(*args, **kwargs)
                starts[params["id"]] = params
                continue
            statements = self._finish_statements(*args, **kwargs)
            start = starts.get(args[0]) if kwargs["status"] == JobStatus.SUCCEEDED else None
            if start is not None:
                del starts[args[0]]
                (_, success), attempt = statements
                done.append(
                    start
                    | {
                        "status": JobStatus.SUCCEEDED,
                        "result": success["b_result"],
                        "progress": 1.0,
                        "finished_at": success["b_now"],
                        "updated_at": success["b_now"],
                        "error": None,
                        "error_type": None,
                    }
                )
                statements = [attempt]
            for stmt, params in statements:
                groups.setdefault(stmt, []).append(params)
        # One executemany per statement: starts and finished rows first (so a job's row
        # exists before its attempts), then the job updates, then the attempt rows.
        writes = [(self._start_stmt, list(starts.values())), (self._done_stmt, done)]
        writes += groups.items()
        with self.transaction() as conn:
            for stmt, plist in writes:
                if plist:
                    batch = self._batches[stmt]
                    conn.exec_driver_sql(batch.sql, batch.rows(plist))

    def finish(
        self,
        job_id: str,
        *,
        attempt: int,
        worker_id: str,
        outcome: Outcome,
        status: JobStatus | str,
        started_at: datetime,
        run_at: datetime | None = None,
    ) -> None:
        """Record an attempt's outcome and the job's next status in one transaction.

        Only a success may overwrite a finished row; an interrupted attempt is not charged.
        """
        statements = self._finish_statements(
            job_id,
            attempt=attempt,
            worker_id=worker_id,
            outcome=outcome,
            status=status,
            started_at=started_at,
            run_at=run_at,
        )
        with self.transaction() as conn:
            for stmt, params in statements:
                conn.execute(stmt, params)

    def _finish_statements(
        self,
        job_id: str,
        *,
        attempt: int,
        worker_id: str,
        outcome: Outcome,
        status: str,
        started_at: datetime,
        run_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> list[tuple[Any, dict[str, Any]]]:
        now = finished_at or utcnow()
        message = _text(outcome.message)
        error_type = _text(outcome.error_type, 128)
        attempt_row = {
            "job_id": job_id,
            "number": attempt,
            "worker_id": worker_id,
            "outcome": outcome.kind,
            "error_type": error_type,
            "error": message,
            "traceback": _text(outcome.traceback),
            "started_at": started_at,
            "finished_at": now,
            "duration": outcome.duration,
        }
        if status == JobStatus.SUCCEEDED:
            stmt = self._success_stmt
            params: dict[str, Any] = {"b_id": job_id, "b_result": outcome.result, "b_now": now}
        else:
            stmt = self._settle_stmt
            params = {
                "b_id": job_id,
                "b_status": status,
                "b_attempts": attempt - 1 if outcome.kind == "interrupted" else attempt,
                "b_now": now,
                "b_finished_at": now if status in (JobStatus.FAILED, JobStatus.CANCELLED) else None,
                "b_run_at": run_at,
                "b_error": message,
                "b_error_type": error_type,
            }
        return [(stmt, params), (self._attempt_stmt, attempt_row)]

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
        """A failed row for a job rejected before it ran (bad payload, unknown processor).

        Never overwrites a recorded success. An id longer than the column is not recorded.
        """
        if len(job_id) > MAX_ID:
            return
        now = utcnow()
        data = data if isinstance(data, dict) else {}
        params = data.get("params")
        processor = data.get("processor")
        values = {
            "id": job_id,
            "queue": _text(queue, 128),
            "processor": _text(processor, 128) if isinstance(processor, str) else None,
            "params": params if isinstance(params, dict) else None,
            "status": JobStatus.FAILED,
            "attempts": 0,
            "error": _text(reason),
            "error_type": _text(error_type, 128),
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
            where=jobs.c.status != JobStatus.SUCCEEDED,
        )
        self._run(stmt)

    def _lost_without_row(
        self, job_id: str, *, worker_id: str, status: str, message: str, poisoned: bool, now: Any
    ) -> None:
        # Its worker died before the `running` mark was committed: record it now.
        stmt = self._insert(jobs).values(
            id=job_id,
            status=status,
            attempts=0,
            error=message,
            error_type="PoisonPill" if poisoned else "WorkerLost",
            worker_id=worker_id,
            finished_at=now if poisoned else None,
            updated_at=now,
        )
        lost_attempt = insert(attempts).values(
            job_id=job_id,
            number=1,
            worker_id=worker_id,
            outcome="lost",
            error_type="WorkerLost",
            error=message,
            finished_at=now,
        )
        self._run(stmt.on_conflict_do_nothing(index_elements=["id"]), lost_attempt)

    def lost(self, job_id: str, *, worker_id: str, poisoned: bool) -> None:
        """A job recovered from a dead worker: back to queued, or failed as a poison pill.

        Adds a `lost` attempt; a job already succeeded or cancelled is left as it is.
        """
        now = utcnow()
        row = self.conn.execute(select(jobs.c.attempts).where(jobs.c.id == job_id)).first()
        self.conn.commit()
        status = JobStatus.FAILED if poisoned else JobStatus.QUEUED
        message = (
            "poison pill: took down its worker on every delivery"
            if poisoned
            else f"worker {worker_id} died while running this job; requeued"
        )
        if row is None:
            self._lost_without_row(
                job_id,
                worker_id=worker_id,
                status=status,
                message=message,
                poisoned=poisoned,
                now=now,
            )
            return
        values: dict[str, Any] = {
            "status": status,
            "updated_at": now,
            "error": message,
            "error_type": "PoisonPill" if poisoned else "WorkerLost",
        }
        if poisoned:
            values["finished_at"] = now
        with self.transaction() as conn:
            res = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.notin_(_FINAL_FOR_SETTLE))
                .values(**values)
            )
            if res.rowcount:  # a job that finished before its worker died lost nothing
                # Each lost delivery is an attempt of its own: 1, 2, 3 for a poison pill.
                made = conn.execute(
                    select(func.count()).where(attempts.c.job_id == job_id)
                ).scalar_one()
                conn.execute(
                    self._attempt_stmt,
                    {
                        "job_id": job_id,
                        "number": max(row.attempts, made + 1),
                        "worker_id": worker_id,
                        "outcome": "lost",
                        "error_type": "WorkerLost",
                        "error": message,
                        "traceback": None,
                        "started_at": None,
                        "finished_at": now,
                        "duration": None,
                    },
                )

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        self._run(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(progress=fraction, stage=_text(stage, 64), updated_at=utcnow())
        )

    def save_rows(self, job_id: str, kind: str, rows: list[dict[str, Any]], *, first: bool) -> None:
        """Persist rows a processor emitted; `first` clears rows of an earlier attempt."""
        table = ROW_TABLES.get(kind)
        if table is None:
            raise ValueError(f"unknown row kind {kind!r}")
        columns = {c.name for c in table.columns} - {"id", "job_id"}
        unknown = {k for r in rows for k in r} - columns
        if unknown:
            raise ValueError(f"unknown {kind} columns: {', '.join(sorted(unknown))}")
        with self.transaction() as conn:
            if first:
                conn.execute(delete(table).where(table.c.job_id == job_id))
            if rows:  # executemany; a row may leave out columns (NULL)
                conn.execute(
                    insert(table),
                    [dict.fromkeys(columns) | r | {"job_id": job_id} for r in rows],
                )

    def cancel(self, job_id: str) -> None:
        now = utcnow()
        self._run(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.notin_(tuple(FINAL)))
            .values(status=JobStatus.CANCELLED, finished_at=now, updated_at=now)
        )
