"""Signals: kept while the worker starts, then turned into stop requests.

SIGTERM or SIGINT asks the worker to stop: it stops fetching, lets the running job finish
within `WORKER_SHUTDOWN_GRACE`, then asks it to stop and puts it back at the front of its
queue. A second signal stops the running job at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

pending: list[int] = []


def remember(signum: int, _frame: Any) -> None:
    """Early signal handler: keep the signal for the worker to act on when it starts."""
    pending.append(signum)


def install(request_stop: Callable[..., None], stopping: Callable[[], bool]) -> None:
    """Route SIGTERM and SIGINT (and any that arrived early) to `request_stop`."""

    def on_signal(signum: int, _frame: Any) -> None:
        request_stop(force=stopping(), reason=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for signum in pending:
        on_signal(signum, None)
    pending.clear()
