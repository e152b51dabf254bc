"""The HTTP API under /api/v1: the CLI's rules, JSON errors with the right status codes."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.web.conftest import SAME_ORIGIN

pytestmark = pytest.mark.integration


def enqueue(client: Any, **body: Any) -> Any:
    return client.post("/api/v1/jobs", json=body, headers=SAME_ORIGIN)


def core(client: Any) -> Any:
    return client.app.state.core


def test_enqueue_answers_202_with_the_id_of_a_queued_job(client: Any) -> None:
    r = enqueue(client, processor="echo", params={"text": "hi"})
    assert r.status_code == 202
    job_id = r.json()["id"]
    assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued"


def test_enqueue_writes_the_row_before_the_job_reaches_its_queue(client: Any) -> None:
    job_id = enqueue(client, processor="echo", params={}, id="j-1").json()["id"]
    raw = core(client).admin.client.lrange("stoker:queue:default", 0, -1)
    assert [json.loads(r)["id"] for r in raw] == [job_id]
    assert core(client).admin.store.get(job_id)["status"] == "queued"


def test_enqueue_with_invalid_params_answers_422_with_the_reason(client: Any) -> None:
    r = enqueue(client, processor="echo", params={"sleep": -1})
    assert r.status_code == 422
    assert "sleep" in r.json()["error"]


def test_enqueue_of_an_unknown_processor_answers_422(client: Any) -> None:
    r = enqueue(client, processor="nope", params={})
    assert r.status_code == 422
    assert "unknown processor 'nope'" in r.json()["error"]


def test_enqueue_with_the_id_of_an_unfinished_job_answers_409(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="dup")
    r = enqueue(client, processor="echo", params={}, id="dup")
    assert r.status_code == 409
    assert r.json() == {"error": "job dup is already queued", "status": 409}


def test_a_body_that_is_not_a_job_answers_422_as_json(client: Any) -> None:
    r = client.post("/api/v1/jobs", json={"params": {}}, headers=SAME_ORIGIN)
    assert r.status_code == 422
    assert "processor" in r.json()["error"]


def test_an_unknown_job_answers_404_as_json(client: Any) -> None:
    r = client.get("/api/v1/jobs/no-such-job")
    assert r.status_code == 404
    assert r.json() == {"error": "no job no-such-job", "status": 404}


def test_a_job_id_with_a_slash_is_found(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="a/b")
    assert client.get("/api/v1/jobs/a%2Fb").json()["id"] == "a/b"


def test_cancel_removes_a_queued_job(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="c-1")
    r = client.post("/api/v1/jobs/c-1/cancel", headers=SAME_ORIGIN)
    assert r.json()["state"] == "removed"
    assert client.get("/api/v1/jobs/c-1").json()["status"] == "cancelled"


def test_cancel_of_a_finished_job_answers_409(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="c-2")
    client.post("/api/v1/jobs/c-2/cancel", headers=SAME_ORIGIN)
    assert client.post("/api/v1/jobs/c-2/cancel", headers=SAME_ORIGIN).status_code == 409


def test_cancel_of_an_unknown_job_answers_404(client: Any) -> None:
    assert client.post("/api/v1/jobs/zzz/cancel", headers=SAME_ORIGIN).status_code == 404


def test_requeue_runs_a_cancelled_job_again_under_its_id(client: Any) -> None:
    enqueue(client, processor="echo", params={"text": "again"}, id="r-1")
    client.post("/api/v1/jobs/r-1/cancel", headers=SAME_ORIGIN)
    r = client.post("/api/v1/jobs/r-1/requeue", headers=SAME_ORIGIN)
    assert r.status_code == 202
    assert client.get("/api/v1/jobs/r-1").json()["status"] == "queued"


def test_requeue_of_an_unfinished_job_answers_409(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="r-2")
    assert client.post("/api/v1/jobs/r-2/requeue", headers=SAME_ORIGIN).status_code == 409


def failed_entry(job_id: str, error_type: str) -> str:
    job = {"id": job_id, "processor": "echo", "params": {}}
    error = {"type": error_type, "message": "boom", "traceback": "Traceback ..."}
    return json.dumps({"id": job_id, "job": job, "queue": "default", "error": error})


def test_failed_requeue_by_error_type_moves_only_that_group(client: Any) -> None:
    redis = core(client).admin.client
    redis.lpush("stoker:failed", failed_entry("f-1", "ValueError"))
    redis.lpush("stoker:failed", failed_entry("f-2", "KeyError"))
    r = client.post(
        "/api/v1/failed/requeue", json={"error_type": "ValueError"}, headers=SAME_ORIGIN
    )
    assert r.json() == {"requeued": [{"id": "f-1", "queue": "default"}]}
    assert [e["id"] for e in client.get("/api/v1/failed").json()] == ["f-2"]


def test_failed_purge_empties_the_list(client: Any) -> None:
    core(client).admin.client.lpush("stoker:failed", failed_entry("f-3", "X"))
    assert client.post("/api/v1/failed/purge", headers=SAME_ORIGIN).json() == {"purged": 1}
    assert client.get("/api/v1/failed").json() == []


def test_queues_report_depth_and_the_age_of_the_oldest_job(client: Any) -> None:
    redis = core(client).admin.client
    old = json.dumps({"processor": "echo", "id": "old", "queued_at": time.time() - 120})
    redis.lpush("stoker:queue:default", old)
    enqueue(client, processor="echo", params={})
    (q,) = client.get("/api/v1/queues").json()["queues"]
    assert (q["queue"], q["depth"], q["in_flight"]) == ("default", 2, 0)
    assert 119 < q["oldest_age_s"] < 180


def test_run_now_makes_a_scheduled_job_due(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="s-1", delay=3600)
    (entry,) = client.get("/api/v1/scheduled").json()
    assert entry["id"] == "s-1" and entry["due"] > time.time() + 3000
    assert client.post("/api/v1/jobs/s-1/run-now", headers=SAME_ORIGIN).status_code == 200
    assert client.get("/api/v1/scheduled").json()[0]["due"] <= time.time()


def test_run_now_of_a_job_that_is_not_scheduled_answers_404(client: Any) -> None:
    assert client.post("/api/v1/jobs/nope/run-now", headers=SAME_ORIGIN).status_code == 404


def test_processors_list_each_ones_params_json_schema(client: Any) -> None:
    echo = client.get("/api/v1/processors").json()["echo"]
    assert set(echo["schema"]["properties"]) >= {"text", "sleep", "fail"}


def test_the_openapi_document_describes_the_api(client: Any) -> None:
    spec = client.get("/api/openapi.json").json()
    assert {"/api/v1/jobs", "/api/v1/queues", "/api/v1/failed"} <= set(spec["paths"])
    page = client.get("/api/docs", headers={"accept": "text/html"})
    assert "/api/v1/jobs/{job_id}/cancel" in page.text


def test_the_cluster_metrics_are_served_at_metrics(client: Any) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert 'stoker_queue_jobs{queue="default"} 0.0' in r.text


def test_processor_params_carry_the_docstrings_written_under_them(client: Any) -> None:
    sleep = client.get("/api/v1/processors").json()["echo"]["schema"]["properties"]["sleep"]
    assert sleep["description"].startswith("Seconds to sleep")


def refresh_live_section(client: Any, job_id: str, version: str) -> Any:
    """The request the job page's htmx makes every few seconds (`hx-headers` included)."""
    headers = {"hx-request": "true", "hx-target": "job-live", "x-job-version": version}
    return client.get(f"/jobs/{job_id}", headers={"accept": "text/html", **headers})


def shown_version(page: Any) -> str:
    return re.search(r'"X-Job-Version": "([0-9a-f]+)"', page.text).group(1)


def queued_an_hour_ago(client: Any, job_id: str) -> None:
    """Make the job's times an hour old ("1.0 h ago" stays the same between two reads)."""
    from sqlalchemy import update

    from worker.store import jobs

    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with core(client).admin.store.engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(queued_at=hour_ago, updated_at=hour_ago)
        )


def test_a_job_page_refresh_is_answered_204_while_the_job_is_unchanged(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="v-1")
    queued_an_hour_ago(client, "v-1")
    page = client.get("/jobs/v-1", headers={"accept": "text/html"})
    r = refresh_live_section(client, "v-1", shown_version(page))
    assert r.status_code == 204
    assert r.content == b""


def test_a_job_page_refresh_renders_the_section_again_once_the_job_changed(client: Any) -> None:
    enqueue(client, processor="echo", params={}, id="v-2")
    queued_an_hour_ago(client, "v-2")
    version = shown_version(client.get("/jobs/v-2", headers={"accept": "text/html"}))
    client.post("/api/v1/jobs/v-2/cancel", headers=SAME_ORIGIN)
    r = refresh_live_section(client, "v-2", version)
    assert r.status_code == 200
    assert 'id="job-live"' in r.text
    assert "cancelled" in r.text
