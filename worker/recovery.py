"""Recovering the jobs of dead workers.

A worker whose heartbeat key has expired is dead (kill -9, power loss, a lost machine).
Any live worker may notice; the one holding the recovery lock returns the dead worker's
in-flight jobs to the front of their queues in one Lua call per worker. A job delivered
`WORKER_MAX_DELIVERIES` times without an outcome has taken down a worker each time: it
goes to the failed list as a poison pill instead of looping forever.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog

from config import Settings
from worker.broker import Broker
from worker.protocol import utcnow
from worker.store import JobStore

log = structlog.get_logger("stoker.recovery")


class Recovery:
    def __init__(self, broker: Broker, store: JobStore, settings: Settings, worker_id: str) -> None:
        self.broker = broker
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self._missing_since: dict[str, float] = {}

    def dead_workers(self) -> list[tuple[str, list[str]]]:
        """(worker id, its queues) for registered workers whose heartbeat expired.

        A worker counts as dead only once this worker has seen its heartbeat missing for
        half a TTL: after a Redis restart every heartbeat has expired at once, and the live
        workers need one beat to show it.
        """
        client, keys = self.broker.client, self.broker.keys
        now = time.monotonic()
        confirm = self.settings.heartbeat_ttl / 2
        dead = []
        registered = set()
        for raw in client.smembers(keys.workers):
            wid = raw.decode() if isinstance(raw, bytes) else raw
            registered.add(wid)
            if wid == self.worker_id or client.exists(keys.heartbeat(wid)):
                self._missing_since.pop(wid, None)
                continue
            if now - self._missing_since.setdefault(wid, now) < confirm:
                continue
            queues_raw = client.hget(keys.worker(wid), "queues")
            queues = queues_raw.decode().split(",") if queues_raw else list(self.settings.queues)
            dead.append((wid, [q for q in queues if q]))
        for wid in set(self._missing_since) - registered:
            del self._missing_since[wid]
        return dead

    def run(self, stats: Any = None) -> int:
        """Recover every dead worker's jobs; returns how many jobs were handled."""
        dead = self.dead_workers()
        if not dead:
            return 0
        client, keys = self.broker.client, self.broker.keys
        token = uuid.uuid4().hex
        if not client.set(keys.recovery_lock, token, nx=True, px=30_000):
            return 0
        handled = 0
        try:
            for wid, queues in dead:
                recovered, poisoned, cancelled = self.broker.recover(
                    wid, queues, self.settings.max_deliveries, utcnow().isoformat()
                )
                for job_id in recovered:
                    self.store.lost(job_id, worker_id=wid, poisoned=False)
                for job_id in poisoned:
                    self.store.lost(job_id, worker_id=wid, poisoned=True)
                for job_id in cancelled:
                    self.store.cancel(job_id)
                handled += len(recovered) + len(poisoned) + len(cancelled)
                log.warning(
                    "recovered jobs of a dead worker",
                    dead_worker=wid,
                    requeued=recovered,
                    poison_pills=poisoned,
                    cancelled=cancelled,
                    by=self.worker_id,
                )
                if stats is not None:
                    stats.recovered += len(recovered)
        finally:
            # Compare-and-delete in one script: a lock that expired meanwhile and was
            # taken by another worker is not ours to delete.
            self.broker.unlock(keys.recovery_lock, token)
        return handled
