"""Chaos fixtures: one isolated deployment (Redis db, SQL database, folders) per test,
with helpers to start real `python -m worker run` processes and to kill them."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from tests.chaos.chaos_processors import PROCESSORS
from tests.support import start_worker, wait_for, worker_env
from worker.keys import Keys
from worker.store import JobStore

QUEUE = "default"

#: Settings every chaos worker gets unless a test overrides them: short heartbeats and
#: graces so failures are noticed fast, fast retries, no jitter.
BASE_SETTINGS: dict[str, Any] = {
    "processors": PROCESSORS,
    "heartbeat_ttl": 2,
    "shutdown_grace": 5,
    "retry_base": 0.1,
    "retry_factor": 1,
    "retry_jitter": 0,
    "max_attempts": 3,
    "log_level": "INFO",
    "log_format": "json",
}


@dataclass
class WorkerProc:
    """A running `python -m worker run` and its log file."""

    id: str
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines (other lines skipped)."""
        out = []
        for line in self.log().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def has_event(self, text: str) -> bool:
        return any(e.get("event") == text for e in self.events())

    def executor_pids(self) -> list[int]:
        """Pids of the supervisor's executor process(es)."""
        try:
            children = psutil.Process(self.pid).children()
        except psutil.Error:
            return []
        return [c.pid for c in children if "spawn_main" in " ".join(_cmdline(c))]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


class Deployment:
    """One isolated Stoker deployment for a chaos test."""

    def __init__(self, redis_url: str, tmp_path: Path, database_url: str | None = None) -> None:
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.data_dir = tmp_path / "var"
        (self.data_dir / "media").mkdir(parents=True, exist_ok=True)
        self.markers = tmp_path / "markers"
        self.markers.mkdir(exist_ok=True)
        self.db_url = database_url or f"sqlite:///{self.data_dir / 'stoker.db'}"
        self.client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self.keys = Keys()
        self.workers: list[WorkerProc] = []
        self._store: JobStore | None = None
        self._count = 0

    # Workers
    def env(self, **settings: Any) -> dict[str, str]:
        merged = BASE_SETTINGS | settings
        return worker_env(
            redis_url=self.redis_url, database_url=self.db_url, data_dir=self.data_dir, **merged
        )

    def start(
        self, worker_id: str | None = None, *, ready: bool = True, **settings: Any
    ) -> WorkerProc:
        """Start a worker (waiting until it is ready to fetch unless `ready` is False)."""
        self._count += 1
        wid = worker_id or f"w{self._count}"
        log_path = self.tmp_path / f"{wid}.log"
        proc = start_worker(self.env(id=wid, **settings), log_path=log_path)
        worker = WorkerProc(wid, proc, log_path)
        self.workers.append(worker)
        if ready:
            wait_for(
                lambda: worker.has_event("stoker worker started") or proc.poll() is not None, 90
            )
            assert proc.poll() is None, f"worker {wid} exited at startup:\n{worker.log()[-3000:]}"
        return worker

    def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(30)
        if self._store is not None:
            self._store.close()
        self.client.close()

    # Jobs
    def job(self, job_id: str, processor: str, **params: Any) -> str:
        """A job payload; `marker_dir` is filled in for the chaos processors."""
        if processor.startswith("chaos_"):
            params.setdefault("marker_dir", str(self.markers))
        return json.dumps({"id": job_id, "processor": processor, "params": params})

    def enqueue(
        self, job_id: str, processor: str, *, extra: dict | None = None, **params: Any
    ) -> None:
        payload = json.loads(self.job(job_id, processor, **params)) | (extra or {})
        self.client.lpush(self.keys.queue(QUEUE), json.dumps(payload))

    @property
    def store(self) -> JobStore:
        if self._store is None:
            self._store = JobStore(self.db_url)
        return self._store

    def row(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self.store.get(job_id)
        except Exception:  # the table may not exist yet, or the database is down
            self.store.reset()
            return None

    def status(self, job_id: str) -> str | None:
        row = self.row(job_id)
        return row["status"] if row else None

    def wait_status(self, job_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        wait_for(lambda: self.status(job_id) == status, timeout)
        row = self.row(job_id)
        assert row is not None
        return row

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        return self.store.attempts(job_id)

    def outcomes(self, job_id: str) -> list[str]:
        return [a["outcome"] for a in self.attempts(job_id)]

    def starts(self, job_id: str, event: str = "start") -> list[dict[str, Any]]:
        """Marker files of `job_id` for `event`, oldest first: attempt, pid, time_ns."""
        out = []
        for path in self.markers.glob(f"{job_id}.*.{event}"):
            _, attempt, pid, ns, _ = path.name.rsplit(".", 4)
            out.append({"attempt": int(attempt), "pid": int(pid), "time_ns": int(ns)})
        return sorted(out, key=lambda m: m["time_ns"])

    # Redis state
    def queued(self, queue: str = QUEUE) -> list[dict[str, Any]]:
        """The queue's jobs, next to run first."""
        raw = self.client.lrange(self.keys.queue(queue), 0, -1)
        return [json.loads(r) for r in reversed(raw)]

    def inflight(self, worker_id: str, queue: str = QUEUE) -> list[bytes]:
        return self.client.lrange(self.keys.inflight(worker_id, queue), 0, -1)

    def failed(self) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.client.lrange(self.keys.failed, 0, -1)]

    def running(self) -> dict[bytes, bytes]:
        return self.client.hgetall(self.keys.running)


@pytest.fixture
def deployment(redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(redis_url, tmp_path)
    yield dep
    dep.close()


@pytest.fixture
def make_deployment(tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Deployments against a Redis or database of the test's own."""
    made: list[Deployment] = []

    def make(redis_url: str, database_url: str | None = None) -> Deployment:
        dep = Deployment(redis_url, tmp_path, database_url)
        made.append(dep)
        return dep

    yield make
    for dep in made:
        dep.close()


@pytest.fixture
def limited_url(redis_url: str) -> Iterator[Callable[[list[str]], str]]:
    """The URL of a user `limited` who may run every command but `denied` (an ACL, as on a
    managed Redis); the user is dropped after the test."""
    admin = redis.Redis.from_url(redis_url)

    def make(denied: list[str]) -> str:
        admin.acl_setuser(
            "limited",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            channels=["*"],
            commands=["+@all", *(f"-{c}" for c in denied)],
        )
        return redis_url.replace("redis://", "redis://limited:pw@", 1)

    yield make
    admin.acl_deluser("limited")
    admin.close()
