"""Looking after jobs from outside a worker: the one place the CLI and the web app share.

Every action here acts on the job's actual state and says what it did:

- `enqueue` validates the queue name, the processor and its params first (nothing is
  written for a job that can never run), commits the job's `queued` row, then pushes it.
- `cancel` removes a waiting or scheduled job (its row becomes `cancelled`), or asks the
  worker holding a running job to stop it (that worker records `cancelled`); a finished or
  unknown job is left alone and the answer says so. No mark outlives the job.
- `requeue_failed` writes the row back to `queued` before the job is pushed, onto the
  queue it failed on (the entry's `queue`, a name).

The reads (`job`, `info`, `failed`, `workers`, `queue_stats`, ...) are `worker.lookup`'s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.keys import queue_name_error
from worker.lifecycle import JobStatus
from worker.lookup import Lookup, entry_matches, failed_type
from worker.protocol import BadPayload, Job, new_job_id, parse_payload, utcnow


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


class Admin(Lookup):
    """Operations on jobs, queues and the failed list, over one Redis client and one store
    (the reads are `worker.lookup.Lookup`'s)."""

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
            if job_id is not None and not entry_matches(entry, job_id):
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

    # Operators' actions on scheduled and failed jobs (the web dashboard and its API)
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
