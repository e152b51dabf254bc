"""An idle worker on several queues is woken by a push, not by polling
(`worker.wakeup`); where Redis refuses keyspace notifications it polls as before."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

import pytest
import redis

from tests.chaos.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.chaos

QUEUES = "high,default,low"


def push(deployment: Deployment, queue: str, job_id: str) -> float:
    payload = {"id": job_id, "processor": "echo", "params": {"text": job_id}}
    pushed = time.time()
    deployment.client.lpush(deployment.keys.queue(queue), json.dumps(payload))
    return pushed


def started_after(deployment: Deployment, job_id: str, pushed: float) -> float:
    row = deployment.wait_status(job_id, "succeeded", 30)
    return datetime.fromisoformat(row["started_at"]).timestamp() - pushed


def test_an_idle_worker_on_several_queues_starts_a_push_to_any_of_them_at_once(
    deployment: Deployment,
) -> None:
    # Polling would leave a job waiting up to 5 s here; the sleep before each push lets
    # the worker settle into its wait.
    deployment.start(queues=QUEUES, poll_interval=5)
    push(deployment, "low", "warm")
    deployment.wait_status("warm", "succeeded", 30)

    delays = []
    for i, queue in enumerate(["low", "default", "high", "low"]):
        time.sleep(2.5)
        pushed = push(deployment, queue, f"j{i}")
        delays.append(started_after(deployment, f"j{i}", pushed))

    assert max(delays) < 0.5, delays


def test_a_worker_refused_keyspace_notifications_polls_and_still_runs_jobs(
    redis_url: str, make_deployment: Callable[..., Deployment]
) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        "limited",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-config"],
    )
    try:
        limited_url = redis_url.replace("redis://", "redis://limited:pw@", 1)
        deployment = make_deployment(limited_url)
        worker = deployment.start(queues=QUEUES, poll_interval=0.05)

        pushed = push(deployment, "low", "polled")

        assert started_after(deployment, "polled", pushed) < 5
        wait_for(lambda: worker.has_event("queue notifications unavailable; polling"), 10)
    finally:
        admin.acl_deluser("limited")
        admin.close()
