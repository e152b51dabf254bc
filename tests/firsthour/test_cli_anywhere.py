"""One data folder wherever you stand; reads load no ML stack and start nothing; `enqueue`
refuses what can never run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firsthour.conftest import Zero
from tests.support import ROOT

pytestmark = pytest.mark.integration


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_default_data_folder_is_the_checkouts_var_from_any_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in Zero(tmp_path / "x").env.items() if k != "WORKER_DATA_DIR"}
    code = "import config; print(config.Settings().data_dir)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.strip() == str(ROOT / "var")


def test_a_cli_call_from_another_folder_uses_the_same_data_folder(
    zero: Zero, tmp_path: Path
) -> None:
    job_id = zero.cli("enqueue", "echo", "--params", "{}").stdout.strip()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _run(["status", job_id], zero.env, elsewhere)
    assert out.returncode == 0 and f"job {job_id}: queued" in out.stdout
    assert list(elsewhere.iterdir()) == []


def test_info_names_the_redis_the_database_and_the_data_folder(zero: Zero) -> None:
    out = zero.cli("info").stdout
    assert f"data:     {zero.data_dir}" in out
    assert f"database: sqlite:///{zero.data_dir}/stoker.db" in out
    assert "redis:    embedded, not running" in out


HEAVY = ("torch", "transformers", "faster_whisper", "resemblyzer", "av", "processors.audio")
"""What a reading command must not import: the ML stack alone costs seconds of CPU."""


@pytest.mark.parametrize("args", [["info"], ["status", "r1"], ["results", "r1"]])
def test_reading_commands_start_no_server_and_load_no_ml_stack(zero: Zero, args: list[str]) -> None:
    # Speed is measured, not asserted: a reading command stays quick (~0.6-0.9 s of CPU
    # on the 2-core VM) because it imports no processor stack and starts no server.
    zero.cli("enqueue", "echo", "--params", "{}", "--id", "r1")
    code = (
        "import sys\n"
        "from worker.cli import main\n"
        f"main({args!r})\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=zero.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.splitlines()[-1] == "LOADED []", out.stdout + out.stderr
    assert zero.server_url() is None


def test_enqueue_of_an_unknown_processor_exits_2_and_writes_nothing(zero: Zero) -> None:
    out = zero.cli("enqueue", "nope", "--params", "{}", "--id", "u1", check=False)
    assert out.returncode == 2 and "unknown processor 'nope'" in out.stderr
    assert json.loads(zero.cli("status", "u1", "--json", check=False).stdout)["status"] == "unknown"


def test_enqueue_with_invalid_params_exits_2_with_the_reason(zero: Zero) -> None:
    out = zero.cli("enqueue", "echo", "--params", '{"sleep": "long"}', check=False)
    assert out.returncode == 2 and "invalid params for echo: sleep" in out.stderr


def test_watch_of_a_finished_job_prints_its_result(zero: Zero) -> None:
    job_id = zero.cli("enqueue", "echo", "--params", '{"text": "w"}').stdout.strip()
    zero.cli("run", "--burst")
    out = zero.cli("watch", job_id).stdout
    assert out.splitlines()[-1] == f'job {job_id} succeeded: {{"text": "w"}}'


def test_results_prints_a_finished_jobs_result_as_json(zero: Zero) -> None:
    job_id = zero.cli("enqueue", "echo", "--params", '{"text": "r"}').stdout.strip()
    zero.cli("run", "--burst")
    assert json.loads(zero.cli("results", job_id).stdout) == {"text": "r"}
