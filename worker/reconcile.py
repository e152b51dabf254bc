"""Reconciling Redis with the ledger: restore every unfinished job that Redis lost.

The jobs table is the ledger of what must happen; Redis only carries the work. When
Redis loses data (a restart with persistence off, a failover to a replica that had not
caught up, a flush), a row still says `queued`, `retrying` or `running` while its job is
in no queue, no scheduled set and no in-flight list. `plan` decides, as a pure function of
the rows, an atomic snapshot of Redis (`worker.whereabouts`) and the clock, what to
restore:

| row | in Redis? | its worker | restored to |
|---|---|---|---|
| any unfinished | yes (queue, scheduled, in flight, failed list) | - | nothing |
| written less than `grace` ago | no | - | nothing yet (an enqueue pushes right after its commit) |
| `queued` | no | - | its queue (the scheduled set when its `run_at` is ahead) |
| `retrying` | no | - | the scheduled set, at its `run_at` |
| `running` | no | alive, started before the attempt | nothing: it runs it from memory |
| `running` | no | gone (or restarted) for `confirm` s | its queue, attempt not charged |

A finished row (`succeeded`, `failed`, `cancelled`) is never touched, and a worker skips
a redelivered job whose row says succeeded or cancelled, so restoring twice is harmless;
the passes are idempotent all the same: a restored job is in Redis at the next pass.
`Reconciler` (in `worker.reconciler`) carries a plan out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.keys import queue_name_error
from worker.lifecycle import JobStatus

Where = Literal["queue", "scheduled"]


@dataclass(frozen=True)
class LedgerRow:
    """The columns of an unfinished jobs row that reconciling reads (times: epoch s)."""

    id: str
    status: str
    queue: str | None = None
    payload: str | None = None
    processor: str | None = None
    params: Any = None
    attempts: int = 0
    max_attempts: int | None = None
    queued_at: float | None = None
    run_at: float | None = None
    worker_id: str | None = None
    started_at: float | None = None
    updated_at: float = 0.0


@dataclass(frozen=True)
class Restore:
    """Put job `job_id` back: `payload` onto `queue`, or into the scheduled set at `due`."""

    job_id: str
    where: Where
    queue: str
    payload: str
    due: float | None
    reason: str
    rebuilt: bool = False
    """The row had no payload: this one was rebuilt from its columns (and is stored)."""


@dataclass(frozen=True)
class Hold:
    """A missing job left alone for now, and why."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    restores: list[Restore] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    suspects: dict[str, float] = field(default_factory=dict)
    """Running jobs whose worker looked gone, with when it first did (for `confirm`)."""
    unrestorable: list[str] = field(default_factory=list)
    """Missing jobs whose row has neither a payload nor a processor to rebuild one."""


def payload_for(row: LedgerRow, attempts: int) -> tuple[str | None, bool]:
    """The payload to push for `row` with `attempts` made: its stored one (attempts and
    `run_at` updated: the due time is the scheduled score), else one rebuilt from its
    columns. Returns (payload, rebuilt); None when there is nothing to build it from."""
    data: dict[str, Any] | None = None
    if row.payload:
        try:
            loaded = json.loads(row.payload)
        except (ValueError, RecursionError):
            loaded = None
        data = loaded if isinstance(loaded, dict) else None
    rebuilt = data is None
    if data is None:
        if not row.processor:
            return None, False
        data = {"id": row.id, "processor": row.processor, "params": row.params or {}}
        if row.max_attempts:
            data["max_attempts"] = row.max_attempts
        if row.queued_at is not None:
            data["queued_at"] = row.queued_at
    data["id"] = row.id
    data.pop("run_at", None)
    data.pop("attempts", None)
    if attempts:
        data["attempts"] = attempts
    return json.dumps(data, separators=(",", ":")), rebuilt


def _queue_of(row: LedgerRow, default_queue: str) -> str:
    queue = row.queue
    return queue if queue and queue_name_error(queue) is None else default_queue


def _worker_runs_it(row: LedgerRow, live_workers: Mapping[str, float | None]) -> bool:
    """Whether the row's worker is alive and is the process that started this attempt."""
    if row.worker_id is None or row.worker_id not in live_workers:
        return False
    worker_started = live_workers[row.worker_id]
    if worker_started is None or row.started_at is None:
        return True
    return worker_started <= row.started_at + 1.0


def decide(
    row: LedgerRow,
    present: frozenset[str],
    live_workers: Mapping[str, float | None],
    *,
    now: float,
    grace: float,
    default_queue: str,
) -> Restore | Hold | None:
    """What to do about one unfinished row (see the module's table). None: nothing."""
    if row.id in present:
        return None
    if now - row.updated_at < grace:
        return Hold(row.id, "written moments ago; its push may not have landed yet")
    queue = _queue_of(row, default_queue)
    if row.status == JobStatus.RUNNING:
        if _worker_runs_it(row, live_workers):
            return Hold(row.id, f"running on live worker {row.worker_id}")
        attempts, where, due = max(row.attempts - 1, 0), "queue", None
        reason = f"running on worker {row.worker_id}, which is gone"
    elif row.status == JobStatus.RETRYING:
        attempts, where, due = row.attempts, "scheduled", row.run_at or now
        reason = "retrying but in no scheduled set"
    elif row.status == JobStatus.QUEUED:
        attempts, reason = row.attempts, "queued but in no queue"
        ahead = row.run_at is not None and row.run_at > now
        where, due = ("scheduled", row.run_at) if ahead else ("queue", None)
    else:
        return None
    payload, rebuilt = payload_for(row, attempts)
    if payload is None:
        return Hold(row.id, "no payload and no processor to rebuild one from")
    return Restore(row.id, where, queue, payload, due, reason, rebuilt)  # type: ignore[arg-type]


def plan(
    rows: Iterable[LedgerRow],
    present: frozenset[str],
    live_workers: Mapping[str, float | None],
    *,
    now: float,
    grace: float,
    default_queue: str,
    suspects: Mapping[str, float] | None = None,
    confirm: float = 0.0,
) -> Plan:
    """Decide every row. A running job whose worker looks gone is restored only once it has
    looked so for `confirm` s (`suspects`: since when): after a Redis loss every worker
    needs one heartbeat to show it is alive."""
    suspects = suspects or {}
    out = Plan()
    for row in sorted(rows, key=lambda r: (r.queued_at or 0.0, r.id)):
        action = decide(
            row, present, live_workers, now=now, grace=grace, default_queue=default_queue
        )
        if action is None:
            continue
        if isinstance(action, Hold):
            if action.reason.startswith("no payload"):
                out.unrestorable.append(row.id)
            out.holds.append(action)
            continue
        if row.status == JobStatus.RUNNING:
            since = suspects.get(row.id, now)
            out.suspects[row.id] = since
            if now - since < confirm:
                out.holds.append(Hold(row.id, "its worker looks gone; confirming"))
                continue
        out.restores.append(action)
    return out
