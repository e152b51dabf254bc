"""An idle worker's waits as tables: how long it blocks on one queue or sleeps between
polls of several."""

from __future__ import annotations

import pytest

from worker.idle import BLOCK_S, block_timeout, poll_sleep


@pytest.mark.parametrize(
    ("next_due", "expected"),
    [(None, BLOCK_S), (100.3, 0.3), (100.0, 0.01), (99.0, 0.01), (500.0, BLOCK_S)],
)
def test_block_timeout_wakes_for_the_next_due_job(next_due: float | None, expected: float) -> None:
    assert block_timeout(next_due, now=100.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("previous", "next_due", "expected"),
    [
        (0.0, None, 0.001),
        (0.001, None, 0.002),
        (0.016, None, 0.02),
        (0.02, None, 0.02),
        (0.016, 100.005, 0.005),
        (0.016, 99.0, 0.0),
    ],
)
def test_poll_sleeps_double_up_to_the_interval_and_never_past_a_due_job(
    previous: float, next_due: float | None, expected: float
) -> None:
    assert poll_sleep(previous, 0.02, next_due, now=100.0) == pytest.approx(expected)
