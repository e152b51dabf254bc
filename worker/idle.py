"""How an idle worker waits for work, as pure functions.

It blocks on its queues (BLMOVE; one wait per queue, `worker.blockers`): a push wakes it
at once; the timeout only bounds how late a due retry or a stop request is noticed. Where
Redis refuses every way of waiting on several queues (`worker.wakeup`), they are polled:
sleeps grow from 1 ms to `WORKER_POLL_INTERVAL`, never past the next scheduled job's due
time.
"""

from __future__ import annotations

#: Longest block on a single queue (seconds).
BLOCK_S = 1.0


def block_timeout(next_due: float | None, now: float) -> float:
    """Seconds to block on the one queue: at most `BLOCK_S`, waking for the next due job."""
    timeout = BLOCK_S if next_due is None else min(BLOCK_S, next_due - now)
    return max(0.01, timeout)


def poll_sleep(previous: float, poll_interval: float, next_due: float | None, now: float) -> float:
    """The next sleep between polls of several queues: doubling from 1 ms to the interval."""
    sleep = min(max(previous * 2, 0.001), poll_interval)
    if next_due is not None:
        sleep = min(sleep, max(0.0, next_due - now))
    return sleep
