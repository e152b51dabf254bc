"""The supervisor's heartbeat: proof of life that no job, however long, can block.

A thread refreshes `<prefix>:heartbeat:<id>` (TTL = `WORKER_HEARTBEAT_TTL`) every third of
the TTL and keeps the worker's description hash current. Jobs run in the executor process,
so a job stuck in native code for hours never stops the heartbeat; only a dead supervisor
(or a dead machine) does.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import redis
import structlog

from config import Settings
from worker.keys import Keys
from worker.protocol import utcnow

log = structlog.get_logger("stoker.heartbeat")


class Heartbeat:
    def __init__(
        self, client: redis.Redis, keys: Keys, worker_id: str, settings: Settings, queues: list[str]
    ) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.ttl = settings.heartbeat_ttl
        self.fields: dict[str, Any] = {
            "queues": ",".join(queues),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": utcnow().isoformat(),
            "device": "",
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat(self) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.heartbeat(self.worker_id), utcnow().isoformat(), px=int(self.ttl * 1000))
        pipe.sadd(self.keys.workers, self.worker_id)
        pipe.hset(
            self.keys.worker(self.worker_id),
            mapping={k: str(v) for k, v in self.fields.items()} | {"seen_at": utcnow().isoformat()},
        )
        pipe.execute()

    def _run(self) -> None:
        interval = max(0.05, self.ttl / 3)
        while not self._stop.wait(interval):
            try:
                self.beat()
                if self._failing:
                    log.info("heartbeat restored", worker_id=self.worker_id)
                self._failing = False
            except redis.RedisError as exc:
                if not self._failing:
                    log.warning("heartbeat failed", worker_id=self.worker_id, error=str(exc))
                self._failing = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stoker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def unregister(self) -> None:
        """A clean exit: nothing is in flight, so forget this worker at once."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.heartbeat(self.worker_id), self.keys.worker(self.worker_id))
        pipe.srem(self.keys.workers, self.worker_id)
        pipe.execute()


def live_workers(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Registered workers with their description and whether their heartbeat is alive."""
    out = []
    ids = [w.decode() if isinstance(w, bytes) else w for w in sorted(client.smembers(keys.workers))]
    pipe = client.pipeline(transaction=False)  # one round trip for all workers
    for wid in ids:
        pipe.hgetall(keys.worker(wid))
        pipe.pttl(keys.heartbeat(wid))
    replies = pipe.execute() if ids else []
    for i, wid in enumerate(ids):
        fields, ttl_ms = replies[2 * i], replies[2 * i + 1]
        info = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        info |= {"id": wid, "alive": ttl_ms > 0, "heartbeat_ttl_s": max(ttl_ms, 0) / 1000}
        out.append(info)
    return out


__all__ = ["Heartbeat", "live_workers"]
