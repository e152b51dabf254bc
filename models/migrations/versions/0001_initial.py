"""Initial schema: jobs, attempts, frame_results.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.base import JSONType

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("queue", sa.String(128)),
        sa.Column("processor", sa.String(128)),
        sa.Column("params", JSONType, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer),
        sa.Column("progress", sa.Float),
        sa.Column("stage", sa.String(64)),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("error_type", sa.String(128)),
        sa.Column("error", sa.Text),
        sa.Column("worker_id", sa.String(128)),
        sa.Column("queued_at", TS),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("run_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_processor", "jobs", ["processor"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(128)),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("duration", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_attempts_job_id_jobs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_attempts_job_id", "attempts", ["job_id"])
    op.create_table(
        "frame_results",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("frame_index", sa.Integer, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("values", JSONType),
        sa.PrimaryKeyConstraint("id", name="pk_frame_results"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_frame_results_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "frame_index", name="uq_frame_results_job_id"),
    )
    op.create_index("ix_frame_results_job_id", "frame_results", ["job_id"])


def downgrade() -> None:
    op.drop_table("frame_results")
    op.drop_table("attempts")
    op.drop_table("jobs")
