"""The Redis side of the queue: every state change goes through `stoker.lua`.

A job never exists only in a worker's memory: `fetch` moves it atomically from its queue
to the worker's in-flight list, and it leaves that list only through `ack`, `schedule`,
`fail` or `requeue_front`, each one atomic with the matching bookkeeping.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from worker.keys import Keys

_SCRIPT = resources.files("worker").joinpath("stoker.lua").read_text()


@dataclass
class Delivery:
    """A job taken from a queue and held in this worker's in-flight list."""

    raw: bytes
    queue: str
    inflight_key: str
    duplicate_of: str | None
    """Set when another worker is already running a job with the same id."""
    deliveries: int


@dataclass
class FetchResult:
    delivery: Delivery | None
    next_due: float | None
    """Score of the earliest scheduled job when nothing was ready."""


class Broker:
    """Queue operations for one worker (or a CLI) over one Redis connection."""

    def __init__(self, client: redis.Redis, keys: Keys, worker_id: str = "cli") -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self._script = client.register_script(_SCRIPT)

    def _call(self, keys: list[str], *args: Any) -> Any:
        return self._script(keys=keys, args=list(args))

    # Producer side
    def enqueue(self, queue: str, payload: str, *, run_at: float | None = None) -> None:
        if run_at and run_at > time.time():
            self.client.zadd(self.keys.scheduled, {f"{self.keys.queue(queue)}\n{payload}": run_at})
        else:
            self.client.lpush(self.keys.queue(queue), payload)

    # Worker side
    def fetch(self, queues: list[str], *, promote_limit: int = 100) -> FetchResult:
        """Promote due scheduled jobs, then take the oldest job of the first non-empty queue."""
        keys = [self.keys.running, self.keys.deliveries, self.keys.scheduled]
        for q in queues:
            keys += [self.keys.queue(q), self.keys.inflight(self.worker_id, q)]
        res = self._call(keys, "fetch", time.time(), self.worker_id, promote_limit)
        if not res[0]:
            due = res[4] if len(res) > 4 and res[4] not in (b"", "") else None
            return FetchResult(None, float(due) if due is not None else None)
        queue = queues[int(res[1]) - 1]
        return FetchResult(self._delivery(res[0], queue, res[2], res[3]), None)

    def _delivery(self, raw: bytes, queue: str, holder: Any, count: Any) -> Delivery:
        holder_s = holder.decode() if isinstance(holder, bytes) else holder
        return Delivery(
            raw=raw,
            queue=queue,
            inflight_key=self.keys.inflight(self.worker_id, queue),
            duplicate_of=holder_s or None,
            deliveries=int(count or 0),
        )

    def block_fetch(self, queue: str, timeout: float) -> Delivery | None:
        """Wait up to `timeout` s for a job on `queue`, moving it atomically (BLMOVE)."""
        inflight = self.keys.inflight(self.worker_id, queue)
        raw = self.client.blmove(self.keys.queue(queue), inflight, timeout, "RIGHT", "LEFT")
        if raw is None:
            return None
        holder, count = self._call(
            [self.keys.running, self.keys.deliveries], "claim", self.worker_id, raw
        )
        return self._delivery(raw, queue, holder, count)

    def rewrite(self, delivery: Delivery, payload: str) -> Delivery:
        """Replace an id-less in-flight payload with its normalized form (which has an id)."""
        holder, count = self._call(
            [delivery.inflight_key, self.keys.running, self.keys.deliveries],
            "rewrite",
            delivery.raw,
            payload,
            self.worker_id,
        )
        delivery.raw = payload.encode()
        delivery.duplicate_of = (holder.decode() if isinstance(holder, bytes) else holder) or None
        delivery.deliveries = int(count or 0)
        return delivery

    def _ack_call(self, delivery: Delivery, job_id: str | None) -> tuple[list[str], list[Any]]:
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries]
        return keys, ["ack", delivery.raw, job_id or ""]

    def ack(self, delivery: Delivery, job_id: str | None) -> None:
        """Take a job whose outcome is recorded out of flight."""
        keys, args = self._ack_call(delivery, job_id)
        self._script(keys=keys, args=args)

    def ack_many(self, acks: list[tuple[Delivery, str | None]]) -> None:
        """Acknowledge several jobs in one round trip (each ack stays its own atomic call)."""
        if len(acks) == 1:
            self.ack(*acks[0])
            return
        pipe = self.client.pipeline(transaction=False)
        for delivery, job_id in acks:
            keys, args = self._ack_call(delivery, job_id)
            self._script(keys=keys, args=args, client=pipe)
        pipe.execute()

    def drop_duplicate(self, delivery: Delivery) -> None:
        self._call([delivery.inflight_key], "drop", delivery.raw)

    def schedule(self, delivery: Delivery, job_id: str, payload: str, due: float) -> None:
        """Take the job out of flight and into the scheduled set, due at `due` (epoch s)."""
        member = f"{self.keys.queue(delivery.queue)}\n{payload}"
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries]
        self._call([*keys, self.keys.scheduled], "schedule", delivery.raw, job_id, due, member)

    def fail(self, delivery: Delivery, job_id: str | None, entry: dict[str, Any]) -> None:
        """Move the job from flight to the failed list as `entry`."""
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries, self.keys.failed]
        self._call(keys, "fail", delivery.raw, job_id or "", json.dumps(entry, default=str))

    def requeue_front(self, delivery: Delivery, job_id: str, payload: str) -> None:
        """Put the job back at the front of its queue (graceful shutdown), no attempt charged."""
        keys = [delivery.inflight_key, self.keys.running, self.keys.deliveries]
        keys.append(self.keys.queue(delivery.queue))
        self._call(keys, "requeue_front", delivery.raw, job_id, payload)

    # Failed list
    def failed_entries(self) -> list[tuple[bytes, dict[str, Any]]]:
        out = []
        for raw in self.client.lrange(self.keys.failed, 0, -1):
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {"id": None, "raw": raw.decode(errors="replace")}
            out.append((raw, entry if isinstance(entry, dict) else {"raw": entry}))
        return out

    def requeue_failed(self, raw_entry: bytes, queue: str, payload: str) -> bool:
        keys = [self.keys.failed, self.keys.queue(queue)]
        return bool(self._call(keys, "requeue_failed", raw_entry, payload))

    # Workers and recovery
    def recover(
        self, dead_worker: str, queues: list[str], max_deliveries: int, failed_at: str
    ) -> tuple[list[str], list[str]]:
        """Return a dead worker's in-flight jobs to their queues (poison pills to failed)."""
        keys = [
            self.keys.running,
            self.keys.deliveries,
            self.keys.failed,
            self.keys.heartbeat(dead_worker),
            self.keys.worker(dead_worker),
            self.keys.workers,
        ]
        for q in queues:
            keys += [self.keys.inflight(dead_worker, q), self.keys.queue(q)]
        recovered, poisoned = self._call(keys, "recover", dead_worker, max_deliveries, failed_at)
        return [_s(x) for x in recovered], [_s(x) for x in poisoned]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
