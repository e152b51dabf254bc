"""The lifecycle decision as a table: outcome, attempt, policy and flags -> what happens."""

from __future__ import annotations

import pytest

from worker.lifecycle import FINAL, UNFINISHED, Decision, JobStatus, decide
from worker.outcome import Outcome
from worker.retry_policy import RetryPolicy

POLICY = RetryPolicy(max_attempts=3, base=10.0, factor=2.0, max_delay=600.0, jitter=0.0)
NOW = 1_000_000.0

ok = Outcome("succeeded", result={"x": 1})
transient = Outcome("error", error_type="TransientError", message="flaky")
permanent = Outcome("error", error_type="PermanentError", message="bad", permanent=True)
timeout = Outcome("timeout", error_type="Timeout")
crashed = Outcome("crashed", error_type="ExecutorCrashed")
interrupted = Outcome("interrupted", error_type="Interrupted")
slow_down = Outcome("error", error_type="TransientError", retry_after=120.0)


@pytest.mark.parametrize(
    ("outcome", "attempt", "max_attempts", "cancelled", "expected"),
    [
        (ok, 1, 3, False, Decision("succeed")),
        (ok, 3, 3, True, Decision("succeed")),
        (transient, 1, 3, False, Decision("retry", NOW + 10.0)),
        (transient, 2, 3, False, Decision("retry", NOW + 20.0)),
        (transient, 3, 3, False, Decision("fail")),
        (transient, 1, 1, False, Decision("fail")),
        (permanent, 1, 3, False, Decision("fail")),
        (timeout, 1, 3, False, Decision("retry", NOW + 10.0)),
        (crashed, 3, 3, False, Decision("fail")),
        (slow_down, 1, 3, False, Decision("retry", NOW + 120.0)),
        (interrupted, 1, 3, False, Decision("requeue")),
        (interrupted, 3, 3, False, Decision("requeue")),
        (interrupted, 1, 3, True, Decision("cancel")),
    ],
)
def test_decide_maps_each_outcome_to_its_transition(
    outcome: Outcome, attempt: int, max_attempts: int, cancelled: bool, expected: Decision
) -> None:
    decision = decide(
        outcome,
        attempt=attempt,
        max_attempts=max_attempts,
        policy=POLICY,
        cancelled=cancelled,
        now=NOW,
    )
    assert decision == expected


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("succeed", JobStatus.SUCCEEDED),
        ("retry", JobStatus.RETRYING),
        ("fail", JobStatus.FAILED),
        ("cancel", JobStatus.CANCELLED),
        ("requeue", JobStatus.QUEUED),
    ],
)
def test_each_decision_names_the_status_it_records(action: str, status: JobStatus) -> None:
    assert Decision(action).status == status  # type: ignore[arg-type]


def test_final_and_unfinished_statuses_partition_them_all() -> None:
    assert set(JobStatus) == FINAL | UNFINISHED and not FINAL & UNFINISHED
    assert all(s.final for s in FINAL) and not any(s.final for s in UNFINISHED)
