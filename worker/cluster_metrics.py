"""Cluster-wide metrics from Redis and SQL: what no single worker knows.

`python -m worker exporter` serves them; any other web app mounts the same collector:

    from worker.cluster_metrics import cluster_registry, render
    registry = cluster_registry(client, keys, settings.queues, engine)
    body, content_type = render(registry, request.headers.get("Accept", ""))

Every scrape reads Redis (a few commands per queue and worker, pipelined) and runs one
`GROUP BY status` on the jobs table. A source that cannot be reached is reported by
`stoker_exporter_redis_up` / `stoker_exporter_database_up` = 0, never by a failed scrape.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from sqlalchemy import Engine, func, select

from models import STATUSES
from worker.heartbeat import live_workers
from worker.keys import Keys
from worker.store import jobs


def queued_at_epoch(raw: bytes | str | None) -> float | None:
    """`queued_at` of a payload as epoch seconds (ISO 8601 or a number), else None."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("queued_at") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when.timestamp() if when.tzinfo else None
    return None


def _gauge(name: str, doc: str, value: float | None = None, labels: Any = None) -> Any:
    return GaugeMetricFamily(name, doc, value=value, labels=labels)


class ClusterCollector:
    """A prometheus_client collector over one deployment's Redis and jobs table."""

    def __init__(
        self, client: redis.Redis, keys: Keys, queues: list[str], engine: Engine | None
    ) -> None:
        self.client = client
        self.keys = keys
        self.queues = list(queues)
        self.engine = engine
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = time.monotonic()
            try:
                families = list(self._redis_families())
                redis_up = 1
            except redis.RedisError:
                families, redis_up = [], 0
            yield from families
            yield _gauge("stoker_exporter_redis_up", "1 if Redis answered this scrape", redis_up)
            try:
                counts = self._status_counts()
                db_up = 1
            except Exception:
                counts, db_up = None, 0
            if counts is not None:
                fam = _gauge("stoker_jobs_by_status", "Jobs in the jobs table", labels=["status"])
                for status in STATUSES:
                    fam.add_metric([status], counts.get(status, 0))
                yield fam
            yield _gauge("stoker_exporter_database_up", "1 if the database answered", db_up)
            yield _gauge(
                "stoker_exporter_scrape_duration_seconds",
                "Time this scrape took",
                time.monotonic() - started,
            )

    def _status_counts(self) -> dict[str, int] | None:
        if self.engine is None:
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
            return {status: int(n) for status, n in rows}

    def _redis_families(self) -> Iterator[Metric]:
        c, k, now = self.client, self.keys, time.time()
        pipe = c.pipeline(transaction=False)
        for q in self.queues:
            pipe.llen(k.queue(q))
            pipe.lindex(k.queue(q), -1)  # the right end: taken next, queued longest
        pipe.zcard(k.scheduled)
        pipe.zcount(k.scheduled, "-inf", now)
        pipe.llen(k.failed)
        pipe.hlen(k.running)
        replies = pipe.execute()
        depth = _gauge("stoker_queue_jobs", "Jobs waiting in the queue", labels=["queue"])
        oldest = _gauge(
            "stoker_queue_oldest_job_age_seconds",
            "Age (from queued_at) of the job next in line; 0 when the queue is empty",
            labels=["queue"],
        )
        for i, q in enumerate(self.queues):
            n, raw = replies[2 * i], replies[2 * i + 1]
            depth.add_metric([q], n)
            queued = queued_at_epoch(raw) if n else None
            if not n or queued is not None:
                oldest.add_metric([q], max(0.0, now - queued) if queued is not None else 0.0)
        scheduled, due, failed, running = replies[2 * len(self.queues) :]
        yield depth
        yield oldest
        yield _gauge("stoker_scheduled_jobs", "Retries and run_at jobs waiting", scheduled)
        yield _gauge("stoker_scheduled_due_jobs", "Scheduled jobs already due", due)
        yield _gauge("stoker_failed_list_jobs", "Entries on the failed list", failed)
        yield _gauge("stoker_running_jobs", "Jobs claimed by a worker right now", running)
        yield from self._worker_families(now)

    def _worker_families(self, now: float) -> Iterator[Metric]:
        c, k = self.client, self.keys
        workers = live_workers(c, k)
        pipe = c.pipeline(transaction=False)
        for w in workers:
            for q in filter(None, (w.get("queues") or "").split(",")):
                pipe.llen(k.inflight(w["id"], q))
        lengths = iter(pipe.execute())
        inflight = dict.fromkeys(self.queues, 0)
        up = _gauge("stoker_worker_up", "1 while the worker's heartbeat lives", labels=["worker"])
        silent = _gauge(
            "stoker_worker_loop_silence_seconds",
            "Seconds since the worker's fetch loop last ticked (as of its last heartbeat)",
            labels=["worker"],
        )
        busy = _gauge(
            "stoker_worker_job_running", "1 while the worker runs a job", labels=["worker"]
        )
        for w in workers:
            for q in filter(None, (w.get("queues") or "").split(",")):
                inflight[q] = inflight.get(q, 0) + next(lengths)
            up.add_metric([w["id"]], int(w["alive"]))
            busy.add_metric([w["id"]], int(bool(w.get("job"))))
            if w.get("loop_at"):
                silent.add_metric([w["id"]], max(0.0, now - float(w["loop_at"])))
        fam = _gauge("stoker_inflight_jobs", "Jobs in workers' in-flight lists", labels=["queue"])
        for q, n in inflight.items():
            fam.add_metric([q], n)
        yield fam
        live = sum(1 for w in workers if w["alive"])
        yield _gauge("stoker_workers_live", "Workers with a live heartbeat", live)
        yield _gauge(
            "stoker_workers_dead", "Registered workers whose heartbeat expired", len(workers) - live
        )
        yield up
        yield silent
        yield busy


def cluster_registry(
    client: redis.Redis, keys: Keys, queues: list[str], engine: Engine | None
) -> CollectorRegistry:
    """A registry holding only the cluster collector (no process metrics)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ClusterCollector(client, keys, queues, engine))
    return registry


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition text for a scrape whose `Accept` header is `accept`."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
