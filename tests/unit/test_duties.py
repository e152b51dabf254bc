"""The periodic duties' rules as tables: when a running job is stopped, killed or its
prefetched successor handed back."""

from __future__ import annotations

import pytest

from worker.duties import (
    POLL_S,
    STOP_BEFORE_KILL_S,
    cancel_abort,
    hold_expired,
    poll_interval,
    shutdown_abort,
)


@pytest.mark.parametrize(
    ("now", "stop_since", "grace", "expected"),
    [
        (100.0, None, 60.0, None),
        (100.0, 90.0, 60.0, None),
        (160.0, 100.0, 60.0, "stop"),
        (164.9, 100.0, 60.0, "stop"),
        (165.0, 100.0, 60.0, "kill"),
        (100.0, 100.0, 0.0, "stop"),
        (100.5, 100.0, 0.0, "kill"),
        (101.0, 100.0, 1.0, "stop"),
        (102.0, 100.0, 1.0, "kill"),
    ],
)
def test_shutdown_stops_then_kills_past_the_grace(
    now: float, stop_since: float | None, grace: float, expected: str | None
) -> None:
    assert shutdown_abort(now=now, stop_since=stop_since, grace=grace) == expected


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, "stop"), (STOP_BEFORE_KILL_S - 0.01, "stop"), (STOP_BEFORE_KILL_S, "kill")],
)
def test_a_cancelled_job_is_asked_to_stop_before_it_is_killed(
    elapsed: float, expected: str
) -> None:
    assert cancel_abort(now=10.0 + elapsed, cancel_since=10.0) == expected


@pytest.mark.parametrize(
    ("now", "holds", "expected"),
    [(0.04, True, False), (0.05, True, True), (9.0, False, False)],
)
def test_a_prefetched_job_is_handed_back_once_the_hold_has_passed(
    now: float, holds: bool, expected: bool
) -> None:
    assert hold_expired(now=now, started=0.0, hold=0.05, holds_prefetched=holds) is expected


def test_a_held_prefetch_shortens_the_poll_to_its_hold() -> None:
    assert poll_interval(holds_prefetched=True, hold=0.05) == 0.05
    assert poll_interval(holds_prefetched=False, hold=0.05) == POLL_S
    assert poll_interval(holds_prefetched=True, hold=5.0) == POLL_S
