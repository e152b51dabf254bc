"""Who may reach the dashboard, and what a request needs to change anything."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from config import Settings, WebSettings
from tests.support import ROOT
from tests.web.conftest import BASE, SAME_ORIGIN
from worker.redis_server import free_port
from worker.web.security import InsecureBind, check_bind

pytestmark = pytest.mark.integration
ECHO = {"processor": "echo", "params": {}}


@contextmanager
def app_client(settings: Settings, base: str = BASE, host: str | None = None) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from worker.web.app import create_app

    with TestClient(create_app(settings, host=host), base_url=base) as c:
        yield c


def csrf_of(client: Any, path: str = "/failed") -> str:
    html = client.get(path, headers={"accept": "text/html"}).text
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_a_loopback_bind_needs_no_credentials() -> None:
    check_bind(WebSettings(), "127.0.0.1")
    check_bind(WebSettings(), "::1")


def test_a_non_loopback_bind_without_credentials_is_refused() -> None:
    with pytest.raises(InsecureBind, match="WEB_AUTH_TOKEN"):
        check_bind(WebSettings(), "0.0.0.0")


def test_a_non_loopback_bind_with_a_token_is_allowed() -> None:
    check_bind(WebSettings(auth_token="t"), "0.0.0.0")


def test_the_command_refuses_to_start_on_a_non_local_address_without_credentials(
    redis_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEB_")}
    env |= {"REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    port = str(free_port())
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "web", "--host", "0.0.0.0", "--port", port],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "WEB_AUTH_TOKEN" in proc.stderr


def test_with_a_token_an_unauthenticated_api_call_answers_401(
    web_settings: Callable[..., Settings],
) -> None:
    with app_client(web_settings(web={"auth_token": "tok"})) as c:
        assert c.get("/api/v1/jobs").status_code == 401
        assert c.get("/api/v1/jobs", headers={"authorization": "Bearer nope"}).status_code == 401
        assert c.get("/metrics").status_code == 401


def test_the_bearer_token_grants_access(web_settings: Callable[..., Settings]) -> None:
    with app_client(web_settings(web={"auth_token": "tok"})) as c:
        assert c.get("/api/v1/jobs", headers={"authorization": "Bearer tok"}).status_code == 200


def test_basic_auth_credentials_grant_access(web_settings: Callable[..., Settings]) -> None:
    settings = web_settings(web={"auth_user": "ops", "auth_password": "pw"})
    good = "Basic " + base64.b64encode(b"ops:pw").decode()
    bad = "Basic " + base64.b64encode(b"ops:nope").decode()
    with app_client(settings) as c:
        r = c.get("/", headers={"accept": "text/html"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert c.get("/", headers={"authorization": bad}).status_code == 401
        assert c.get("/", headers={"authorization": good}).status_code == 200


def test_a_cross_origin_post_is_refused(client: Any) -> None:
    r = client.post("/api/v1/jobs", json=ECHO, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.get("/api/v1/jobs").json()["jobs"] == []


def test_a_json_api_post_needs_the_json_content_type(client: Any) -> None:
    r = client.post(
        "/api/v1/jobs",
        content='{"processor": "echo"}',
        headers={**SAME_ORIGIN, "content-type": "text/plain"},
    )
    assert r.status_code in (415, 422)
    assert client.get("/api/v1/jobs").json()["jobs"] == []


def test_a_form_post_without_the_csrf_token_is_refused(client: Any) -> None:
    client.app.state.core.admin.client.lpush("stoker:failed", "x")
    r = client.post("/failed/purge", data={"confirm": "purge"}, headers=SAME_ORIGIN)
    assert r.status_code == 403
    assert client.get("/api/v1/failed").json() != []


def test_a_form_post_with_the_csrf_token_is_done(client: Any) -> None:
    client.app.state.core.admin.client.lpush("stoker:failed", "x")
    token = csrf_of(client)
    r = client.post(
        "/failed/purge",
        data={"confirm": "purge", "csrf": token},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/api/v1/failed").json() == []


def test_purge_needs_its_confirmation(client: Any) -> None:
    client.app.state.core.admin.client.lpush("stoker:failed", "x")
    r = client.post("/failed/purge", data={"csrf": csrf_of(client)}, headers=SAME_ORIGIN)
    assert r.status_code == 422
    assert client.get("/api/v1/failed").json() != []


def test_methods_other_than_get_and_post_are_refused(client: Any) -> None:
    assert client.delete("/api/v1/jobs/x", headers=SAME_ORIGIN).status_code == 405
    assert client.put("/api/v1/jobs", json=ECHO, headers=SAME_ORIGIN).status_code == 405


def test_a_foreign_host_header_is_refused_on_a_loopback_bind(client: Any) -> None:
    r = client.get("/api/v1/jobs", headers={"host": "rebound.example:9181"})
    assert r.status_code == 400


def test_read_only_hides_and_refuses_every_action(
    web_settings: Callable[..., Settings],
) -> None:
    with app_client(web_settings(web={"read_only": True})) as c:
        c.app.state.core.admin.client.lpush("stoker:failed", "x")
        assert c.post("/api/v1/jobs", json=ECHO, headers=SAME_ORIGIN).status_code == 403
        assert c.post("/api/v1/failed/purge", headers=SAME_ORIGIN).status_code == 403
        for path in ("/failed", "/processors"):
            html = c.get(path, headers={"accept": "text/html"}).text
            assert '<form method="post"' not in html and "read-only" in html


def test_no_secret_appears_on_any_page(web_settings: Callable[..., Settings]) -> None:
    settings = web_settings(web={"auth_token": "webtok-456"})
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"api_key": "sk-llm-789"})}
    )
    auth = {"authorization": "Bearer webtok-456", "accept": "text/html"}
    with app_client(settings) as c:
        for path in (
            "/",
            "/workers",
            "/jobs",
            "/failed",
            "/scheduled",
            "/processors",
            "/api/docs",
            "/api/v1/queues",
            "/api/v1/processors",
        ):
            text = c.get(path, headers=auth).text
            for secret in ("webtok-456", "sk-llm-789"):
                assert secret not in text, (path, secret)


def test_every_answer_carries_a_strict_content_security_policy(client: Any) -> None:
    csp = client.get("/", headers={"accept": "text/html"}).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_a_jobs_text_output_file_is_shown_as_plain_text(client: Any) -> None:
    folder = client.app.state.core.settings.output_dir / "j-1"
    folder.mkdir(parents=True)
    (folder / "out.rttm").write_text("SPEAKER m 1 0.00 1.50 <NA> <NA> S0 <NA> <NA>\n")
    r = client.get("/jobs/j-1/files/out.rttm")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_a_jobs_html_output_file_downloads_instead_of_rendering(client: Any) -> None:
    folder = client.app.state.core.settings.output_dir / "j-2"
    folder.mkdir(parents=True)
    (folder / "x.html").write_text("<script>alert(1)</script>")
    r = client.get("/jobs/j-2/files/x.html")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")


def test_an_output_file_path_cannot_leave_the_output_folder(client: Any) -> None:
    secret = client.app.state.core.settings.output_dir.parent / "secret.txt"
    secret.write_text("no")
    assert client.get("/jobs/..%2F/files/secret.txt").status_code == 404
    assert client.get("/jobs/x/files/..%2F..%2Fsecret.txt").status_code == 404
