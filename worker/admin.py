"""Looking after jobs from outside a worker: the one place the CLI and the web app share.

Every action here acts on the job's actual state and says what it did:

- `enqueue` validates the queue name, the processor and its params first (nothing is
  written for a job that can never run), commits the job's `queued` row, then pushes it.
- `cancel` removes a waiting or scheduled job (its row becomes `cancelled`), or asks the
  worker holding a running job to stop it (that worker records `cancelled`); a finished or
  unknown job is left alone and the answer says so. No mark outlives the job.
- `requeue_failed` writes the row back to `queued` before the job is pushed, onto the
  queue it failed on (the entry's `queue`, a name).

Readers (`job`, `info`, `failed`) never raise on hostile entries left in Redis.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from config import Settings
from worker.broker import Broker
from worker.failed import read_entry
from worker.heartbeat import live_workers
from worker.keys import Keys, queue_name_error
from worker.lifecycle import JobStatus
from worker.protocol import BadPayload, Job, job_id_of, new_job_id, parse_payload, utcnow
from worker.store import JobStore


class AdminError(Exception):
    """An action that cannot be done; `code` is the HTTP-like status (404, 409, 422)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class CancelResult:
    job_id: str
    state: str
    """`removed` (from its queue), `unscheduled`, `stopping` (running: asked to stop),
    `finished` (nothing to do), or `unknown`."""
    message: str

    @property
    def acted(self) -> bool:
        return self.state in ("removed", "unscheduled", "stopping")


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", errors="replace")


def validate_params(processor: str, params: Any) -> None:
    """Raise AdminError (422) unless `processor` exists and accepts `params`."""
    from pydantic import ValidationError

    from processors.base import PermanentError
    from processors.registry import get_processor_class, known_names

    if processor not in known_names():
        known = ", ".join(sorted(known_names()))
        raise AdminError(f"unknown processor {processor!r}; known: {known}")
    try:
        cls = get_processor_class(processor)
    except PermanentError as exc:
        raise AdminError(str(exc)) from None
    try:
        cls.Params.model_validate(params)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        ]
        raise AdminError(f"invalid params for {processor}: {'; '.join(parts)}") from None


class Admin:
    """Operations on jobs, queues and the failed list, over one Redis client and one store."""

    def __init__(self, settings: Settings, client: redis.Redis, store: JobStore) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.keys = Keys.from_settings(settings)
        self.broker = Broker(client, self.keys, max_payload_bytes=settings.max_payload_bytes)

    # Reads
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
        if len(raw) > self.settings.max_payload_bytes:
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
            if _entry_matches(entry, job_id):
                return entry
        return None

    # Actions
    def enqueue(
        self,
        processor: str,
        params: Any,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        delay: float = 0.0,
        max_attempts: int | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Validate, commit the `queued` row, then push. Raises AdminError (422 / 409)."""
        queue = queue or self.settings.queues[0]
        if (error := queue_name_error(queue)) is not None:
            raise AdminError(error)
        if not isinstance(params, dict):
            raise AdminError("params must be a JSON object")
        validate_params(processor, params)
        data: dict[str, Any] = {
            "id": job_id or new_job_id(),
            "processor": processor,
            "params": params,
            "queued_at": utcnow().isoformat(),
        }
        if max_attempts:
            data["max_attempts"] = max_attempts
        if timeout is not None:
            data["timeout"] = timeout
        run_at = time.time() + delay if delay > 0 else None
        try:
            job, _ = parse_payload(json.dumps(data), max_bytes=self.settings.max_payload_bytes)
        except BadPayload as exc:
            raise AdminError(exc.reason) from None
        existing = self.store.get(job.id)
        if existing is not None and not JobStatus(existing["status"]).final:
            raise AdminError(f"job {job.id} is already {existing['status']}", 409)
        # The row keeps the due time, so a reconcile puts a delayed job back in the
        # scheduled set, not on its queue; the pushed payload has none (the score holds it).
        due = datetime.fromtimestamp(run_at, UTC) if run_at else None
        self.store.enqueued(job.model_copy(update={"run_at": due}), queue)
        self.broker.enqueue(queue, job.to_payload(), run_at=run_at)
        return job

    def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job wherever it is (see the module docstring)."""
        for _ in range(3):  # a job moving between places while we look is looked for again
            if (where := self._remove_waiting(job_id)) is not None:
                self.store.cancel(job_id)
                return CancelResult(job_id, where, f"job {job_id} cancelled ({where})")
            holder = self.broker.cancel_running(job_id)
            if holder is not None:
                msg = f"job {job_id} is running on {holder}; asked to stop (it records cancelled)"
                return CancelResult(job_id, "stopping", msg)
            row = self.store.get(job_id)
            if row is None:
                return CancelResult(job_id, "unknown", f"job {job_id}: unknown; nothing cancelled")
            if JobStatus(row["status"]).final:
                msg = f"job {job_id} already {row['status']}; nothing cancelled"
                return CancelResult(job_id, "finished", msg)
            time.sleep(0.05)
        msg = f"job {job_id} is {row['status']} but was not found in Redis; nothing cancelled"
        return CancelResult(job_id, "unknown", msg)

    def _remove_waiting(self, job_id: str) -> str | None:
        for member in self.client.zrange(self.keys.scheduled, 0, -1):
            _, _, payload = member.partition(b"\n")
            if self._id(payload) == job_id and self.client.zrem(self.keys.scheduled, member):
                self._ensure_row(payload, member.partition(b"\n")[0])
                return "unscheduled"
        for q in self.settings.queues:
            for raw in self.client.lrange(self.keys.queue(q), 0, -1):
                if self._id(raw) == job_id and self.client.lrem(self.keys.queue(q), 1, raw):
                    self._ensure_row(raw, q)
                    return "removed"
        return None

    def _ensure_row(self, raw: bytes, queue: bytes | str) -> None:
        """A job pushed straight to Redis gets a row, so its cancellation shows."""
        name = queue.decode() if isinstance(queue, bytes) else queue
        name = next((q for q in self.settings.queues if self.keys.queue(q) == name), name)
        try:
            job, _ = parse_payload(
                raw,
                default_processor=self.settings.queue_processors.get(name),
                max_bytes=self.settings.max_payload_bytes,
            )
        except BadPayload:
            return
        if self.store.get(job.id) is None:
            self.store.enqueued(job, name)

    def requeue_failed(self, job_id: str | None = None) -> list[tuple[str, str]]:
        """Requeue one failed job (or all when `job_id` is None): [(id, queue)] requeued.

        Raises AdminError(404) when `job_id` is not on the failed list.
        """
        done: list[tuple[str, str]] = []
        found = False
        for raw, entry in self.failed():
            if job_id is not None and not _entry_matches(entry, job_id):
                continue
            found = True
            requeued = self._requeue_entry(raw, entry)
            if requeued is not None:
                done.append(requeued)
        if job_id is not None and not found:
            raise AdminError(f"no failed job {job_id}", 404)
        return done

    def _requeue_entry(self, raw: bytes, entry: dict[str, Any]) -> tuple[str, str] | None:
        job = entry.get("job")
        if not isinstance(job, dict):
            return None
        data = {k: v for k, v in job.items() if k != "attempts"}
        queue = entry.get("queue")
        if queue not in self.settings.queues:
            queue = self.settings.queues[0]
        try:
            spec, _ = parse_payload(
                json.dumps(data),
                default_processor=self.settings.queue_processors.get(queue),
                max_bytes=self.settings.max_payload_bytes,
            )
        except (BadPayload, TypeError, ValueError):
            return None  # it can never run: requeueing it would only fail it again
        # The row first: a job rejected again at once must not be left `queued`.
        self.store.enqueued(spec, queue)
        if not self.broker.requeue_failed(raw, queue, spec.to_payload()):
            return None
        return spec.id, queue

    def purge_failed(self) -> int:
        """Empty the failed list (rows stay); how many entries went."""
        pipe = self.client.pipeline()
        pipe.llen(self.keys.failed)
        pipe.delete(self.keys.failed)
        count, _ = pipe.execute()
        return int(count)

    # Operators' views (the web dashboard and its API; see also worker.queries)
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

    def run_now(self, job_id: str) -> None:
        """Make a scheduled job due now (one ZADD XX: the workers' next due check moves
        it to its queue). Raises AdminError(404) when it is not scheduled."""
        for member in self.client.zrange(self.keys.scheduled, 0, -1):
            _, _, payload = member.partition(b"\n")
            if self._id(payload) == job_id and self.client.zadd(
                self.keys.scheduled, {member: time.time()}, xx=True, ch=True
            ):
                return
        raise AdminError(f"job {job_id} is not scheduled", 404)

    def failed_groups(self) -> dict[str, list[dict[str, Any]]]:
        """The failed list grouped by error type (`?` when unknown), newest first in each."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for _, entry in self.failed():
            groups.setdefault(failed_type(entry), []).append(entry)
        return groups

    def requeue_failed_type(self, error_type: str) -> list[tuple[str, str]]:
        """Requeue every failed job whose error type is `error_type`: [(id, queue)]."""
        done = []
        for raw, entry in self.failed():
            if failed_type(entry) == error_type:
                requeued = self._requeue_entry(raw, entry)
                if requeued is not None:
                    done.append(requeued)
        return done

    def retry(self, job_id: str) -> tuple[str, str]:
        """Run a finished job again: from the failed list when it is there, else its row
        is enqueued again under the same id. Raises AdminError 404 / 409."""
        if self.failed_entry(job_id) is not None:
            done = self.requeue_failed(job_id)
            if done:
                return done[0]
            raise AdminError(f"failed job {job_id} cannot run again (its entry is unreadable)")
        row = self.store.get(job_id)
        if row is None:
            raise AdminError(f"no job {job_id}", 404)
        if not JobStatus(row["status"]).final:
            raise AdminError(f"job {job_id} is {row['status']}; nothing to retry", 409)
        if not row.get("processor"):
            raise AdminError(f"job {job_id} has no processor recorded; it cannot run again")
        job = self.enqueue(
            row["processor"],
            row.get("params") or {},
            queue=row.get("queue") if row.get("queue") in self.settings.queues else None,
            job_id=job_id,
        )
        return job.id, row.get("queue") or self.settings.queues[0]


def _entry_matches(entry: dict[str, Any], job_id: str) -> bool:
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
