"""A live worker fed raw bytes through a real redis-server, and the invariants checked after
each batch (shared by tests/fuzz and bench/fuzz.py).

After a batch has settled, every pushed payload must be in exactly one place:
- one that carries a legible id (the id `parse_payload` files it under) has a final row
  (`succeeded`, `failed` or `cancelled`), and a `failed` one an entry on the failed list;
- the others either ran under a generated id (a new row) or sit on the failed list with
  no id: the two counts add up to the number of such payloads;
and nothing is left in flight, no `running`, `deliveries` or `cancel` mark remains, the
worker process is alive, and the CLI's readers (`status`, `failed list`, `failed show`,
`info`) answer without a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support import ROOT, start_worker, wait_for, worker_env
from worker.keys import Keys
from worker.protocol import BadPayload, parse_payload
from worker.store import JobStore

MAX_PAYLOAD_BYTES = 4096
FINAL = {"succeeded", "failed", "cancelled"}


def filed_id(raw: bytes) -> str | None:
    """The id the worker files `raw` under (its job's, or its rejection's), if any."""
    try:
        job, generated = parse_payload(raw, max_bytes=MAX_PAYLOAD_BYTES)
    except BadPayload as exc:
        return exc.job_id
    return None if generated else job.id


@dataclass
class Rig:
    redis_url: str
    workdir: Path
    worker_id: str = "fuzz"
    keys: Keys = field(default_factory=Keys)
    proc: subprocess.Popen | None = None
    exits: int = 0
    cli_every: int = 1
    """Run the CLI readers after every n-th batch (each call is a process start)."""
    batches: int = 0

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'var' / 'stoker.db'}"

    def env(self) -> dict[str, str]:
        return worker_env(
            redis_url=self.redis_url,
            database_url=self.db_url,
            data_dir=self.workdir / "var",
            id=self.worker_id,
            max_payload_bytes=MAX_PAYLOAD_BYTES,
            job_timeout=5,
            retry_base=0.01,
            retry_factor=1,
            retry_jitter=0,
            max_attempts=2,
            heartbeat_ttl=3,
            log_level="WARNING",
        )

    def start(self) -> None:
        (self.workdir / "var" / "media").mkdir(parents=True, exist_ok=True)
        self.client = redis.Redis.from_url(self.redis_url)
        self.store = JobStore(self.db_url)
        self.proc = start_worker(self.env(), log_path=self.workdir / "worker.log")
        wait_for(lambda: self.client.exists(self.keys.heartbeat(self.worker_id)), 90)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.store.close()
        self.client.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _rows(self) -> dict[str, str]:
        from sqlalchemy import select

        from worker.store import jobs

        with self.store.engine.connect() as conn:
            return dict(conn.execute(select(jobs.c.id, jobs.c.status)).all())

    def _failed(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.client.lrange(self.keys.failed, 0, -1):
            try:
                entry = json.loads(raw)
            except (ValueError, RecursionError):
                entry = None
            out.append(entry if isinstance(entry, dict) else {"id": None})
        return out

    def _settled(self) -> bool:
        c, k = self.client, self.keys
        return (
            c.llen(k.queue("default")) == 0
            and c.zcard(k.scheduled) == 0
            and c.llen(k.inflight(self.worker_id, "default")) == 0
            and c.hlen(k.running) == 0
        )

    def run_batch(self, batch: list[bytes], timeout: float = 60) -> list[str]:
        """Push `batch`, wait for it to settle, return every broken invariant."""
        rows_before = self._rows()
        failed_before = self._failed()
        for raw in batch:
            self.client.lpush(self.keys.queue("default"), raw)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive() and not self._settled():
            time.sleep(0.05)
        time.sleep(0.1)  # the writer's last group commit
        return self.check(batch, rows_before, failed_before)

    def check(
        self, batch: list[bytes], rows_before: dict[str, str], failed_before: list[Any]
    ) -> list[str]:
        problems = []
        if not self.alive():
            self.exits += 1
            problems.append(f"worker exited with {self.proc.returncode if self.proc else '?'}")
        if not self._settled():
            problems.append("jobs still queued, scheduled or in flight")
        c, k = self.client, self.keys
        for name, key in (("running", k.running), ("deliveries", k.deliveries)):
            if c.hlen(key):
                problems.append(f"stale {name} marks: {c.hgetall(key)}")
        if c.scard(k.cancel):
            problems.append(f"stale cancel marks: {c.smembers(k.cancel)}")
        rows = self._rows()
        failed = self._failed()
        failed_ids = {e.get("id") for e in failed}
        legible = {filed_id(raw) for raw in batch} - {None}
        for job_id in legible:
            status = rows.get(job_id)
            if status not in FINAL:
                problems.append(f"job {job_id!r}: status {status!r}, not final")
            elif status == "failed" and job_id not in failed_ids:
                problems.append(f"job {job_id!r}: failed but not on the failed list")
        anonymous = sum(1 for raw in batch if filed_id(raw) is None)
        generated = len(set(rows) - set(rows_before) - legible)
        no_id = sum(1 for e in failed if e.get("id") is None) - sum(
            1 for e in failed_before if e.get("id") is None
        )
        if generated + no_id != anonymous:
            problems.append(
                f"{anonymous} payloads without an id, but {generated} generated rows"
                f" + {no_id} anonymous failed entries"
            )
        self.batches += 1
        if self.batches % self.cli_every == 0:
            problems += self.check_cli(next(iter(legible), "no-such-job"))
        return problems

    def check_cli(self, job_id: str) -> list[str]:
        problems = []
        for args in (["status", job_id], ["failed", "list"], ["failed", "show", job_id], ["info"]):
            proc = subprocess.run(
                [sys.executable, "-m", "worker", *args],
                env=self.env() | {"PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode not in (0, 1) or "Traceback" in proc.stderr:
                problems.append(
                    f"`{' '.join(args)}` exited {proc.returncode}: {proc.stderr[-500:]}"
                )
        return problems


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
