"""Helpers shared by the test suites (not fixtures: plain functions and classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def worker_env(
    *, redis_url: str, database_url: str, data_dir: Path, **settings: Any
) -> dict[str, str]:
    """Environment for a `python -m worker` subprocess. `settings` become WORKER_* vars."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "AUDIO_", "VIDEO_", "LLM_"))
        and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env |= {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "WORKER_DATA_DIR": str(data_dir),
        "WORKER_MEDIA_ROOT": str(data_dir / "media"),
        "WORKER_OUTPUT_DIR": str(data_dir / "output"),
        "WORKER_DEVICE": "cpu",
        "WORKER_LOG_FORMAT": "json",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in settings.items():
        name = key.upper() if key.isupper() else f"WORKER_{key.upper()}"
        env[name] = value if isinstance(value, str) else json.dumps(value)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker ARGS` and return the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"python -m worker {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


def start_worker(env: dict[str, str], *args: str, log_path: Path | None = None) -> subprocess.Popen:
    """Start `python -m worker run ARGS` in the background."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run", *args],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
    )


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll until `condition()` is truthy; return its value or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
