"""The tables Stoker writes, and the column sets of its hot statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_

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
