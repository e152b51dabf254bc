"""Integration fixtures: a real redis-server and `python -m worker` subprocesses."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import run_cli, worker_env

pytestmark = pytest.mark.integration


class Env:
    """One isolated deployment: its Redis database, SQLite file and folders."""

    def __init__(self, redis_url: str, tmp_path: Path, **settings: Any) -> None:
        self.redis_url = redis_url
        self.data_dir = tmp_path / "var"
        (self.data_dir / "media").mkdir(parents=True, exist_ok=True)
        self.db_url = f"sqlite:///{self.data_dir / 'stoker.db'}"
        self.env = worker_env(
            redis_url=redis_url, database_url=self.db_url, data_dir=self.data_dir, **settings
        )

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        return run_cli(list(args), self.env, check=check, timeout=timeout)

    def row(self, job_id: str) -> dict[str, Any] | None:
        from worker.store import JobStore

        store = JobStore(self.db_url)
        try:
            return store.get(job_id)
        except Exception:
            return None
        finally:
            store.close()

    def redis_cli(self, *args: str) -> str:
        """Run the real `redis-cli` against this server, as a producer would."""
        exe = shutil.which("redis-cli")
        if exe is None:
            pytest.skip("redis-cli is not installed")
        out = subprocess.run(
            [exe, "-u", self.redis_url, *args], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()


@pytest.fixture
def make_env(redis_url: str, tmp_path: Path) -> Callable[..., Env]:
    return lambda **settings: Env(redis_url, tmp_path, **settings)
