"""Cluster metrics from Redis and SQL, and the `exporter` command that serves them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from tests.observability.conftest import free_port, http_get
from tests.support import ROOT, wait_for, worker_env
from worker.cluster_metrics import cluster_registry, render
from worker.keys import Keys
from worker.protocol import utcnow
from worker.store import jobs, make_engine

pytestmark = pytest.mark.integration


def populate(client: redis.Redis, db_url: str) -> None:
    k, now = Keys(), time.time()
    for i in range(3):  # the oldest is on the right, queued 120 s ago
        client.lpush(k.queue("high"), json.dumps({"id": f"h{i}", "queued_at": now - 120 + i}))
    client.lpush(k.queue("default"), json.dumps({"id": "bare"}))  # no queued_at
    client.zadd(k.scheduled, {"x\nlater": now + 3600, "x\ndue": now - 1})
    for i in range(4):
        client.lpush(k.failed, json.dumps({"id": f"f{i}"}))
    client.hset(k.running, "r1", "alive-w")
    client.sadd(k.workers, "alive-w", "dead-w")
    client.set(k.heartbeat("alive-w"), "x", px=30_000)
    client.hset(
        k.worker("alive-w"),
        mapping={"queues": "high,default", "loop_at": str(now - 7), "job": "r1"},
    )
    client.hset(k.worker("dead-w"), mapping={"queues": "default", "loop_at": str(now - 300)})
    client.lpush(k.inflight("alive-w", "high"), b'{"id":"r1"}')
    engine = make_engine(db_url)
    from models.migrate import upgrade

    upgrade(engine)
    with engine.begin() as conn:
        rows = [("a", "succeeded"), ("b", "succeeded"), ("c", "failed"), ("d", "queued")]
        conn.execute(
            insert(jobs), [{"id": i, "status": s, "updated_at": utcnow()} for i, s in rows]
        )
    engine.dispose()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_collector_reports_queues_workers_and_jobs_by_status(
    real_redis: redis.Redis, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'stoker.db'}"
    populate(real_redis, db_url)
    engine = make_engine(db_url)
    registry = cluster_registry(real_redis, Keys(), ["high", "default", "low"], engine)
    body, ctype = render(registry)
    engine.dispose()
    assert ctype.startswith("text/plain")
    got = samples(body.decode())
    assert got[("stoker_queue_jobs", (("queue", "high"),))] == 3
    assert got[("stoker_queue_jobs", (("queue", "default"),))] == 1
    assert got[("stoker_queue_jobs", (("queue", "low"),))] == 0
    assert 119 < got[("stoker_queue_oldest_job_age_seconds", (("queue", "high"),))] < 125
    assert got[("stoker_queue_oldest_job_age_seconds", (("queue", "low"),))] == 0
    # A queue whose next job has no queued_at has no age rather than a wrong one.
    assert ("stoker_queue_oldest_job_age_seconds", (("queue", "default"),)) not in got
    assert got[("stoker_scheduled_jobs", ())] == 2
    assert got[("stoker_scheduled_due_jobs", ())] == 1
    assert got[("stoker_failed_list_jobs", ())] == 4
    assert got[("stoker_running_jobs", ())] == 1
    assert got[("stoker_inflight_jobs", (("queue", "high"),))] == 1
    assert got[("stoker_workers_live", ())] == 1
    assert got[("stoker_workers_dead", ())] == 1
    assert got[("stoker_worker_up", (("worker", "dead-w"),))] == 0
    assert got[("stoker_worker_job_running", (("worker", "alive-w"),))] == 1
    assert 6 < got[("stoker_worker_loop_silence_seconds", (("worker", "alive-w"),))] < 12
    assert got[("stoker_jobs_by_status", (("status", "succeeded"),))] == 2
    assert got[("stoker_jobs_by_status", (("status", "running"),))] == 0
    assert got[("stoker_exporter_redis_up", ())] == 1
    assert got[("stoker_exporter_database_up", ())] == 1
    if shutil.which("promtool"):
        proc = subprocess.run(
            ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_unreachable_redis_or_database_is_a_zero_not_a_failed_scrape(tmp_path: Path) -> None:
    client = redis.Redis(port=1, socket_connect_timeout=0.2)
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    body, _ = render(cluster_registry(client, Keys(), ["default"], engine))
    got = samples(body.decode())
    assert got[("stoker_exporter_redis_up", ())] == 0
    assert got[("stoker_exporter_database_up", ())] == 0


def test_the_exporter_command_serves_the_cluster_metrics(redis_url: str, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'stoker.db'}"
    populate(redis.Redis.from_url(redis_url), db_url)
    port = free_port()
    env = worker_env(redis_url=redis_url, database_url=db_url, data_dir=tmp_path)
    env["WORKER_QUEUES"] = "high,default"
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "exporter", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def scrape() -> Any:
            try:
                return http_get(port, "/metrics", 5)
            except OSError:
                return None

        status, body = wait_for(scrape, 60, 0.1)
        assert status == 200
        assert samples(body)[("stoker_queue_jobs", (("queue", "high"),))] == 3
        assert http_get(port, "/healthz")[0] == 200
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
