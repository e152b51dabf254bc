"""Indexes for the web dashboard: keyset-paginated job lists and the throughput chart.

The jobs list is ordered newest first by (queued_at, id) and filtered by one of status,
processor or queue; each filter gets an index that ends with the sort key, so a page is
one index range scan whatever the table's size. `finished_at` feeds the jobs-finished-per-
minute chart. The single-column status and processor indexes become prefixes of the new
ones and are dropped (one index fewer to maintain on every write).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW = {
    "ix_jobs_queued_at_id": ["queued_at", "id"],
    "ix_jobs_status_queued_at_id": ["status", "queued_at", "id"],
    "ix_jobs_processor_queued_at_id": ["processor", "queued_at", "id"],
    "ix_jobs_queue_queued_at_id": ["queue", "queued_at", "id"],
    "ix_jobs_finished_at": ["finished_at"],
}
REPLACED = {"ix_jobs_status": ["status"], "ix_jobs_processor": ["processor"]}


def upgrade() -> None:
    for name, columns in NEW.items():
        op.create_index(name, "jobs", columns)
    for name in REPLACED:
        op.drop_index(name, table_name="jobs")


def downgrade() -> None:
    for name, columns in REPLACED.items():
        op.create_index(name, "jobs", columns)
    for name in NEW:
        op.drop_index(name, table_name="jobs")
