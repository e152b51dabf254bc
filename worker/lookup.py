"""Where jobs are and what they did, read from Redis and SQL: the CLI's and the web app's
reads (`worker.admin.Admin` adds the actions). Readers never raise on hostile entries left
in Redis (oversized, malformed, deeply nested payloads; unreadable failed entries).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from config import Settings
from worker.broker import Broker
from worker.failed import read_entry
from worker.heartbeat import live_workers
from worker.keys import Keys
from worker.lifecycle import JobStatus
from worker.protocol import MAX_DEPTH, job_id_of, nesting_depth
from worker.store import JobStore


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace")


class Lookup:
    """Reads of jobs, queues, workers and the failed list, over one Redis client and one
    store."""

    def __init__(self, settings: Settings, client: redis.Redis, store: JobStore) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.keys = Keys.from_settings(settings)
        self.broker = Broker(client, self.keys, max_payload_bytes=settings.max_payload_bytes)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job's row, else where it sits in Redis (pushed raw, not yet taken)."""
        return self.store.get(job_id) or self.find_in_redis(job_id)

    def find_in_redis(self, job_id: str) -> dict[str, Any] | None:
        for q in self.settings.queues:
            for raw in self.client.lrange(self.keys.queue(q), 0, -1):
                if self._id(raw) == job_id:
                    return {
                        "id": job_id,
                        "status": JobStatus.QUEUED,
                        "queue": q,
                        "job": _loads(raw),
                    }
        for member, score in self.client.zrange(self.keys.scheduled, 0, -1, withscores=True):
            _, _, payload = member.partition(b"\n")
            if self._id(payload) == job_id:
                return {
                    "id": job_id,
                    "status": "scheduled",
                    "run_at": score,
                    "job": _loads(payload),
                }
        entry = self.failed_entry(job_id)
        if entry is not None:
            return {"id": job_id, "status": "failed", "error": entry.get("error")}
        return None

    def _id(self, raw: bytes) -> str | None:
        # The worker's own rule (size, depth, id), so a job is found under the id it is filed by.
        if len(raw) > self.settings.max_payload_bytes or nesting_depth(raw) > MAX_DEPTH:
            return None
        try:
            return job_id_of(json.loads(raw))
        except (ValueError, RecursionError):
            return None

    def info(self) -> dict[str, Any]:
        c, k = self.client, self.keys
        queues = {q: c.llen(k.queue(q)) for q in self.settings.queues}
        workers = self.workers()
        return {
            "queues": queues,
            "scheduled": c.zcard(k.scheduled),
            "failed": c.llen(k.failed),
            "running": c.hlen(k.running),
            "workers": workers,
            "live_workers": sum(1 for w in workers if w["alive"]),
            "jobs_by_status": self.store.status_counts(),
        }

    def failed(self) -> list[tuple[bytes, dict[str, Any]]]:
        """The failed list, newest first: (raw entry, decoded entry)."""
        return [(raw, read_entry(raw)) for raw in self.client.lrange(self.keys.failed, 0, -1)]

    def failed_entry(self, job_id: str) -> dict[str, Any] | None:
        for _, entry in self.failed():
            if entry_matches(entry, job_id):
                return entry
        return None

    def workers(self) -> list[dict[str, Any]]:
        """Registered workers (live_workers) with what their in-flight lists hold.

        `in_flight_by_queue` counts per queue; `current_job` is the ids, comma-separated.
        """
        c, k = self.client, self.keys
        workers = live_workers(c, k)
        pipe = c.pipeline(transaction=False)
        slots = [(w, q) for w in workers for q in (w.get("queues") or "").split(",") if q]
        for w, q in slots:
            pipe.lrange(k.inflight(w["id"], q), 0, -1)
        for w in workers:
            w["in_flight"], w["in_flight_by_queue"], w["current_job"] = 0, {}, ""
        # The in-flight lists are the truth about what a worker runs right now.
        for (w, q), held in zip(slots, pipe.execute() if slots else [], strict=True):
            ids = [i for i in (self._id(raw) for raw in held) if i]
            w["in_flight"] += len(held)
            w["in_flight_by_queue"][q] = len(held)
            w["current_job"] = ",".join(filter(None, [w["current_job"], *ids]))
        return workers

    def queue_stats(self, workers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Per queue, in priority order: depth, age of the oldest job (s), in flight,
        scheduled and failed. Scheduled and failed counts per queue come from reading the
        set and the list, so past `SAMPLE` entries they are None (totals: `info`)."""
        c, k = self.client, self.keys
        names = list(self.settings.queues)
        workers = self.workers() if workers is None else workers
        pipe = c.pipeline(transaction=False)
        for q in names:
            pipe.llen(k.queue(q))
            pipe.lindex(k.queue(q), -1)
        pipe.zcard(k.scheduled)
        pipe.llen(k.failed)
        *per_queue, n_scheduled, n_failed = pipe.execute()
        scheduled = self._count_by_queue_scheduled() if n_scheduled <= SAMPLE else None
        failed = self._count_by_queue_failed() if n_failed <= SAMPLE else None
        now = time.time()
        out = []
        for i, q in enumerate(names):
            depth, oldest = per_queue[2 * i], per_queue[2 * i + 1]
            out.append(
                {
                    "queue": q,
                    "key": k.queue(q),
                    "depth": int(depth),
                    "oldest_age_s": _age(oldest, now, self.settings.max_payload_bytes),
                    "in_flight": sum(w["in_flight_by_queue"].get(q, 0) for w in workers),
                    "scheduled": None if scheduled is None else scheduled.get(k.queue(q), 0),
                    "failed": None if failed is None else failed.get(q, 0),
                }
            )
        return out

    def _count_by_queue_scheduled(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for member in self.client.zrange(self.keys.scheduled, 0, -1):
            key = member.partition(b"\n")[0].decode("utf-8", errors="replace")
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _count_by_queue_failed(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, entry in self.failed():
            q = entry.get("queue")
            if isinstance(q, str):
                counts[q] = counts.get(q, 0) + 1
        return counts

    def scheduled(self, limit: int = 500) -> list[dict[str, Any]]:
        """Retries and `run_at` jobs, soonest first: id, queue, due (epoch s), kind, job."""
        out = []
        queue_of = {self.keys.queue(q): q for q in self.settings.queues}
        members = self.client.zrange(self.keys.scheduled, 0, limit - 1, withscores=True)
        for member, score in members:
            key, _, payload = member.partition(b"\n")
            job = _loads(payload) if len(payload) <= self.settings.max_payload_bytes else None
            attempts = job.get("attempts") if isinstance(job, dict) else None
            name = key.decode("utf-8", errors="replace")
            out.append(
                {
                    "id": self._id(payload),
                    "queue": queue_of.get(name, name),
                    "due": score,
                    "kind": "retry" if isinstance(attempts, int) and attempts > 0 else "run_at",
                    "job": job,
                }
            )
        return out

    def failed_groups(self) -> dict[str, list[dict[str, Any]]]:
        """The failed list grouped by error type (`?` when unknown), newest first in each."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for _, entry in self.failed():
            groups.setdefault(failed_type(entry), []).append(entry)
        return groups


def entry_matches(entry: dict[str, Any], job_id: str) -> bool:
    if entry.get("id") == job_id:
        return True
    job = entry.get("job")
    return entry.get("id") is None and isinstance(job, dict) and str(job.get("id")) == job_id


#: Past this many scheduled or failed entries, per-queue counts are not computed.
SAMPLE = 2000


def failed_type(entry: dict[str, Any]) -> str:
    """A failed entry's error type, `?` when it has none."""
    error = entry.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return str(kind) if kind else "?"


def _age(raw: bytes | None, now: float, max_bytes: int) -> float | None:
    """Seconds since a queued payload's `queued_at`, None when it has none."""
    if raw is None or len(raw) > max_bytes:
        return None
    data = _loads(raw)
    value = data.get("queued_at") if isinstance(data, dict) else None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return max(0.0, now - float(value))
        if isinstance(value, str):
            from datetime import UTC, datetime

            t = datetime.fromisoformat(value)
            t = t if t.tzinfo else t.replace(tzinfo=UTC)
            return max(0.0, now - t.timestamp())
    except (ValueError, OverflowError):
        return None
    return None
