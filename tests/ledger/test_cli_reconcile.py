"""`python -m worker enqueue` is ledger-first, and `reconcile` restores what Redis lost."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from tests.support import run_cli, worker_env
from worker.keys import Keys


def env_for(redis_url: str, tmp_path: Path) -> dict[str, str]:
    db = f"sqlite:///{tmp_path / 'stoker.db'}"
    return worker_env(redis_url=redis_url, database_url=db, data_dir=tmp_path, reconcile_grace=0)


def test_a_cli_enqueued_job_lost_by_redis_comes_back_with_reconcile(
    redis_url: str, real_redis: redis.Redis, tmp_path: Path
) -> None:
    env = env_for(redis_url, tmp_path)
    run_cli(["enqueue", "echo", "--params", '{"text": "hi"}', "--id", "cli-1"], env)
    real_redis.flushall()

    dry = json.loads(run_cli(["reconcile", "--dry-run", "--json"], env).stdout)
    assert [r["id"] for r in dry["restored"]] == ["cli-1"]
    assert real_redis.llen(Keys().queue("default")) == 0

    out = run_cli(["reconcile"], env).stdout
    assert "restored cli-1 -> queue default" in out
    [raw] = real_redis.lrange(Keys().queue("default"), 0, -1)
    assert json.loads(raw)["params"] == {"text": "hi"}


def test_reconcile_with_nothing_missing_restores_nothing(redis_url: str, tmp_path: Path) -> None:
    env = env_for(redis_url, tmp_path)
    run_cli(["enqueue", "echo", "--params", '{"text": "hi"}', "--id", "cli-2"], env)
    report = json.loads(run_cli(["reconcile", "--json"], env).stdout)
    assert report["unfinished"] == 1 and report["restored"] == []
