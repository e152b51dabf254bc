"""The one interface from a running job to the supervisor: progress, rows, another job's
result, and whether to stop.

`JobRunner.run` takes a `JobCallbacks`; `processors.base.Context` is the processors' face of
it. The supervisor's side (`worker.running.RunningJob`) implements it; so does the executor
child's pipe (`worker.executor_child.PipeCallbacks`), which carries each call over to it.
Progress is throttled once, where it is reported (`ProgressThrottle`): at most every
`WORKER_PROGRESS_INTERVAL`, at once on a stage change and on completion.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class JobCallbacks(Protocol):
    """What a running job may call back."""

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        """The job's progress (0..1) and stage."""

    def rows(self, job_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        """Structured rows the job emitted (e.g. `frame_results`), to persist."""

    def job_result(self, job_id: str) -> Any:
        """The stored result of another job (None unless it succeeded)."""

    def stop_requested(self) -> bool:
        """Whether the job should stop at its next safe point."""


class NoCallbacks:
    """Callbacks that record nothing and never ask to stop (tests, tools)."""

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        return None

    def rows(self, job_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        return None

    def job_result(self, job_id: str) -> Any:
        return None

    def stop_requested(self) -> bool:
        return False


class ProgressThrottle:
    """Let a progress report through at most every `interval` s, on a stage change, or at
    completion."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = float("-inf")
        self.stage: str | None = None

    def ready(self, stage: str | None, fraction: float) -> bool:
        now = time.monotonic()
        if stage != self.stage or fraction >= 1.0 or now - self.last >= self.interval:
            self.last, self.stage = now, stage
            return True
        return False
