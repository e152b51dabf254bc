"""Carrying out reconcile passes: read the ledger and Redis, restore what Redis lost.

One pass, under the recovery lock (so it never overlaps dead-worker recovery or another
pass): the unfinished rows (when there are none, that one indexed query is the whole
pass), an atomic snapshot of Redis, `worker.reconcile.plan`, a re-read of the rows about
to be restored (a job that finished meanwhile is left alone), then the pushes. Each pass
sets `ledger_mark` in Redis; a worker that finds it gone knows Redis lost its data and
reconciles at once. `python -m worker reconcile [--dry-run]` runs one pass by hand.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import structlog
from sqlalchemy import Engine

from config import Settings
from worker.keys import Keys, queue_name_error
from worker.ledger import Ledger
from worker.reconcile import Hold, Plan, Restore, plan
from worker.whereabouts import snapshot

log = structlog.get_logger("stoker.reconcile")

_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
_LOCK_MS = 60_000


def pass_due(
    mark: float | None, now: float, lost_at: float | None, interval: float, follow_up: bool
) -> bool:
    """Whether a worker should reconcile now.

    `mark`: when the last pass (by any worker) started, None when Redis has no mark (it
    lost its data since); `lost_at`: when this worker last reconnected (or started), None
    when nothing was lost; `interval`: the periodic pass (0: none); `follow_up`: held jobs
    are due for another look. All times on Redis's clock.
    """
    if mark is None or follow_up:
        return True
    if lost_at is not None and mark < lost_at:
        return True
    return bool(interval) and now - mark >= interval


def _mark_time(raw: bytes | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass
class Report:
    """What one pass found and did."""

    unfinished: int = 0
    restored: list[Restore] = field(default_factory=list)
    held: list[Hold] = field(default_factory=list)
    unrestorable: list[str] = field(default_factory=list)
    skipped_changed: int = 0
    """Planned restores dropped because their row changed before the push."""
    seconds: float = 0.0
    dry_run: bool = False

    def count(self, where: str) -> int:
        return sum(1 for r in self.restored if r.where == where)


class Reconciler:
    """Reconcile passes for one worker (or the CLI): `tick()` between jobs, `run()` once."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        engine: Engine,
        settings: Settings,
        worker_id: str = "cli",
        on_restored: Callable[[Restore], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ledger = Ledger(engine)
        self.settings = settings
        self.worker_id = worker_id
        self.on_restored = on_restored
        """Called once per restored job (a metrics hook)."""
        self.restored_total = 0
        self._lost = True  # at startup: one pass, unless another worker's starts after now
        self._lost_at: float | None = None
        self._follow_up: float | None = None
        self._suspects: dict[str, float] = {}

    def redis_lost(self) -> None:
        """Redis was unreachable or replaced: a pass is due once it answers again, unless
        another worker's pass starts after that."""
        self._lost, self._lost_at = True, None

    def due(self) -> bool:
        """Whether this worker should run a pass now (one GET and one TIME)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.ledger_mark)
        pipe.time()
        raw, (sec, usec) = pipe.execute()
        now = sec + usec / 1e6  # Redis's clock: every worker compares on the same one
        if self._lost and self._lost_at is None:
            self._lost_at = now
        follow_up = self._follow_up is not None and time.monotonic() >= self._follow_up
        decision = pass_due(
            _mark_time(raw), now, self._lost_at if self._lost else None,
            self.settings.reconcile_interval, follow_up,
        )  # fmt: skip
        if not decision and self._lost:
            self._lost = False  # another worker reconciled since this one's loss
        return decision

    def tick(self) -> Report | None:
        """A pass when one is due and the recovery lock is free; None otherwise."""
        if not self.due():
            return None
        return self.run()

    def run(self, *, dry_run: bool = False) -> Report | None:
        """One pass under the recovery lock; None when another holder has the lock."""
        token = uuid.uuid4().hex
        if not self.client.set(self.keys.recovery_lock, token, nx=True, px=_LOCK_MS):
            return None
        try:
            sec, usec = self.client.time()
            report = self._pass(dry_run)
        finally:
            self.client.eval(_UNLOCK, 1, self.keys.recovery_lock, token)
        if not dry_run:
            self._after(report, sec + usec / 1e6)
        return report

    def _after(self, report: Report, started: float) -> None:
        self.client.set(self.keys.ledger_mark, repr(started))
        self._lost = False
        # Held jobs are looked at again soon: after the grace, or the heartbeat confirm.
        wait = max(self.settings.reconcile_grace, self._confirm(), 0.5)
        self._follow_up = time.monotonic() + wait if report.held else None

    def _confirm(self) -> float:
        return self.settings.heartbeat_ttl / 2

    def _pass(self, dry_run: bool) -> Report:
        started = time.monotonic()
        rows = self.ledger.unfinished()
        report = Report(unfinished=len(rows), dry_run=dry_run)
        if rows:
            queues = list(self.settings.queues)
            queues += sorted(
                {r.queue for r in rows if r.queue and queue_name_error(r.queue) is None}
            )
            where = snapshot(self.client, self.keys, queues, self.settings.max_payload_bytes)
            decided = plan(
                rows,
                where.present,
                where.live_workers,
                now=time.time(),
                grace=self.settings.reconcile_grace,
                default_queue=self.settings.queues[0],
                suspects=self._suspects,
                confirm=self._confirm(),
            )
            self._suspects = decided.suspects
            report.held, report.unrestorable = decided.holds, decided.unrestorable
            if dry_run:
                report.restored = decided.restores
            else:
                before = {r.id: (r.status, r.updated_at) for r in rows}
                report.restored = self._restore(decided, before, report)
        report.seconds = time.monotonic() - started
        self._log(report)
        return report

    def _restore(
        self, decided: Plan, before: dict[str, tuple[str, float]], report: Report
    ) -> list[Restore]:
        """Push the planned jobs whose rows are unchanged since they were planned."""
        if not decided.restores:
            return []
        now = self.ledger.rows([r.job_id for r in decided.restores])
        restores = [
            r
            for r in decided.restores
            if r.job_id in now
            and (now[r.job_id].status, now[r.job_id].updated_at) == before[r.job_id]
        ]
        report.skipped_changed = len(decided.restores) - len(restores)
        pipe = self.client.pipeline(transaction=False)
        # Onto the front of the queue (the right end), the oldest ending up first in line.
        for r in reversed(restores):
            if r.where == "queue":
                pipe.rpush(self.keys.queue(r.queue), r.payload)
            else:
                member = f"{self.keys.queue(r.queue)}\n{r.payload}"
                pipe.zadd(self.keys.scheduled, {member: r.due or time.time()})
        pipe.execute()
        self.ledger.store_payloads({r.job_id: r.payload for r in restores if r.rebuilt})
        self.restored_total += len(restores)
        if self.on_restored is not None:
            for r in restores:
                self.on_restored(r)
        return restores

    def _log(self, report: Report) -> None:
        fields = {
            "unfinished": report.unfinished,
            "to_queue": report.count("queue"),
            "to_scheduled": report.count("scheduled"),
            "held": len(report.held),
            "unrestorable": len(report.unrestorable),
            "seconds": round(report.seconds, 4),
            "by": self.worker_id,
        }
        if report.dry_run:
            log.info("reconcile dry run", **fields)
        elif report.restored or report.unrestorable:
            ids = [r.job_id for r in report.restored[:20]]
            log.warning("reconcile restored jobs Redis had lost", job_ids=ids, **fields)
        else:
            log.debug("reconcile: nothing missing", **fields)
