"""The README's own producer line, run verbatim against a zero-setup worker."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.firsthour.conftest import Terminal, Zero
from tests.support import ROOT, wait_for
from worker.redis_server import DEFAULT_PORT, port_is_free

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def readme_producer_line() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"^redis-cli LPUSH .*$", readme, re.M).group(0)


def test_the_banner_prints_the_readmes_producer_line(zero: Zero) -> None:
    if not port_is_free(DEFAULT_PORT):
        pytest.skip("port 6379 is taken here: the banner names another port")
    term = Terminal({**zero.env, "WORKER_EMBEDDED_PORT": str(DEFAULT_PORT)})
    try:
        wait_for(lambda: "push a job:" in term.text, timeout=60)
        assert readme_producer_line() in term.text
    finally:
        term.ctrl_c()
        term.wait()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="needs redis-cli")
def test_the_readmes_redis_cli_line_reaches_a_zero_setup_worker(zero: Zero) -> None:
    if not port_is_free(DEFAULT_PORT):
        pytest.skip("port 6379 is taken here")
    term = Terminal({**zero.env, "WORKER_EMBEDDED_PORT": str(DEFAULT_PORT)})
    try:
        wait_for(lambda: "push a job:" in term.text, timeout=60)
        subprocess.run(readme_producer_line(), shell=True, check=True, capture_output=True)

        def done() -> bool:
            counts = json.loads(zero.cli("info", "--json").stdout)["jobs_by_status"]
            return counts.get("succeeded") == 1

        wait_for(done, timeout=30)
    finally:
        term.ctrl_c()
        assert term.wait() == 0
