"""End to end on PostgreSQL: producers LPUSH to a real Redis, `python -m worker run --burst`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import run_cli, worker_env
from worker.store import JobStore

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

QUEUE = "stoker:queue:default"


@pytest.fixture
def env(redis_url: str, fresh_postgres_url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "var" / "media").mkdir(parents=True)
    return worker_env(
        redis_url=redis_url, database_url=fresh_postgres_url, data_dir=tmp_path / "var"
    )


def status(env: dict[str, str], job_id: str) -> dict[str, Any]:
    out = run_cli(["status", job_id, "--json"], env, check=False).stdout
    return json.loads(out)


def push_echo(client: redis.Redis, job_id: str, text: str) -> None:
    client.lpush(QUEUE, json.dumps({"id": job_id, "processor": "echo", "params": {"text": text}}))


def test_burst_records_results_and_a_rejected_payload(
    env: dict[str, str], real_redis: redis.Redis
) -> None:
    texts = {"e1": "hello", "e2": "wörld ✓", "e3": ""}
    for job_id, text in texts.items():
        push_echo(real_redis, job_id, text)
    real_redis.lpush(QUEUE, json.dumps({"id": "bad-1", "processor": "no_such_processor"}))

    run_cli(["run", "--burst"], env)

    row = status(env, "e2")  # what `status ID --json` prints
    assert (row["status"], row["result"], row["attempts"]) == ("succeeded", {"text": "wörld ✓"}, 1)
    assert row["finished_at"].endswith("+00:00")
    store = JobStore(env["DATABASE_URL"])
    try:
        rows = {job_id: store.get(job_id) or {} for job_id in texts}
    finally:
        store.close()
    assert {k: (r["status"], r["result"]) for k, r in rows.items()} == {
        k: ("succeeded", {"text": text}) for k, text in texts.items()
    }
    bad = status(env, "bad-1")
    assert (bad["status"], bad["error_type"]) == ("failed", "UnknownProcessor")
    assert "no_such_processor" in bad["error"]
    assert real_redis.llen(QUEUE) == 0


def test_a_redelivered_succeeded_job_is_acknowledged_without_running_again(
    env: dict[str, str], real_redis: redis.Redis
) -> None:
    push_echo(real_redis, "once", "first")
    run_cli(["run", "--burst"], env)
    push_echo(real_redis, "once", "second")  # same id delivered again

    run_cli(["run", "--burst"], env)

    store = JobStore(env["DATABASE_URL"])
    try:
        row = store.get("once") or {}
        history = store.attempts("once")
    finally:
        store.close()
    assert (row["status"], row["result"], row["attempts"]) == ("succeeded", {"text": "first"}, 1)
    assert [a["outcome"] for a in history] == ["succeeded"]
    assert real_redis.llen(QUEUE) == 0
