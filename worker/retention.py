"""Retention: finished jobs older than their status's retention are deleted, in batches.

`python -m worker prune --older-than 30d` does it once; in every worker a `Retention`
thread does it every `WORKER_RETENTION_INTERVAL` s for the ages in
`WORKER_RETENTION_DAYS`. Only `succeeded`, `failed` and `cancelled` jobs are ever
deleted, by the time they finished; their attempts and frame_results go with them (the
foreign keys cascade). Each batch is one short transaction of `WORKER_RETENTION_BATCH`
jobs taken under the recovery lock (so one worker prunes at a time, and never while
another recovers a dead worker's jobs), followed by a pause `AUTO_PAUSE_RATIO` times as
long as the batch took: the database spends at most a quarter of its time pruning (on
SQLite, whose writers take turns, the worker's group commits get the rest) and the hot
path's writes wait at most one batch.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, delete, func, select

from models import FINISHED
from worker.protocol import utcnow
from worker.store import attempts, frame_results, jobs, make_engine

log = structlog.get_logger("stoker.retention")

#: Seconds of pause per second of deleting, in the worker's automatic pruning.
AUTO_PAUSE_RATIO = 3.0

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, `2w`; a bare number is days."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"not an age: {text!r} (use e.g. 30d, 12h, 90m)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNITS[unit or "d"])


def plan_from_days(days: dict[str, float], now: datetime) -> dict[str, datetime]:
    """Status -> cutoff time, for statuses with a retention (0 or less: kept forever)."""
    return {s: now - timedelta(days=d) for s, d in days.items() if d > 0 and s in FINISHED}


@dataclass
class PruneResult:
    jobs: dict[str, int] = field(default_factory=dict)
    """Jobs deleted (or, in a dry run, that would be) by status."""
    attempts: int | None = None
    frame_results: int | None = None
    """Counted in a dry run only (they are deleted by the cascade)."""
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.jobs.values())


def _prunable(status: str, cutoff: datetime) -> Any:
    finished = func.coalesce(jobs.c.finished_at, jobs.c.updated_at)
    return (jobs.c.status == status) & (finished < cutoff)


def count_prunable(engine: Engine, plan: dict[str, datetime]) -> PruneResult:
    """What `prune` would delete, without deleting it."""
    started = time.monotonic()
    out = PruneResult(dry_run=True, attempts=0, frame_results=0)
    with engine.connect() as conn:
        for status, cutoff in plan.items():
            ids = select(jobs.c.id).where(_prunable(status, cutoff))
            out.jobs[status] = conn.execute(
                select(func.count()).select_from(ids.subquery())
            ).scalar_one()
            for table in (attempts, frame_results):
                n = conn.execute(
                    select(func.count()).where(table.c.job_id.in_(ids.scalar_subquery()))
                ).scalar_one()
                if table is attempts:
                    out.attempts = (out.attempts or 0) + n
                else:
                    out.frame_results = (out.frame_results or 0) + n
    out.seconds = time.monotonic() - started
    return out


def delete_batch(engine: Engine, status: str, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` prunable jobs of `status` (one transaction); how many went."""
    chosen = select(jobs.c.id).where(_prunable(status, cutoff)).limit(batch)
    stmt = delete(jobs).where(jobs.c.id.in_(chosen.scalar_subquery()))
    # Conditions repeated on the outer delete: a job requeued meanwhile stays.
    stmt = stmt.where(_prunable(status, cutoff))
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount or 0


def prune(
    engine: Engine,
    plan: dict[str, datetime],
    *,
    batch: int = 1000,
    lock: Callable[[], contextlib.AbstractContextManager[bool]] | None = None,
    wait: Callable[[float], bool] = lambda s: (time.sleep(s), False)[1],
    pause_ratio: float = 1.0,
) -> PruneResult:
    """Delete every prunable job of `plan`, `batch` at a time.

    `lock()` guards each batch (yields False: not this time, try again after a pause);
    after each batch `wait(pause_ratio * its duration)` pauses, and returns True to stop.
    """
    started = time.monotonic()
    out = PruneResult()
    for status, cutoff in plan.items():
        out.jobs[status] = 0
        while True:
            t0 = time.monotonic()
            with lock() if lock is not None else contextlib.nullcontext(True) as held:
                n = delete_batch(engine, status, cutoff, batch) if held else -1
            if n == 0:
                break
            out.jobs[status] += max(n, 0)
            if wait(max(0.05, (time.monotonic() - t0) * pause_ratio)):
                out.seconds = time.monotonic() - started
                return out
    out.seconds = time.monotonic() - started
    return out


class Retention:
    """The worker's automatic pruning thread (started by `start`)."""

    def __init__(self, settings: Any, client: Any, keys: Any, database_url: str) -> None:
        self.days = dict(settings.retention_days)
        self.interval = settings.retention_interval
        self.batch = settings.retention_batch
        self.client = client
        self.keys = keys
        self.database_url = database_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: PruneResult | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and any(d > 0 for d in self.days.values())

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="stoker-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        token = uuid.uuid4().hex
        held = bool(self.client.set(self.keys.recovery_lock, token, nx=True, px=10_000))
        try:
            yield held
        finally:
            if held and self.client.get(self.keys.recovery_lock) == token.encode():
                self.client.delete(self.keys.recovery_lock)

    def run_once(self) -> PruneResult:
        engine = make_engine(self.database_url)
        try:
            plan = plan_from_days(self.days, utcnow())
            return prune(
                engine,
                plan,
                batch=self.batch,
                lock=self._lock,
                wait=self._stop.wait,
                pause_ratio=AUTO_PAUSE_RATIO,
            )
        finally:
            engine.dispose()

    def _run(self) -> None:
        # Workers started together spread their first rounds over a minute.
        delay = random.uniform(5, 60)
        while not self._stop.wait(min(delay, self.interval)):
            delay = self.interval
            try:
                self.last = result = self.run_once()
                if result.total:
                    log.info(
                        "pruned finished jobs", jobs=result.jobs, seconds=round(result.seconds, 1)
                    )
            except Exception as exc:  # the database or Redis away: next round
                log.warning("pruning skipped", error=str(exc)[:200])
