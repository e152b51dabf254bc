"""The supervisor's periodic duties while a job runs, as pure decisions.

The executor's wait loop calls the running job's `poll` every `poll_interval` seconds,
whatever the job sends meanwhile (see `ProcessExecutor.execute`). Each duty is one rule:

- prefetch hold: a job taken ahead is handed back once the current one has run `hold` s;
- cancel: the cancel mark is read every `CANCEL_CHECK_S`; then "stop" (the job's next
  safe point), and "kill" after `STOP_BEFORE_KILL_S`;
- shutdown: past the grace, "stop"; "kill" a few seconds later (`shutdown_abort`);
- recovery: dead workers' jobs are recovered on the worker's maintenance clock;
- heartbeat: its own thread; the systemd watchdog is pinged from every poll.
"""

from __future__ import annotations

from typing import Literal

Abort = Literal["stop", "kill"] | None

#: Longest wait between two polls of a running job (seconds).
POLL_S = 0.25
#: How often a running job's cancel mark is read (seconds).
CANCEL_CHECK_S = 0.5
#: How long a job asked to stop may take before its executor is killed (seconds).
STOP_BEFORE_KILL_S = 5.0


def poll_interval(*, holds_prefetched: bool, hold: float) -> float:
    """A held prefetched job shortens the poll so its hold is kept."""
    return min(hold, POLL_S) if holds_prefetched else POLL_S


def hold_expired(*, now: float, started: float, hold: float, holds_prefetched: bool) -> bool:
    """Whether a job taken ahead must be handed back: the current one has run `hold` s."""
    return holds_prefetched and now - started >= hold


def cancel_abort(*, now: float, cancel_since: float) -> Abort:
    """A cancelled job: stop at its next safe point, killed if it has not within the bound
    (killing the executor would cost the resident models a reload)."""
    return "kill" if now - cancel_since >= STOP_BEFORE_KILL_S else "stop"


def shutdown_abort(*, now: float, stop_since: float | None, grace: float) -> Abort:
    """During a shutdown: nothing within the grace; then stop, then kill."""
    if stop_since is None or now - stop_since < grace:
        return None
    past = now - stop_since - grace
    return "kill" if past >= min(STOP_BEFORE_KILL_S, max(grace, 0.5)) else "stop"
