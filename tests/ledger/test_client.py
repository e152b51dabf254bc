"""The Python producer API: ledger-first enqueue, status, and wait on progress and the row."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import update

from config import Settings
from worker.client import AdminError, Client, JobTimeout
from worker.keys import Keys
from worker.store import JobStore, jobs


@pytest.fixture
def client(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Client]:
    with Client(make_settings(redis_url=redis_url)) as c:
        yield c


def finish_later(
    store: JobStore, client: redis.Redis, job_id: str, delay: float
) -> threading.Thread:
    """Publish one progress event, then record the job's success, `delay` s from now."""

    def work() -> None:
        time.sleep(delay)
        event = {"job_id": job_id, "progress": 0.5, "stage": "half"}
        client.publish(Keys().progress_channel(job_id), json.dumps(event))
        time.sleep(0.05)
        with store.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(status="succeeded", result={"ok": 1})
            )

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_enqueue_commits_the_row_before_the_job_is_pushed(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    push = client.admin.broker.enqueue

    def spy(queue: str, payload: str, **kw: Any) -> None:
        seen.append(JobStore(client.store.url).get(json.loads(payload)["id"]))
        push(queue, payload, **kw)

    monkeypatch.setattr(client.admin.broker, "enqueue", spy)
    client.enqueue("echo", {"text": "hi"}, id="first")
    assert seen[0]["status"] == "queued" and json.loads(seen[0]["payload"])["id"] == "first"


def test_enqueue_pushes_the_job_onto_its_queue(client: Client) -> None:
    job_id = client.enqueue("echo", {"text": "hi"}, queue="default")
    [raw] = client.redis.lrange(Keys().queue("default"), 0, -1)
    assert json.loads(raw)["id"] == job_id


def test_enqueue_refuses_invalid_params_and_writes_nothing(client: Client) -> None:
    with pytest.raises(AdminError):
        client.enqueue("echo", {"text": 5, "unknown": True}, id="bad")
    assert client.store.get("bad") is None


def test_enqueue_refuses_the_id_of_an_unfinished_job(client: Client) -> None:
    client.enqueue("echo", {"text": "hi"}, id="twice")
    with pytest.raises(AdminError) as exc:
        client.enqueue("echo", {"text": "hi"}, id="twice")
    assert exc.value.code == 409


def test_a_delayed_job_waits_in_the_scheduled_set(client: Client) -> None:
    client.enqueue("echo", {"text": "later"}, id="later", delay=60)
    assert client.redis.zcard(Keys().scheduled) == 1


def test_status_is_the_jobs_row(client: Client) -> None:
    client.enqueue("echo", {"text": "hi"}, id="s1")
    assert client.status("s1")["status"] == "queued"


def test_status_of_an_unknown_job_is_none(client: Client) -> None:
    assert client.status("nobody") is None


def test_wait_returns_the_final_row_and_reports_progress(client: Client) -> None:
    client.enqueue("echo", {"text": "hi"}, id="w1")
    events: list[dict[str, Any]] = []
    thread = finish_later(client.store, client.redis, "w1", 0.2)
    row = client.wait("w1", timeout=10, on_progress=events.append)
    thread.join()
    assert row["status"] == "succeeded" and row["result"] == {"ok": 1}
    assert events == [{"job_id": "w1", "progress": 0.5, "stage": "half"}]


def test_wait_gives_up_after_its_timeout(client: Client) -> None:
    client.enqueue("echo", {"text": "hi"}, id="slow")
    started = time.monotonic()
    with pytest.raises(JobTimeout) as exc:
        client.wait("slow", timeout=0.3)
    assert exc.value.row["status"] == "queued" and time.monotonic() - started < 2


def test_a_delayed_job_lost_by_redis_goes_back_to_the_scheduled_set(client: Client) -> None:
    from worker.reconciler import Reconciler

    client.enqueue("echo", {"text": "later"}, id="later2", delay=120)
    client.redis.flushall()
    settings = client.settings.model_copy(update={"reconcile_grace": 0.0})
    Reconciler(client.redis, Keys(), client.store.engine, settings).run()
    [(_, due)] = client.redis.zrange(Keys().scheduled, 0, -1, withscores=True)
    assert due > time.time() + 100
