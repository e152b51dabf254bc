"""The store's reads, for the CLI, the web app and a job's `job_result`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from worker.lifecycle import JobStatus
from worker.store.base import StoreBase
from worker.store.encoding import jsonable
from worker.store.schema import attempts, frame_results, jobs


class Reads(StoreBase):
    """Reads of the jobs, attempts and frame_results tables (see `StoreBase`)."""

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        self.conn.commit()
        return jsonable(dict(row)) if row else None

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        rows = (
            self.conn.execute(
                select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.id)
            )
            .mappings()
            .all()
        )
        self.conn.commit()
        return [jsonable(dict(r)) for r in rows]

    def result(self, job_id: str) -> Any:
        row = self.get(job_id)
        return row["result"] if row and row["status"] == JobStatus.SUCCEEDED else None

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
