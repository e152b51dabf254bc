"""When a worker reconciles: a table of the pure `pass_due` decision."""

from __future__ import annotations

import pytest

from worker.reconciler import pass_due

NOW = 1000.0


@pytest.mark.parametrize(
    ("case", "mark", "lost_at", "interval", "follow_up", "due"),
    [
        ("Redis lost its data (no mark)", None, None, 60, False, True),
        ("a recent pass, nothing lost", NOW - 5, None, 60, False, False),
        ("the interval has passed", NOW - 61, None, 60, False, True),
        ("no periodic pass configured", NOW - 6000, None, 0, False, False),
        ("reconnected after the last pass", NOW - 5, NOW - 1, 60, False, True),
        ("another worker passed after the reconnect", NOW - 1, NOW - 5, 60, False, False),
        ("held jobs are due for another look", NOW - 1, None, 60, True, True),
    ],
)
def test_pass_due_decides_from_the_mark_the_loss_and_the_clock(
    case: str,
    mark: float | None,
    lost_at: float | None,
    interval: float,
    follow_up: bool,
    due: bool,
) -> None:
    assert pass_due(mark, NOW, lost_at, interval, follow_up) is due, case
