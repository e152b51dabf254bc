"""Pruning deletes exactly the finished jobs past their retention, with their attempts and
frame_results, on SQLite and PostgreSQL; the failed list is capped in Redis."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, insert, select

from config import Settings
from tests.support import run_cli, worker_env
from worker.broker import Broker, Delivery
from worker.keys import Keys
from worker.protocol import utcnow
from worker.retention import Retention, count_prunable, plan_from_days, prune
from worker.store import attempts, frame_results, jobs, make_engine

#: id prefix -> (status, days since it finished (None: not finished), how many jobs)
SEED: dict[str, tuple[str, float | None, int]] = {
    "old-ok": ("succeeded", 40, 5),
    "new-ok": ("succeeded", 10, 3),
    "old-failed": ("failed", 100, 2),
    "mid-failed": ("failed", 40, 2),
    "old-cancelled": ("cancelled", 40, 1),
    "old-running": ("running", None, 2),
    "old-queued": ("queued", None, 1),
    "old-retrying": ("retrying", None, 1),
}
ATTEMPTS, FRAMES = 2, 3


def seed(engine: Engine) -> None:
    now = utcnow()
    job_rows, attempt_rows, frame_rows = [], [], []
    for prefix, (status, days, count) in SEED.items():
        for i in range(count):
            job_id = f"{prefix}-{i}"
            when = now - timedelta(days=days if days is not None else 100)
            job_rows.append(
                {
                    "id": job_id,
                    "queue": "default",
                    "processor": "echo",
                    "status": status,
                    "attempts": ATTEMPTS,
                    "finished_at": when if days is not None else None,
                    "updated_at": when,
                }
            )
            for n in range(ATTEMPTS):
                attempt_rows.append({"job_id": job_id, "number": n + 1, "outcome": "error"})
            for f in range(FRAMES):
                frame_rows.append({"job_id": job_id, "frame_index": f, "timestamp": f / 25})
    with engine.begin() as conn:
        conn.execute(insert(jobs), job_rows)
        conn.execute(insert(attempts), attempt_rows)
        conn.execute(insert(frame_results), frame_rows)


def remaining(engine: Engine) -> tuple[set[str], int, int]:
    with engine.connect() as conn:
        ids = set(conn.execute(select(jobs.c.id)).scalars())
        n_att = conn.execute(select(func.count()).select_from(attempts)).scalar_one()
        n_fr = conn.execute(select(func.count()).select_from(frame_results)).scalar_one()
    return ids, n_att, n_fr


def ids_of(*prefixes: str) -> set[str]:
    return {f"{p}-{i}" for p in prefixes for i in range(SEED[p][2])}


@pytest.fixture
def engine(migrated_db_url: str) -> Any:
    eng = make_engine(migrated_db_url)
    seed(eng)
    yield eng
    eng.dispose()


ALL_30D = {"succeeded": 30, "failed": 30, "cancelled": 30}


def test_prune_deletes_exactly_the_old_finished_jobs_and_what_belongs_to_them(
    engine: Engine,
) -> None:
    result = prune(engine, plan_from_days(ALL_30D, utcnow()), batch=2)
    assert result.jobs == {"succeeded": 5, "failed": 4, "cancelled": 1}
    kept = ids_of("new-ok", "old-running", "old-queued", "old-retrying")
    ids, n_att, n_fr = remaining(engine)
    assert ids == kept
    assert (n_att, n_fr) == (len(kept) * ATTEMPTS, len(kept) * FRAMES)


def test_a_dry_run_counts_the_same_rows_and_deletes_nothing(engine: Engine) -> None:
    before = remaining(engine)
    result = count_prunable(engine, plan_from_days(ALL_30D, utcnow()))
    assert result.jobs == {"succeeded": 5, "failed": 4, "cancelled": 1}
    assert (result.attempts, result.frame_results) == (10 * ATTEMPTS, 10 * FRAMES)
    assert remaining(engine) == before


def test_each_status_keeps_its_own_retention(engine: Engine) -> None:
    days = {"succeeded": 30, "failed": 90, "cancelled": 0}
    prune(engine, plan_from_days(days, utcnow()), batch=1000)
    ids, _, _ = remaining(engine)
    assert ids_of("old-ok", "old-failed") & ids == set()
    assert ids_of("mid-failed", "old-cancelled", "new-ok", "old-running") <= ids


def _sqlite_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return worker_env(redis_url="redis://127.0.0.1:1/0", database_url=db_url, data_dir=tmp_path)


@pytest.mark.parametrize("migrated_db_url", ["sqlite"], indirect=True)
def test_the_prune_command_dry_runs_then_deletes_one_status(
    engine: Engine, migrated_db_url: str, tmp_path: Path
) -> None:
    env = _sqlite_env(tmp_path, migrated_db_url)
    out = run_cli(["prune", "--older-than", "30d", "--dry-run", "--json"], env)
    assert json.loads(out.stdout)["jobs"] == {"cancelled": 1, "failed": 4, "succeeded": 5}
    assert len(remaining(engine)[0]) == sum(n for _, _, n in SEED.values())
    out = run_cli(["prune", "--older-than", "30d", "--status", "succeeded"], env)
    assert "deleted 5 jobs" in out.stdout
    ids, _, _ = remaining(engine)
    assert not ids & ids_of("old-ok") and ids_of("old-failed", "old-cancelled") <= ids
    bad = run_cli(["prune", "--older-than", "soon"], env, check=False)
    assert bad.returncode == 2


class _FakeLock:
    """The recovery lock held elsewhere: `set(nx=True)` never succeeds."""

    def set(self, *_a: Any, **_k: Any) -> bool:
        return False


@pytest.mark.parametrize("migrated_db_url", ["sqlite"], indirect=True)
def test_automatic_pruning_waits_for_the_recovery_lock(
    engine: Engine, migrated_db_url: str, real_redis: redis.Redis
) -> None:
    settings = Settings(retention_days={"succeeded": 30}, retention_batch=2)
    held = Retention(settings, _FakeLock(), Keys(), migrated_db_url)
    held._stop.set()  # one attempt, then stop (its wait returns at once)
    assert held.run_once().jobs == {"succeeded": 0}
    free = Retention(settings, real_redis, Keys(), migrated_db_url)
    assert free.run_once().jobs == {"succeeded": 5}
    assert real_redis.get(Keys().recovery_lock) is None  # released after each batch


@pytest.mark.integration
def test_the_failed_list_keeps_the_newest_entries_up_to_its_cap(real_redis: redis.Redis) -> None:
    keys = Keys()
    broker = Broker(real_redis, keys, "w1", failed_max=3)
    inflight = keys.inflight("w1", "default")
    for i in range(5):
        raw = json.dumps({"id": f"f{i}", "processor": "echo"}).encode()
        real_redis.lpush(inflight, raw)
        broker.fail(Delivery(raw, "default", inflight, None, 1), f"f{i}", {"id": f"f{i}"})
    entries = [json.loads(e)["id"] for e in real_redis.lrange(keys.failed, 0, -1)]
    assert entries == ["f4", "f3", "f2"]
    assert real_redis.llen(inflight) == 0
