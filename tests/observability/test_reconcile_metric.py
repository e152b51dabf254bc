"""Jobs the ledger restores are counted in `stoker_reconcile_restored_total`."""

from __future__ import annotations

from prometheus_client import generate_latest

from worker.metrics import WorkerMetrics


def test_a_restored_job_is_counted_by_where_and_status() -> None:
    metrics = WorkerMetrics("w1")
    metrics.restored("queue", "running")
    metrics.restored("queue", "running")
    metrics.restored("scheduled", "retrying")
    text = generate_latest(metrics.registry).decode()
    assert 'stoker_reconcile_restored_total{status="running",where="queue"} 2.0' in text
    assert 'stoker_reconcile_restored_total{status="retrying",where="scheduled"} 1.0' in text
