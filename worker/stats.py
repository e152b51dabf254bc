"""What a worker did since it started, for the shutdown summary and `info`.

Every job the worker took ends in exactly one of the outcome counts, so they add up:
`processed = succeeded + failed + retried + requeued + cancelled + rejected`.

- `succeeded`, `failed`, `retried`, `cancelled`: an attempt ran and ended so (a retried job
  counts once per failed attempt that was scheduled again);
- `requeued`: put back at the front of its queue by a shutdown, no attempt charged;
- `rejected`: never ran (bad payload, unknown processor), straight to the failed list.

Not outcomes, listed beside them: `skipped` (a redelivery of a job already finished, or a
duplicate of one running elsewhere), `deferred` (a `run_at` job moved to the scheduled
set), `recovered` (dead workers' jobs this worker requeued), and of the attempts that
failed, `timeouts` and `crashes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

#: (decision, status it left the job in) -> the count it adds to. A retry or requeue that
#: found the job cancelled meanwhile counts as cancelled.
_COUNT_OF: dict[tuple[str, str], str] = {
    ("succeed", "succeeded"): "succeeded",
    ("retry", "retrying"): "retried",
    ("fail", "failed"): "failed",
    ("requeue", "queued"): "requeued",
    ("cancel", "cancelled"): "cancelled",
    ("retry", "cancelled"): "cancelled",
    ("requeue", "cancelled"): "cancelled",
}


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    requeued: int = 0
    cancelled: int = 0
    rejected: int = 0
    skipped: int = 0
    deferred: int = 0
    recovered: int = 0
    timeouts: int = 0
    crashes: int = 0

    @property
    def processed(self) -> int:
        return (
            self.succeeded
            + self.failed
            + self.retried
            + self.requeued
            + self.cancelled
            + self.rejected
        )

    def settled(self, action: str, status: str) -> str | None:
        """Count a settled attempt (`lifecycle.Decision.action`, the status it left the job
        in); the disposition `stoker_jobs_total` counts it as (a requeue: none)."""
        counted = _COUNT_OF.get((action, status))
        if counted is None:
            return None
        setattr(self, counted, getattr(self, counted) + 1)
        return None if counted == "requeued" else counted

    def summary(self) -> dict[str, Any]:
        uptime = time.monotonic() - self.started
        finished = self.succeeded + self.failed + self.rejected
        return {
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "requeued": self.requeued,
            "cancelled": self.cancelled,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "recovered": self.recovered,
            "timeouts": self.timeouts,
            "crashes": self.crashes,
            "uptime_s": round(uptime, 1),
            "success_rate": round(self.succeeded / finished, 4) if finished else None,
            "jobs_per_s": round(self.processed / uptime, 2) if uptime > 0 else 0.0,
        }
