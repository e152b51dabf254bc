"""What a worker did since it started, for the shutdown summary and `info`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    requeued: int = 0
    skipped: int = 0
    """Redeliveries of jobs whose success was already recorded, and duplicates."""
    recovered: int = 0
    timeouts: int = 0
    crashes: int = 0

    def summary(self) -> dict[str, Any]:
        uptime = time.monotonic() - self.started
        finished = self.succeeded + self.failed
        return {
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retried": self.retried,
            "requeued": self.requeued,
            "skipped": self.skipped,
            "recovered": self.recovered,
            "timeouts": self.timeouts,
            "crashes": self.crashes,
            "uptime_s": round(uptime, 1),
            "success_rate": round(self.succeeded / finished, 4) if finished else None,
            "jobs_per_s": round(self.processed / uptime, 2) if uptime > 0 else 0.0,
        }
