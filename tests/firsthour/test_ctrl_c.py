"""Ctrl-C in a real terminal: the running job finishes and is recorded, the worker exits 0
with its statistics, and the embedded server stops only with its last user."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firsthour.conftest import Terminal, Zero
from tests.support import ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _enqueue_sleeper(zero: Zero, job_id: str, seconds: float = 2.0) -> None:
    params = json.dumps({"text": job_id, "sleep": seconds})
    zero.cli("enqueue", "echo", "--params", params, "--id", job_id)


def _stopped_line(text: str) -> dict:
    line = next(x for x in text.splitlines() if "stoker worker stopped" in x)
    return json.loads(line[line.index("{") :])


def test_ctrl_c_lets_the_running_job_finish_and_exits_0_with_statistics(zero: Zero) -> None:
    term = Terminal(zero.env)
    wait_for(lambda: "push a job:" in term.text, timeout=60)
    _enqueue_sleeper(zero, "cc1")
    wait_for(lambda: zero.status("cc1") == "running", timeout=30)
    term.ctrl_c()
    assert term.wait() == 0
    assert zero.status("cc1") == "succeeded"
    stats = _stopped_line(term.text)
    assert stats["processed"] == stats["succeeded"] == 1


def test_ctrl_c_stops_the_embedded_server_when_no_one_else_uses_it(zero: Zero) -> None:
    term = Terminal(zero.env)
    wait_for(lambda: "push a job:" in term.text, timeout=60)
    assert zero.server_url()
    term.ctrl_c()
    assert term.wait() == 0
    assert zero.server_url() is None


def test_a_second_worker_keeps_the_server_and_runs_jobs_after_the_first_stops(
    zero: Zero, tmp_path: Path
) -> None:
    term = Terminal(zero.env)
    wait_for(lambda: "push a job:" in term.text, timeout=60)
    url = zero.server_url()
    other = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        env=zero.env,
        cwd=ROOT,
        start_new_session=True,
        stdout=(log := open(tmp_path / "other.log", "w")),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: len(json.loads(zero.cli("info", "--json").stdout)["workers"]) == 2)
        term.ctrl_c()
        assert term.wait() == 0
        assert zero.server_url() == url
        _enqueue_sleeper(zero, "after", 0)
        wait_for(lambda: zero.status("after") == "succeeded", timeout=30)
        info = json.loads(zero.cli("info", "--json").stdout)
        assert [w["alive"] for w in info["workers"]] == [True]
    finally:
        other.send_signal(signal.SIGTERM)
        code = other.wait(60)
        log.close()
        assert code == 0, (tmp_path / "other.log").read_text()[-3000:]
    assert zero.server_url() is None
