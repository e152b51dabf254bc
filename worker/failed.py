"""The failed list's entries: one shape, built here (and mirrored by `recover` in stoker.lua).

```json
{"id": "job id", "job": {...the job as it last ran...} | null, "queue": "default",
 "error": {"type": "...", "kind": "error|timeout|crashed", "message": "...", "traceback": "..."},
 "attempts": 3, "deliveries": 3, "worker_id": "...", "queued_at": "...", "failed_at": "...",
 "raw": "the payload as it was pushed, when it was not a JSON object"}
```

`queue` is the queue's *name* (not its key): `failed requeue` puts the job back there.
Reading never raises on a hostile entry: anything that is not a JSON object of sane depth
comes back as `{"id": null, "raw": ...}`.
"""

from __future__ import annotations

import json
from typing import Any

from worker.outcome import Outcome
from worker.protocol import utcnow


def failed_entry(
    *,
    job_id: str | None,
    job: dict[str, Any] | None,
    queue: str,
    outcome: Outcome,
    attempts: int,
    worker_id: str,
    raw: bytes | None = None,
    deliveries: int | None = None,
) -> dict[str, Any]:
    """A failed-list entry. `raw` is kept (as text) only when `job` is None."""
    entry: dict[str, Any] = {
        "id": job_id,
        "job": job,
        "queue": queue,
        "error": {
            "type": outcome.error_type,
            "kind": outcome.kind,
            "message": outcome.message,
            "traceback": outcome.traceback,
        },
        "attempts": attempts,
        "deliveries": deliveries,
        "worker_id": worker_id,
        "queued_at": job.get("queued_at") if job else None,
        "failed_at": utcnow().isoformat(),
    }
    if job is None and raw is not None:
        entry["raw"] = raw.decode("utf-8", errors="replace")
    return entry


def encode_entry(entry: dict[str, Any]) -> str:
    return json.dumps(entry, default=str)


def read_entry(raw: bytes) -> dict[str, Any]:
    """Decode one failed-list entry; never raises."""
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError):
        entry = None
    if isinstance(entry, dict):
        return entry
    return {"id": None, "raw": raw.decode("utf-8", errors="replace")[:10_000]}
