"""The dashboard in a real browser (headless Debian Chromium) against a real Redis, the
SQLite database and a real worker (serving `default`; `idle-a` and `idle-b` stay put)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from config import Settings
from tests.support import wait_for
from tests.web.conftest import Stack, live_server, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

XSS_ID = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
XSS_TEXT = "<script>alert('params')</script>\"><img src=x onerror=alert(3)>"


def depth_shown(page: Any, queue: str) -> int:
    return int(page.locator(f'tr[data-queue="{queue}"] [data-depth]').inner_text())


def test_the_overview_shows_the_queue_depths_redis_holds(stack: Stack, page: Any) -> None:
    client = stack.admin.client
    for i in range(3):
        stack.admin.enqueue("echo", {"text": str(i)}, queue="idle-a")
    client.lpush("stoker:queue:idle-b", json.dumps({"processor": "echo", "id": "raw-1"}))
    page.goto(stack.base + "/")
    for queue in ("default", "idle-a", "idle-b"):
        assert depth_shown(page, queue) == client.llen(f"stoker:queue:{queue}")
    client.lpush("stoker:queue:idle-a", json.dumps({"processor": "echo", "id": "raw-2"}))
    want = client.llen("stoker:queue:idle-a")
    # The table refreshes in place (no reload): the new depth appears by itself.
    page.wait_for_function(
        f"() => document.querySelector('tr[data-queue=\"idle-a\"] [data-depth]')"
        f".textContent == '{want}'"
    )
    screenshot(page, "overview")


def test_a_running_jobs_progress_bar_advances_live(stack: Stack, page: Any) -> None:
    job = stack.admin.enqueue("echo", {"text": "slow", "sleep": 40})
    wait_for(lambda: stack.status(job.id) == "running", 30)
    page.goto(f"{stack.base}/jobs/{job.id}")
    first = float(page.locator("[data-job-progress]").evaluate("el => el.value"))
    # 40 s of sleep: 0.05 is 2 s of progress, carried by server-sent events.
    page.wait_for_function(
        f"() => document.querySelector('[data-job-progress]').value > {first} + 0.05"
    )
    assert page.locator("[data-job-stage]").inner_text() == "sleep"
    screenshot(page, "job")
    stack.admin.cancel(job.id)  # the status shown follows without a reload
    page.wait_for_function(
        "() => document.querySelector('.status').textContent == 'cancelled'", timeout=20_000
    )


def test_requeue_on_a_failed_job_moves_it_back_and_it_then_succeeds(
    stack: Stack, page: Any
) -> None:
    ready = stack.folder / "media" / "ready"
    job = stack.admin.enqueue("flaky", {"ready_file": str(ready)}, job_id="flaky-1")
    wait_for(lambda: stack.admin.failed_entry(job.id) is not None, 30)
    page.goto(stack.base + "/failed")
    group = page.locator('section.group[data-error-type="PermanentError"]')
    assert "not ready" in group.inner_text()
    screenshot(page, "failed")
    ready.touch()
    group.locator(f'tr[data-failed-id="{job.id}"] button', has_text="Requeue").click()
    page.wait_for_url(lambda url: "msg=" in url)
    assert "requeued 1 job" in page.locator(".flash").inner_text()
    wait_for(lambda: stack.status(job.id) == "succeeded", 30)
    assert stack.admin.failed_entry(job.id) is None
    page.goto(f"{stack.base}/jobs/{job.id}")
    assert page.locator(".status").first.inner_text() == "succeeded"


def test_cancel_stops_a_running_job(stack: Stack, page: Any) -> None:
    job = stack.admin.enqueue("echo", {"text": "long", "sleep": 120})
    wait_for(lambda: stack.status(job.id) == "running", 30)
    page.goto(f"{stack.base}/jobs/{job.id}")
    page.locator("button", has_text="Cancel").click()  # its confirm() is accepted
    assert [kind for kind, _ in page.dialogs] == ["confirm"]
    page.wait_for_url(lambda url: "msg=" in url)
    wait_for(lambda: stack.status(job.id) == "cancelled", 30)
    page.wait_for_function(
        "() => document.querySelector('.status').textContent == 'cancelled'", timeout=20_000
    )


def test_xss_payloads_from_a_job_render_as_inert_text(stack: Stack, page: Any) -> None:
    client = stack.admin.client
    stack.admin.enqueue("echo", {"text": XSS_TEXT}, job_id=XSS_ID, queue="idle-b")
    entry = {
        "id": XSS_ID + "-f",
        "job": {"id": XSS_ID + "-f", "processor": "echo", "params": {"text": XSS_TEXT}},
        "queue": "idle-b",
        "error": {"type": "<script>alert(4)</script>", "message": XSS_TEXT, "traceback": XSS_TEXT},
        "attempts": 1,
    }
    client.lpush("stoker:failed", json.dumps(entry))
    client.sadd("stoker:workers", XSS_ID)
    client.hset(f"stoker:worker:{XSS_ID}", mapping={"host": XSS_TEXT, "device": XSS_TEXT})
    client.set(f"stoker:heartbeat:{XSS_ID}", "1", px=60_000)  # alive: not recovered meanwhile
    try:
        for path in ("/", "/jobs", f"/jobs/{quote(XSS_ID, safe='')}", "/failed", "/workers"):
            response = page.goto(stack.base + path)
            assert response.status == 200, (path, response.status, page.content()[:500])
            page.wait_for_timeout(300)
            text = page.locator("main").inner_text()
            assert path == "/" or XSS_TEXT in text or XSS_ID in text, path
            assert page.locator("main img, main script").count() == 0, path
        assert page.dialogs == []
    finally:
        client.srem("stoker:workers", XSS_ID)
        client.delete(f"stoker:heartbeat:{XSS_ID}", f"stoker:worker:{XSS_ID}")
        client.lrem("stoker:failed", 0, json.dumps(entry))


def test_an_unauthenticated_request_to_a_non_local_bind_is_refused(
    web_settings: Callable[..., Settings], page: Any
) -> None:
    settings = web_settings(web={"auth_token": "s3cret-token"})
    with live_server(settings, host="0.0.0.0") as base:
        assert page.goto(base + "/api/v1/jobs").status == 401
        page.goto(base + "/")
        assert page.url.endswith("/login")
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        assert "wrong token" in page.locator("main").inner_text()
        page.fill("input[name=token]", "s3cret-token")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
        assert page.locator("table#queues").count() == 1


def test_the_main_pages_render_at_laptop_size(stack: Stack, page: Any) -> None:
    for name, path in (
        ("workers", "/workers"),
        ("jobs", "/jobs"),
        ("scheduled", "/scheduled"),
        ("processors", "/processors"),
    ):
        page.goto(stack.base + path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 1366, (path, width)
        screenshot(page, name)


def test_an_enqueue_form_generated_from_the_schema_validates_like_the_cli(
    stack: Stack, page: Any
) -> None:
    page.goto(stack.base + "/processors")
    form = page.locator('form[data-processor="echo"]')
    page.locator("#p-echo details.enqueue summary").click()
    form.locator('input[name="p.sleep"]').fill("-1")
    form.locator("button[type=submit]").click()
    assert "sleep: Input should be greater than or equal to 0" in page.locator("main").inner_text()
    page.goto(stack.base + "/processors")
    page.locator("#p-echo details.enqueue summary").click()
    form.locator('input[name="p.text"]').fill("from the form")
    form.locator('select[name="queue"]').select_option("idle-a")
    form.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/jobs/" in url)
    assert page.locator(".status").first.inner_text() == "queued"
    job_id = page.locator("h1 code").inner_text()
    assert stack.admin.store.get(job_id)["params"] == {"text": "from the form"}
