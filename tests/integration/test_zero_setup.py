"""Zero setup: no REDIS_URL, no DATABASE_URL — an embedded Valkey and a SQLite file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import run_cli, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    env = worker_env(redis_url="", database_url="", data_dir=tmp_path / "var")
    del env["REDIS_URL"], env["DATABASE_URL"]
    return env


def _server_pid_alive(data_dir: Path) -> bool:
    info = json.loads((data_dir / "redis" / "server.json").read_text())
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_the_daemon_on_an_embedded_server_and_jobs_succeed(
    bare_env: dict[str, str], tmp_path: Path
) -> None:
    out = run_cli(["demo", "--only", "echo"], bare_env, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("  ")]
    assert sum(" succeeded " in line for line in lines) == 3
    assert any("demo-bad" in line and " failed " in line for line in lines)
    assert (tmp_path / "var" / "stoker.db").exists()
    assert (tmp_path / "var" / "redis" / "appendonlydir").exists()
    assert not _server_pid_alive(tmp_path / "var")


def test_queued_jobs_survive_a_restart_of_the_embedded_server(
    bare_env: dict[str, str],
) -> None:
    job_id = run_cli(["enqueue", "echo", "--params", '{"text": "kept"}'], bare_env).stdout.strip()
    run_cli(["run", "--burst"], bare_env)
    row = json.loads(run_cli(["status", job_id, "--json"], bare_env).stdout)
    assert row["status"] == "succeeded" and row["result"] == {"text": "kept"}
