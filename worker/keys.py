"""Every Redis key Stoker uses, built in one place.

Defaults (prefix `stoker`):

| key | type | what |
|---|---|---|
| `stoker:queue:<name>` | list | waiting jobs; producers LPUSH, workers take the right end |
| `stoker:failed` | list | failed jobs with their error (newest on the left) |
| `stoker:scheduled` | zset | retries and `run_at` jobs by due time (`<queue key>\\n<payload>`) |
| `stoker:inflight:<worker>:<queue>` | list | a worker's job, until its outcome is recorded |
| `stoker:running` | hash | job id -> worker id, for every job being run (duplicate guard) |
| `stoker:deliveries` | hash | job id -> deliveries not yet ended by a recorded outcome |
| `stoker:workers` | set | ids of registered workers |
| `stoker:worker:<id>` | hash | a worker's queues, host, pid, start time, current job |
| `stoker:heartbeat:<id>` | string | present (with a TTL) while the worker is alive |
| `stoker:recovery-lock` | string | held by the worker recovering dead workers' jobs |
| `stoker:progress:<job id>` | pub/sub channel | progress events of a job |
| `stoker:cancel` | set | ids of jobs asked to stop |

`WORKER_KEY_PREFIX`, `WORKER_QUEUE_KEY_TEMPLATE` and `WORKER_FAILED_KEY` rename them, e.g.
prefix `lahstats`, template `{prefix}:{queue}`, queue `processing`, failed key
`lahstats:failed` for a deployment whose producers push to `lahstats:processing`.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings, queue_name_error

__all__ = ["Keys", "queue_name_error"]


@dataclass(frozen=True)
class Keys:
    prefix: str = "stoker"
    queue_template: str = "{prefix}:queue:{queue}"
    failed: str = "stoker:failed"

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        prefix = settings.key_prefix
        return cls(
            prefix=prefix,
            queue_template=settings.queue_key_template,
            failed=settings.failed_key or f"{prefix}:failed",
        )

    def queue(self, name: str) -> str:
        if (error := queue_name_error(name)) is not None:
            raise ValueError(error)
        return self.queue_template.format(prefix=self.prefix, queue=name)

    def inflight(self, worker_id: str, queue: str) -> str:
        return f"{self.prefix}:inflight:{worker_id}:{queue}"

    def landing(self, worker_id: str, queue: str) -> str:
        """Where an idle worker's BLMOVE puts a job for the `land` script queued right
        behind it to claim (never holds more than a moment's job; recovered like flight)."""
        return f"{self.prefix}:landing:{worker_id}:{queue}"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:scheduled"

    @property
    def running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}:deliveries"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}:heartbeat:{worker_id}"

    @property
    def recovery_lock(self) -> str:
        return f"{self.prefix}:recovery-lock"

    def progress_channel(self, job_id: str) -> str:
        return f"{self.prefix}:progress:{job_id}"

    @property
    def cancel(self) -> str:
        return f"{self.prefix}:cancel"

    @property
    def ledger_mark(self) -> str:
        """Set by each reconcile pass; its absence means Redis lost its data since."""
        return f"{self.prefix}:ledger-mark"
