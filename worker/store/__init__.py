"""The job database: every job's status, result and attempt history (SQLAlchemy Core).

Split by concern: `schema` (tables and hot column sets), `encoding` (values both backends
accept, the engine), `batch` (the group commit's compiled statements), `base` (the
contract and the one transaction helper), `writes` and `reads`.
"""

from __future__ import annotations

from worker.store.encoding import MAX_ID, dumps_json, jsonable, make_engine
from worker.store.reads import Reads
from worker.store.schema import ROW_TABLES, attempts, frame_results, jobs
from worker.store.writes import Writes

__all__ = [
    "MAX_ID",
    "ROW_TABLES",
    "JobStore",
    "attempts",
    "dumps_json",
    "frame_results",
    "jobs",
    "jsonable",
    "make_engine",
]


class JobStore(Writes, Reads):
    """Reads and writes of the jobs, attempts and frame_results tables."""
