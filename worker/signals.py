"""Signals that arrive before the worker is ready to handle them."""

from __future__ import annotations

from typing import Any

pending: list[int] = []


def remember(signum: int, _frame: Any) -> None:
    """Early signal handler: keep the signal for the worker to act on when it starts."""
    pending.append(signum)
