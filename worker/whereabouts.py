"""Where jobs are in Redis, read in one atomic step: the other half of reconciling.

A job is always in exactly one Redis place: a queue, the scheduled set, a worker's
in-flight list (every move between them is one Lua call), or the failed list. One script
reads all of them at once, so a job moving while we look is never missed in both places.
Every in-flight list counts, a dead worker's too: recovery hands those back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from worker.failed import read_entry
from worker.keys import Keys
from worker.protocol import job_id_of

_SNAPSHOT = """
-- KEYS: scheduled, failed, then queue keys   ARGV: in-flight key pattern
local function list(key, out)
  for _, v in ipairs(redis.call('LRANGE', key, 0, -1)) do out[#out + 1] = v end
end
local queued, inflight, failed = {}, {}, {}
for i = 3, #KEYS do list(KEYS[i], queued) end
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, key in ipairs(r[2]) do
    if redis.call('TYPE', key).ok == 'list' then list(key, inflight) end
  end
until cursor == '0'
list(KEYS[2], failed)
return {queued, inflight, redis.call('ZRANGE', KEYS[1], 0, -1), failed}
"""


@dataclass(frozen=True)
class Whereabouts:
    """Job ids by the Redis place they are in, and the live workers."""

    queued: frozenset[str]
    inflight: frozenset[str]
    scheduled: frozenset[str]
    failed: frozenset[str]
    live_workers: dict[str, float | None]
    """Live worker id -> when its process started (epoch s; None when unknown)."""

    @property
    def present(self) -> frozenset[str]:
        return self.queued | self.inflight | self.scheduled | self.failed


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _ids(payloads: Iterable[bytes], max_bytes: int) -> frozenset[str]:
    out = set()
    for raw in payloads:
        if len(raw) > max_bytes:
            continue
        try:
            job_id = job_id_of(json.loads(raw))
        except (ValueError, RecursionError):
            continue
        if job_id is not None:
            out.add(job_id)
    return frozenset(out)


def _failed_ids(entries: Iterable[bytes]) -> frozenset[str]:
    out = set()
    for raw in entries:
        entry = read_entry(raw)
        job = entry.get("job")
        job_id = entry.get("id") or (job.get("id") if isinstance(job, dict) else None)
        if isinstance(job_id, str):
            out.add(job_id)
    return frozenset(out)


def _started(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(
            value.decode() if isinstance(value, bytes) else value
        ).timestamp()
    except ValueError:
        return None


def live_workers(client: redis.Redis, keys: Keys) -> dict[str, float | None]:
    """Registered workers whose heartbeat is alive, with their process start time."""
    ids = sorted(w.decode() if isinstance(w, bytes) else w for w in client.smembers(keys.workers))
    pipe = client.pipeline(transaction=False)
    for wid in ids:
        pipe.exists(keys.heartbeat(wid))
        pipe.hget(keys.worker(wid), "started_at")
    replies = pipe.execute()
    return {wid: _started(replies[2 * i + 1]) for i, wid in enumerate(ids) if replies[2 * i]}


def snapshot(
    client: redis.Redis, keys: Keys, queues: Iterable[str], max_payload_bytes: int
) -> Whereabouts:
    """Every job id in Redis, by place, read atomically; then the live workers."""
    queue_keys = sorted({keys.queue(q) for q in queues})
    pattern = _glob_escape(keys.inflight("", "")[: -len("::")]) + ":*"
    queued, inflight, scheduled, failed = client.eval(
        _SNAPSHOT, 2 + len(queue_keys), keys.scheduled, keys.failed, *queue_keys, pattern
    )
    return Whereabouts(
        queued=_ids(queued, max_payload_bytes),
        inflight=_ids(inflight, max_payload_bytes),
        scheduled=_ids((m.partition(b"\n")[2] for m in scheduled), max_payload_bytes),
        failed=_failed_ids(failed),
        live_workers=live_workers(client, keys),
    )
