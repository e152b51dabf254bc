"""A job's lifecycle: its statuses, and the decision of what happens after an attempt.

The decision is a pure function of the attempt's outcome, the job, the retry policy and
the worker's flags (`decide`), so it is tested as a table without Redis or SQL. Carrying a
decision out (the durable SQL write, then the Redis move) is `worker.transitions`' job.

| status      | meaning                                                           | final |
|-------------|-------------------------------------------------------------------|-------|
| `queued`    | waiting in a queue (or put back at its front by a shutdown)       | no    |
| `running`   | an attempt is in progress on a worker                             | no    |
| `retrying`  | an attempt failed; the job waits in the scheduled set             | no    |
| `succeeded` | an attempt succeeded; its result is stored                        | yes   |
| `failed`    | permanently failed or out of attempts; on the failed list         | yes   |
| `cancelled` | cancelled before or while it ran                                  | yes   |
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from worker.outcome import Outcome
from worker.retry_policy import RetryPolicy


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING})

Action = Literal["succeed", "retry", "fail", "cancel", "requeue"]


@dataclass(frozen=True)
class Decision:
    """What to do with a job after an attempt; `due` (epoch s) only for `retry`."""

    action: Action
    due: float | None = None

    @property
    def status(self) -> JobStatus:
        return _STATUS_OF[self.action]


_STATUS_OF: dict[Action, JobStatus] = {
    "succeed": JobStatus.SUCCEEDED,
    "retry": JobStatus.RETRYING,
    "fail": JobStatus.FAILED,
    "cancel": JobStatus.CANCELLED,
    "requeue": JobStatus.QUEUED,
}


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    cancelled: bool = False,
    now: float | None = None,
) -> Decision:
    """The next step for a job whose attempt number `attempt` ended with `outcome`.

    An interrupted attempt is a cancellation when the job was cancelled, else a shutdown
    requeue (no attempt charged). A failure retries while attempts remain and it is not
    permanent, after the policy's backoff or the processor's `retry_after`, whichever is
    longer.
    """
    if outcome.succeeded:
        return Decision("succeed")
    if outcome.kind == "interrupted":
        return Decision("cancel" if cancelled else "requeue")
    if not outcome.permanent and policy.should_retry(attempt, max_attempts):
        delay = max(policy.delay(attempt), outcome.retry_after or 0.0)
        return Decision("retry", (time.time() if now is None else now) + delay)
    return Decision("fail")


def log_settled(
    jlog: Any, decision: Decision, status: JobStatus, outcome: Outcome, attempt: int
) -> None:
    """One log line for a settled attempt: what became of the job, and why."""
    fields = {"attempt": attempt, "duration_s": round(outcome.duration, 4)}
    error = {"kind": outcome.kind, "error_type": outcome.error_type, "error": outcome.message}
    if status == JobStatus.SUCCEEDED:
        jlog.info("job succeeded", **fields)
    elif decision.action == "retry" and status == JobStatus.RETRYING:
        retry_in = round((decision.due or 0.0) - time.time(), 2)
        jlog.warning("job failed; retry scheduled", retry_in_s=retry_in, **error, **fields)
    elif decision.action == "requeue" and status == JobStatus.QUEUED:
        jlog.info("job interrupted by shutdown; back at the front of its queue", **fields)
    elif status == JobStatus.CANCELLED:
        jlog.info("job cancelled while running", **fields)
    else:
        jlog.error("job failed", permanent=outcome.permanent, **error, **fields)
