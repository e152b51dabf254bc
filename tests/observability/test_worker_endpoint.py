"""A real worker's /metrics, /healthz, /readyz and `health` command, after a burst of
jobs with every outcome, checked against the database (real redis-server, SQLite)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.chaos.chaos_processors import PROCESSORS
from tests.observability.conftest import free_port, http_get
from tests.support import run_cli, start_worker, wait_for, worker_env
from worker.keys import Keys
from worker.redis_server import RedisProcess
from worker.store import JobStore, attempts, jobs

pytestmark = pytest.mark.integration

WID = "obs-w1"
FINAL = ("succeeded", "failed", "cancelled")

#: id -> payload; what each one must become is in the test below.
BURST: dict[str, dict[str, Any]] = {
    **{f"ok{i}": {"processor": "echo", "params": {"text": str(i)}} for i in range(5)},
    "perm1": {"processor": "echo", "params": {"fail": "permanent"}},
    "perm2": {"processor": "echo", "params": {"fail": "permanent"}},
    "flaky": {"processor": "echo", "params": {"fail": "transient", "fail_times": 1}},
    "doomed": {"processor": "echo", "params": {"fail": "transient"}, "max_attempts": 2},
    "slow": {"processor": "echo", "params": {"sleep": 30}, "timeout": 0.5, "max_attempts": 1},
    "crash": {"processor": "chaos_crash", "params": {"mode": "exit"}, "max_attempts": 1},
    "nobody": {"processor": "no_such_processor"},
}


class Running:
    """The module's worker: its process, settings and database."""

    def __init__(self, redis_server: RedisProcess, tmp: Path) -> None:
        self.redis_server = redis_server
        self.port = free_port()
        (tmp / "media").mkdir(parents=True, exist_ok=True)
        self.db_url = f"sqlite:///{tmp / 'stoker.db'}"
        self.env = worker_env(
            redis_url=redis_server.url,
            database_url=self.db_url,
            data_dir=tmp,
            processors=PROCESSORS,
            metrics_port=str(self.port),
            metrics_host="127.0.0.1",
            retry_base=0.05,
            retry_factor=1,
            retry_jitter=0,
            heartbeat_ttl=3,
            log_level="INFO",
            # One attempt per job: the counts below are those of single jobs (a batch
            # cut short by "slow"'s timeout would be run again in halves).
            batch_sizes="echo=1",
        )
        self.log = tmp / "worker.log"
        self.proc: subprocess.Popen | None = None
        self.client = redis.Redis.from_url(redis_server.url)
        self.store = JobStore(self.db_url)

    def start(self) -> None:
        self.proc = start_worker(self.env, "--id", WID, log_path=self.log)
        wait_for(lambda: self.ready() or self.proc.poll() is not None, 120, 0.2)
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def ready(self) -> bool:
        try:
            return http_get(self.port, "/readyz", 2)[0] == 200
        except OSError:
            return False

    def push(self, job_id: str, payload: dict[str, Any]) -> None:
        self.client.lpush(Keys().queue("default"), json.dumps({"id": job_id, **payload}))

    def status(self, job_id: str) -> str | None:
        try:
            return self.store.status_of(job_id)
        except Exception:
            self.store.reset()
            return None

    def scrape(self) -> dict[str, Any]:
        status, body = http_get(self.port, "/metrics")
        assert status == 200
        self.last_text = body
        return {f.name: f for f in text_string_to_metric_families(body)}

    def count(self, column: Any, value: str) -> int:
        with self.store.engine.connect() as conn:
            table = column.table
            return conn.execute(
                select(func.count()).select_from(table).where(column == value)
            ).scalar_one()


@pytest.fixture(scope="module")
def running(own_redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    w = Running(own_redis, tmp_path_factory.mktemp("obs-worker"))
    w.start()
    yield w
    if w.proc is not None and w.proc.poll() is None:
        w.proc.kill()
        w.proc.wait(30)
    w.store.close()


@pytest.fixture(scope="module")
def burst(running: Running) -> Running:
    """Every outcome once or more: run the burst, cancel a long job, wait for the end."""
    for job_id, payload in BURST.items():
        running.push(job_id, payload)
    running.client.lpush(Keys().queue("default"), b"{not json")
    wait_for(lambda: all(running.status(j) in FINAL for j in BURST), 120, 0.1)
    running.push("long", {"processor": "echo", "params": {"sleep": 60}})
    wait_for(lambda: running.status("long") == "running", 30, 0.05)
    running.client.sadd(Keys().cancel, "long")
    wait_for(lambda: running.status("long") == "cancelled", 30, 0.05)
    # The last settle is counted before it is acknowledged in Redis.
    wait_for(lambda: running.client.hlen(Keys().running) == 0, 10)
    return running


def test_the_burst_ends_as_designed(burst: Running) -> None:
    statuses = {j: burst.status(j) for j in [*BURST, "long"]}
    assert statuses == {
        **{f"ok{i}": "succeeded" for i in range(5)},
        "perm1": "failed",
        "perm2": "failed",
        "flaky": "succeeded",
        "doomed": "failed",
        "slow": "failed",
        "crash": "failed",
        "nobody": "failed",
        "long": "cancelled",
    }


def test_job_counts_in_a_scrape_equal_the_jobs_and_attempts_tables(burst: Running) -> None:
    fams = burst.scrape()
    by_outcome = {
        s.labels["outcome"]: s.value
        for s in fams["stoker_jobs"].samples
        if s.name == "stoker_jobs_total"
    }
    att = {
        o: burst.count(attempts.c.outcome, o)
        for o in ("succeeded", "error", "timeout", "crashed", "interrupted")
    }
    rows = {s: burst.count(jobs.c.status, s) for s in FINAL}
    assert by_outcome["succeeded"] == att["succeeded"] == rows["succeeded"] == 6
    assert by_outcome["retried"] + by_outcome["failed"] == att["error"] == 5
    assert by_outcome["retried"] == 2
    assert by_outcome["timeout"] == att["timeout"] == 1
    assert by_outcome["crashed"] == att["crashed"] == 1
    assert by_outcome["cancelled"] == rows["cancelled"] == att["interrupted"] == 1
    assert by_outcome["rejected"] == 2  # one with an id (a failed row), one unreadable
    failed_final = by_outcome["failed"] + by_outcome["timeout"] + by_outcome["crashed"]
    assert failed_final + by_outcome["rejected"] - 1 == rows["failed"] == 6
    assert len(burst.client.lrange(Keys().failed, 0, -1)) == rows["failed"] + 1


def _one(fams: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    values = [
        s.value
        for s in fams[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (family, sample, labels, values)
    return values[0]


def test_histograms_restarts_loads_and_busy_time_match_what_ran(burst: Running) -> None:
    fams = burst.scrape()
    ran = sum(
        _one(fams, "stoker_job_duration_seconds", "stoker_job_duration_seconds_count", processor=p)
        for p in ("echo", "chaos_crash")
    )
    with burst.store.engine.connect() as conn:
        total_attempts = conn.execute(select(func.count()).select_from(attempts)).scalar_one()
    assert ran == total_attempts == 14
    # First starts only: 12 distinct jobs ran (the retries of flaky and doomed are not waits).
    assert (
        _one(fams, "stoker_job_wait_seconds", "stoker_job_wait_seconds_count", queue="default")
        == 12
    )
    restarts = fams["stoker_executor_restarts"]
    assert {s.labels["reason"]: s.value for s in restarts.samples if s.name.endswith("_total")} == {
        "timeout": 1.0,
        "crashed": 1.0,
    }
    loads = _one(fams, "stoker_model_loads", "stoker_model_loads_total", processor="echo")
    load_hist = _one(
        fams, "stoker_model_load_seconds", "stoker_model_load_seconds_count", processor="echo"
    )
    # echo loads in the first executor and in the one after the crash (the one in between
    # only ran chaos_crash).
    assert loads == load_hist >= 2
    assert (
        _one(fams, "stoker_model_loads", "stoker_model_loads_total", processor="chaos_crash") == 1
    )
    assert _one(fams, "stoker_worker_busy", "stoker_worker_busy") == 0
    assert _one(fams, "stoker_worker_busy_seconds", "stoker_worker_busy_seconds_total") > 0.5


EXPECTED_TYPES = {
    "stoker_jobs": "counter",
    "stoker_job_duration_seconds": "histogram",
    "stoker_job_wait_seconds": "histogram",
    "stoker_executor_restarts": "counter",
    "stoker_model_loads": "counter",
    "stoker_model_load_seconds": "histogram",
    "stoker_worker_busy": "gauge",
    "stoker_worker_busy_seconds": "counter",
    "stoker_worker_ready": "gauge",
    "stoker_worker_info": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "stoker_executor_process_resident_memory_bytes": "gauge",
    "python_info": "gauge",
}


def test_every_metric_family_is_present_with_its_type(burst: Running) -> None:
    fams = burst.scrape()
    assert {name: fams[name].type for name in EXPECTED_TYPES if name in fams} == EXPECTED_TYPES
    # No GPU here: the GPU families are left out rather than failing the scrape.
    assert not [name for name in fams if name.startswith("stoker_gpu_")]


def test_the_duration_buckets_span_milliseconds_to_hours(burst: Running) -> None:
    fams = burst.scrape()
    bounds = {
        float(s.labels["le"])
        for s in fams["stoker_job_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert min(bounds) <= 0.005 and 14400 in bounds and float("inf") in bounds


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_accepts_the_metrics_output(burst: Running) -> None:
    burst.scrape()
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=burst.last_text, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_healthz_and_readyz_answer_ok_on_a_healthy_worker(burst: Running) -> None:
    status, body = http_get(burst.port, "/healthz")
    assert status == 200 and "loop: ticked" in body
    status, body = http_get(burst.port, "/readyz")
    assert status == 200, body
    for check in ("redis: ok", "database: ok", "executor: ok", "processors: loaded"):
        assert check in body


def test_health_passes_for_a_live_ready_worker_by_id_and_by_host(burst: Running) -> None:
    out = run_cli(["health", "--worker", WID, "--json"], burst.env)
    report = json.loads(out.stdout)
    # The state is as of the last heartbeat: it may still show the cancelled job.
    assert report["healthy"] is True and report["workers"][0]["state"] in ("idle", "busy")
    assert run_cli(["health"], burst.env).returncode == 0


def test_health_fails_when_redis_is_down_and_when_the_worker_is_dead(burst: Running) -> None:
    burst.redis_server.stop()
    try:
        status, body = http_get(burst.port, "/readyz")
        assert status == 503 and "redis: unreachable" in body
        out = run_cli(["health", "--worker", WID], burst.env, check=False)
        assert out.returncode == 1 and "redis unreachable" in out.stdout
    finally:
        burst.redis_server.start()
    wait_for(
        lambda: run_cli(["health", "--worker", WID], burst.env, check=False).returncode == 0,
        30,
        0.5,
    )
    assert burst.proc is not None
    burst.proc.kill()
    burst.proc.wait(30)
    out = run_cli(["health", "--worker", WID, "--json"], burst.env, check=False)
    assert out.returncode == 1
    assert json.loads(out.stdout)["workers"][0]["reason"] == f"process {burst.proc.pid} is gone"
    time.sleep(3.5)  # the heartbeat TTL: dead for any other host too
    out = run_cli(["health", "--worker", WID], burst.env, check=False)
    assert out.returncode == 1
