"""Web dashboard fixtures: the app in-process (TestClient or a real uvicorn), a worker
subprocess, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

pytest.importorskip("fastapi", reason="the `web` extra is not installed")

from config import Settings, WebSettings
from tests.support import start_worker, wait_for, worker_env
from worker.admin import Admin
from worker.redis_server import RedisProcess, free_port
from worker.store import JobStore

CHROMIUM = os.environ.get("STOKER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
BASE = "http://127.0.0.1:9181"
#: Headers a browser's same-origin POST carries (TestClient sends none by itself).
SAME_ORIGIN = {"origin": BASE}


@pytest.fixture
def web_settings(make_settings: Callable[..., Settings], redis_url: str) -> Callable[..., Settings]:
    """Settings on the test Redis and SQLite file; `web=` overrides WEB_* settings."""

    def make(web: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        settings = make_settings(redis_url=redis_url, heartbeat_ttl=2.0, **overrides)
        return settings.model_copy(update={"web": WebSettings(refresh=0.5, **(web or {}))})

    return make


@pytest.fixture
def client(web_settings: Callable[..., Settings]) -> Iterator[Any]:
    """A TestClient of the app on default settings (host 127.0.0.1:9181)."""
    from fastapi.testclient import TestClient

    from worker.web.app import create_app

    with TestClient(create_app(web_settings()), base_url=BASE) as c:
        yield c


@contextmanager
def live_server(settings: Settings, host: str = "127.0.0.1", app: Any = None) -> Iterator[str]:
    """The app (built from `settings` unless given) under a real uvicorn in a thread;
    yields its base URL."""
    import uvicorn

    from worker.web.app import create_app

    port = free_port()
    app = app or create_app(settings, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def running_worker(settings: Settings, data_dir: Path, **extra: Any) -> Iterator[Any]:
    """A real `python -m worker run` on the same Redis and database."""
    env = worker_env(
        redis_url=settings.redis_url or "",
        database_url=settings.resolved_database_url,
        data_dir=data_dir,
        heartbeat_ttl="2",
        progress_interval="0.1",
        **extra,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = start_worker(env, log_path=data_dir / "worker.log")
    client = redis.Redis.from_url(settings.redis_url or "")
    try:
        wait_for(lambda: client.scard("stoker:workers") > 0, timeout=60)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        client.close()


@dataclass
class Stack:
    """One dashboard and one worker (serving `default` only) shared by a test module."""

    settings: Settings
    base: str
    admin: Admin
    folder: Path

    def status(self, job_id: str) -> str | None:
        return (self.admin.store.get(job_id) or {}).get("status")


@pytest.fixture(scope="module")
def stack(redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("web")
    (folder / "media").mkdir()
    settings = Settings(
        redis_url=redis_server.url,
        database_url=f"sqlite:///{folder / 'stoker.db'}",
        data_dir=folder / "var",
        media_root=folder / "media",
        output_dir=folder / "output",
        queues=["default", "idle-a", "idle-b"],
        processors=["tests.web.flaky:Flaky"],
        heartbeat_ttl=2.0,
        log_level="WARNING",
        web=WebSettings(refresh=0.5),
    )
    store = JobStore(settings.resolved_database_url)
    store.migrate()
    admin = Admin(settings, redis.Redis.from_url(redis_server.url), store)
    worker_settings = {"queues": "default", "processors": "tests.web.flaky:Flaky"}
    with (
        live_server(settings) as base,
        running_worker(settings, folder / "worker", **worker_settings),
    ):
        yield Stack(settings, base, admin, folder)
    store.close()


def _chromium_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not installed (deploy/install.sh --test installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the `test` extra)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium under Playwright (its own browser download is not used)."""
    if (reason := _chromium_missing()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # launch() gives every run a fresh temporary profile (its --user-data-dir).
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page at a laptop size; JavaScript dialogs are recorded in `page.dialogs`."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    pg = context.new_page()
    pg.dialogs = []

    def on_dialog(dialog: Any) -> None:
        pg.dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    pg.on("dialog", on_dialog)
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def screenshot(pg: Any, name: str) -> None:
    """Save a screenshot to $STOKER_WEB_SCREENSHOTS (e.g. docs/img) when it is set."""
    folder = os.environ.get("STOKER_WEB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        time.sleep(0.3)
        pg.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)
