"""CHECK constraints on jobs.status and attempts.outcome.

A typo'd status would otherwise hide a job from every query that looks for it. On SQLite
this rebuilds both tables (batch mode); their rows are copied across.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies: a migration must not change when models/ does.
STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled")
OUTCOMES = ("succeeded", "error", "timeout", "crashed", "lost", "interrupted")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.create_check_constraint(op.f("ck_jobs_status"), f"status IN {STATUSES!r}")
    with op.batch_alter_table("attempts") as batch:
        batch.create_check_constraint(op.f("ck_attempts_outcome"), f"outcome IN {OUTCOMES!r}")


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_constraint(op.f("ck_attempts_outcome"), type_="check")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
