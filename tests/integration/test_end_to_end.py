"""From `redis-cli LPUSH` to a row in SQL, through a real Redis and real processes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
import redis

from tests.integration.conftest import Env
from tests.support import start_worker, wait_for

pytestmark = pytest.mark.integration


def _status(env: Env, job_id: str) -> dict:
    """The job's row, read from the database (the CLI's view is tested once, below)."""
    return env.row(job_id) or {"id": job_id, "status": "unknown"}


def test_lpush_then_burst_records_the_result(make_env: Callable[..., Env]) -> None:
    env = make_env()
    env.redis_cli(
        "LPUSH",
        "stoker:queue:default",
        '{"id": "hi-1", "processor": "echo", "params": {"text": "hi"}}',
    )
    env.cli("run", "--burst")
    row = json.loads(env.cli("status", "hi-1", "--json").stdout)
    assert row["status"] == "succeeded"
    assert row["result"] == {"text": "hi"}
    assert row["attempts"] == 1 and row["finished_at"] and row["started_at"]


def test_jobs_run_in_fifo_order(make_env: Callable[..., Env]) -> None:
    env = make_env()
    for i in range(15):
        env.redis_cli(
            "LPUSH", "stoker:queue:default", json.dumps({"id": f"f{i:02}", "processor": "echo"})
        )
    env.cli("run", "--burst")
    starts = [(_status(env, f"f{i:02}")["started_at"], f"f{i:02}") for i in range(15)]
    assert [job_id for _, job_id in sorted(starts)] == [f"f{i:02}" for i in range(15)]


def test_queues_are_taken_in_strict_priority_order(make_env: Callable[..., Env]) -> None:
    env = make_env(queues="high,default,low")
    env.redis_cli("LPUSH", "stoker:queue:low", '{"id": "low", "processor": "echo"}')
    env.redis_cli("LPUSH", "stoker:queue:default", '{"id": "mid", "processor": "echo"}')
    env.redis_cli("LPUSH", "stoker:queue:high", '{"id": "high", "processor": "echo"}')
    env.cli("run", "--burst")
    order = sorted((_status(env, j)["started_at"], j) for j in ("low", "mid", "high"))
    assert [j for _, j in order] == ["high", "mid", "low"]


def test_idle_worker_picks_up_jobs_on_every_queue(make_env: Callable[..., Env], tmp_path) -> None:
    env = make_env(queues="high,default,low")
    proc = start_worker(env.env, log_path=tmp_path / "worker.log")
    try:
        wait_for(lambda: "worker started" in (tmp_path / "worker.log").read_text(), 60)
        for queue in ("low", "default", "high"):
            env.redis_cli(
                "LPUSH",
                f"stoker:queue:{queue}",
                json.dumps({"id": f"idle-{queue}", "processor": "echo"}),
            )
        for queue in ("low", "default", "high"):
            wait_for(lambda q=queue: _status(env, f"idle-{q}").get("status") == "succeeded", 30)
    finally:
        proc.terminate()
        assert proc.wait(60) == 0


def test_failed_requeue_runs_the_job_again_from_attempt_one(make_env: Callable[..., Env]) -> None:
    env = make_env(max_attempts="1")
    env.redis_cli(
        "LPUSH",
        "stoker:queue:default",
        '{"id": "rq", "processor": "echo", "params": {"fail": "transient", "fail_times": 1}}',
    )
    env.cli("run", "--burst")
    assert _status(env, "rq")["status"] == "failed"
    listing = json.loads(env.cli("failed", "list", "--json").stdout)
    assert [e["id"] for e in listing] == ["rq"]
    env.cli("failed", "requeue", "rq")
    assert _status(env, "rq")["status"] == "queued"
    assert json.loads(env.cli("failed", "list", "--json").stdout) == []
    env.cli("run", "--burst")
    row = _status(env, "rq")
    # echo's fail_times counts attempts, which the requeue reset: attempt 1 fails again.
    assert row["status"] == "failed" and row["attempts"] == 1


def test_requeue_all_and_purge(make_env: Callable[..., Env]) -> None:
    env = make_env()
    for i in range(3):
        env.redis_cli(
            "LPUSH",
            "stoker:queue:default",
            json.dumps({"id": f"p{i}", "processor": "echo", "params": {"fail": "permanent"}}),
        )
    env.cli("run", "--burst")
    env.cli("failed", "requeue", "--all")
    assert int(env.redis_cli("LLEN", "stoker:queue:default")) == 3
    env.cli("run", "--burst")
    assert int(env.redis_cli("LLEN", "stoker:failed")) == 3
    env.cli("failed", "purge")
    assert int(env.redis_cli("LLEN", "stoker:failed")) == 0


def test_enqueue_with_delay_waits_in_the_scheduled_set_then_runs(
    make_env: Callable[..., Env], real_redis: redis.Redis
) -> None:
    env = make_env()
    job_id = env.cli("enqueue", "echo", "--params", '{"text": "later"}', "--delay", "3600").stdout
    job_id = job_id.strip()
    env.cli("run", "--burst")
    assert _status(env, job_id)["status"] == "queued"
    ((member, due),) = real_redis.zrange("stoker:scheduled", 0, -1, withscores=True)
    assert due > time.time() + 3000
    real_redis.zadd("stoker:scheduled", {member: time.time()})  # an hour passes
    env.cli("run", "--burst")
    assert _status(env, job_id)["result"] == {"text": "later"}


def test_existing_deployment_keys_and_bare_payloads(make_env: Callable[..., Env]) -> None:
    env = make_env(
        key_prefix="lahstats",
        queue_key_template="{prefix}:{queue}",
        failed_key="lahstats:failed",
        queues="processing",
        queue_processors="processing=echo",
    )
    env.redis_cli(
        "LPUSH",
        "lahstats:processing",
        '{"id": "s-1", "text": "session", "queued_at": "2026-01-01T00:00:00"}',
    )
    env.redis_cli("LPUSH", "lahstats:processing", '{"session_id": "x"}')
    env.cli("run", "--burst")
    assert _status(env, "s-1")["result"] == {"text": "session"}
    (entry,) = [
        json.loads(e) for e in env.redis_cli("LRANGE", "lahstats:failed", "0", "-1").splitlines()
    ]
    assert "session_id" in entry["error"]["message"]


def test_progress_is_saved_and_published(
    make_env: Callable[..., Env], real_redis: redis.Redis
) -> None:
    env = make_env(progress_interval="0.05")
    pubsub = real_redis.pubsub()
    pubsub.subscribe("stoker:progress:prog")
    events: list[dict] = []

    def listen() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=0.5)
            if msg and msg["type"] == "message":
                events.append(json.loads(msg["data"]))
                if events[-1]["progress"] >= 0.99:
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    env.redis_cli(
        "LPUSH",
        "stoker:queue:default",
        '{"id": "prog", "processor": "echo", "params": {"sleep": 1.0}}',
    )
    env.cli("run", "--burst")
    listener.join(70)
    assert len(events) >= 3
    assert all(e["stage"] == "sleep" for e in events)
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)


def test_info_reports_queues_scheduled_failed_and_workers(
    make_env: Callable[..., Env], tmp_path
) -> None:
    env = make_env(queues="high,default")
    env.redis_cli(
        "LPUSH", "stoker:queue:high", '{"id": "w", "processor": "echo", "params": {"sleep": 30}}'
    )
    env.redis_cli("LPUSH", "stoker:queue:default", '{"id": "q", "processor": "echo"}')
    env.redis_cli("LPUSH", "stoker:queue:default", "{broken")
    proc = start_worker(env.env, log_path=tmp_path / "w.log")
    try:
        wait_for(lambda: _status(env, "w").get("status") == "running", 60)
        info = json.loads(env.cli("info", "--json").stdout)
        assert info["queues"] == {"high": 0, "default": 2}
        (worker,) = info["workers"]
        assert worker["alive"] and worker["current_job"] == "w" and worker["in_flight"] == 1
        assert info["live_workers"] == 1 and info["failed"] == 0
    finally:
        proc.terminate()
        proc.wait(90)


def test_cancel_queued_job_never_runs(make_env: Callable[..., Env]) -> None:
    env = make_env()
    env.redis_cli("LPUSH", "stoker:queue:default", '{"id": "c1", "processor": "echo"}')
    env.cli("cancel", "c1")
    env.cli("run", "--burst")
    assert _status(env, "c1")["status"] == "cancelled"
