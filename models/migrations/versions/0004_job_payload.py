"""jobs.payload: the job's JSON payload, so the ledger can rebuild Redis's state.

Written when a job is enqueued through Stoker (CLI, client API, HTTP API) and when a
worker starts it; `python -m worker reconcile` pushes it back when Redis lost the job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("payload")
