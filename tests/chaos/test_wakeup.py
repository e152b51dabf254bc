"""An idle worker on several queues is woken by a push, not by polling (`worker.wakeup`):
by its waits on every queue, else keyspace notifications, else it polls as before."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime

import pytest

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


def test_a_worker_refused_client_commands_is_woken_by_keyspace_notifications(
    limited_url: Callable[[list[str]], str], make_deployment: Callable[..., Deployment]
) -> None:
    deployment = make_deployment(limited_url(["client"]))
    worker = deployment.start(queues=QUEUES, poll_interval=5)
    push(deployment, "low", "warm")
    deployment.wait_status("warm", "succeeded", 30)
    time.sleep(2.5)

    pushed = push(deployment, "default", "notified")

    assert started_after(deployment, "notified", pushed) < 0.5
    assert worker.has_event("waiting on several queues unavailable")


def test_a_worker_refused_client_commands_and_keyspace_notifications_polls_and_runs_jobs(
    limited_url: Callable[[list[str]], str], make_deployment: Callable[..., Deployment]
) -> None:
    deployment = make_deployment(limited_url(["client", "config"]))
    worker = deployment.start(queues=QUEUES, poll_interval=0.05)

    pushed = push(deployment, "low", "polled")

    assert started_after(deployment, "polled", pushed) < 5
    wait_for(lambda: worker.has_event("queue notifications unavailable; polling"), 10)


def test_jobs_pushed_to_several_queues_in_bursts_each_run_once_and_nothing_is_left_behind(
    deployment: Deployment,
) -> None:
    deployment.start(queues=QUEUES)
    rng = random.Random(14)
    ids = []
    for _ in range(120):
        pipe = deployment.client.pipeline(transaction=rng.random() < 0.5)
        for queue in rng.sample(QUEUES.split(","), rng.randint(1, 3)):
            ids.append(f"b{len(ids)}")
            payload = {"id": ids[-1], "processor": "echo", "params": {"text": ids[-1]}}
            pipe.lpush(deployment.keys.queue(queue), json.dumps(payload))
        pipe.execute()
        time.sleep(rng.choice((0.0, 0.002, 0.01, 0.03)))

    for job_id in ids:
        deployment.wait_status(job_id, "succeeded", 60)
        assert deployment.outcomes(job_id) == ["succeeded"]
    client = deployment.client
    assert client.keys(f"{deployment.keys.prefix}:landing:*") == []
    assert client.keys(f"{deployment.keys.prefix}:inflight:*") == []
    assert client.hlen(deployment.keys.deliveries) == 0
