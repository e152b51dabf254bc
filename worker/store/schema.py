"""The tables Stoker writes, and the column sets of its hot statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, update

from models import Attempt, FrameResult, Job
from worker.lifecycle import JobStatus

jobs = Job.__table__
attempts = Attempt.__table__
frame_results = FrameResult.__table__

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
    "run_at",
    "progress",
    "stage",
    "updated_at",
    "payload",
)

#: Columns a start-and-success in one batch writes in one upsert.
_DONE_COLUMNS = (*_START_COLUMNS, "result", "error", "error_type")

_ATTEMPT_COLUMNS = (
    "job_id",
    "number",
    "worker_id",
    "outcome",
    "error_type",
    "error",
    "traceback",
    "started_at",
    "finished_at",
    "duration",
)

#: Statuses a failed, retried or requeued attempt leaves alone.
_FINAL_FOR_SETTLE = (JobStatus.SUCCEEDED, JobStatus.CANCELLED)


def _not_final() -> Any:
    # Plain comparisons, not NOT IN: an IN list is re-expanded on every execution.
    return and_(*(jobs.c.status != status for status in _FINAL_FOR_SETTLE))


#: Row kinds processors may emit, and the table each goes to.
ROW_TABLES = {"frame_results": frame_results}


def success_update() -> Any:
    """The row of a job whose attempt succeeded (parameters `b_id`, `b_result`, `b_now`)."""
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"))
        .values(
            status=JobStatus.SUCCEEDED,
            result=bindparam("b_result", type_=jobs.c.result.type),
            progress=1.0,
            finished_at=bindparam("b_now", type_=jobs.c.finished_at.type),
            updated_at=bindparam("b_now", type_=jobs.c.updated_at.type),
            run_at=None,
            error=None,
            error_type=None,
        )
    )


def settle_update() -> Any:
    """The row after any other outcome; never overwrites a success or a cancellation."""
    return (
        update(jobs)
        .where(and_(jobs.c.id == bindparam("b_id"), _not_final()))
        .values(
            status=bindparam("b_status"),
            attempts=bindparam("b_attempts"),
            updated_at=bindparam("b_now", type_=jobs.c.updated_at.type),
            finished_at=bindparam("b_finished_at", type_=jobs.c.finished_at.type),
            run_at=bindparam("b_run_at", type_=jobs.c.run_at.type),
            error=bindparam("b_error"),
            error_type=bindparam("b_error_type"),
        )
    )
