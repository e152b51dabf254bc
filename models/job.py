"""The jobs table: one row per job id, its latest state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime

#: queued -> running -> succeeded | retrying -> running ... | failed | cancelled
STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),  # ck_jobs_status
        # The web dashboard's keyset-paginated lists and throughput chart (migration 0003).
        Index("ix_jobs_queued_at_id", "queued_at", "id"),
        Index("ix_jobs_status_queued_at_id", "status", "queued_at", "id"),
        Index("ix_jobs_processor_queued_at_id", "processor", "queued_at", "id"),
        Index("ix_jobs_queue_queued_at_id", "queue", "queued_at", "id"),
        Index("ix_jobs_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    queue: Mapped[str | None] = mapped_column(String(128))
    processor: Mapped[str | None] = mapped_column(String(128))
    params: Mapped[Any] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[str | None] = mapped_column(Text)
    """The job's JSON payload, for rebuilding Redis from the ledger (migration 0004)."""
