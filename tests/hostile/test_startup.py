"""Startup as an operator meets it: a configuration error is one clear line and exit code 2
(systemd does not restart it); a wait for an unreachable database honours the first SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT, run_cli, start_worker, worker_env


def _env(redis_url: str, tmp_path: Path, **settings: object) -> dict[str, str]:
    db = f"sqlite:///{tmp_path / 'stoker.db'}"
    return worker_env(redis_url=redis_url, database_url=db, data_dir=tmp_path, **settings)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_clear_line(proc: subprocess.CompletedProcess[str], text: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out
    assert text in out


def test_a_processor_path_that_is_not_a_processor_exits_2_in_one_line(
    redis_url: str, tmp_path: Path
) -> None:
    proc = _run(_env(redis_url, tmp_path, processors="pathlib:Path"), "run", "--burst")
    _assert_one_clear_line(proc, "is not a Processor subclass")


def test_a_processor_module_that_does_not_exist_exits_2_in_one_line(
    redis_url: str, tmp_path: Path
) -> None:
    proc = _run(_env(redis_url, tmp_path, processors="no_such_mod:X"), "run", "--burst")
    _assert_one_clear_line(proc, "cannot import")


def test_an_invalid_queue_name_in_the_settings_exits_2_in_one_line(
    redis_url: str, tmp_path: Path
) -> None:
    env = _env(redis_url, tmp_path) | {"WORKER_QUEUES": "high,bad queue"}
    _assert_one_clear_line(_run(env, "run"), "invalid queue name")


def test_wrong_redis_credentials_exit_2_in_one_line(redis_url: str, tmp_path: Path) -> None:
    bad = redis_url.replace("redis://", "redis://ghost:wrong@")
    proc = _run(_env(bad, tmp_path), "run", "--burst")
    _assert_one_clear_line(proc, "Redis refused the credentials")


def test_enqueue_onto_a_bad_queue_name_exits_2_and_writes_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    env = _env(redis_url, tmp_path)
    proc = run_cli(["enqueue", "echo", "--queue", "bad\nqueue", "--id", "q1"], env, check=False)
    _assert_one_clear_line(proc, "invalid queue name")
    status = run_cli(["status", "q1"], env, check=False)
    assert status.returncode == 1 and "unknown" in status.stderr


def test_the_first_sigterm_ends_a_wait_for_an_unreachable_database(
    redis_url: str, tmp_path: Path
) -> None:
    env = _env(redis_url, tmp_path) | {"DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x"}
    proc = start_worker(env, log_path=tmp_path / "w.log")
    try:
        deadline = time.monotonic() + 60
        while "database unavailable" not in (tmp_path / "w.log").read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - asked < 3
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in (tmp_path / "w.log").read_text(errors="replace")
