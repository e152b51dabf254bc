"""`watch` follows a job to its end; `results` prints or exports it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from worker.cli_jobs import frame_table, render_results, watch


class Rows:
    """A job's row as successive reads see it."""

    def __init__(self, *rows: dict[str, Any]) -> None:
        self.rows = list(rows)

    def __call__(self) -> dict[str, Any] | None:
        return self.rows.pop(0) if len(self.rows) > 1 else self.rows[0]


def test_watch_of_a_finished_job_prints_its_result_and_exits_0() -> None:
    out = io.StringIO()
    code = watch(Rows({"id": "j", "status": "succeeded", "result": {"n": 1}}), out=out, tty=False)
    assert code == 0 and 'job j succeeded: {"n": 1}' in out.getvalue()


def test_watch_shows_each_stage_then_the_error_of_a_failed_job() -> None:
    rows = Rows(
        {"id": "j", "status": "queued"},
        {"id": "j", "status": "running", "progress": 0.25, "stage": "load model"},
        {"id": "j", "status": "running", "progress": 0.75, "stage": "generate"},
        {"id": "j", "status": "failed", "error_type": "ValueError", "error": "boom"},
    )
    out = io.StringIO()
    assert watch(rows, out=out, tty=False, interval=0) == 1
    lines = out.getvalue().splitlines()
    assert "25%  running: load model" in lines[1] and "75%  running: generate" in lines[2]
    assert lines[-1] == "job j failed: ValueError: boom"


def test_watch_redraws_one_line_on_a_terminal() -> None:
    rows = Rows(
        {"id": "j", "status": "running", "progress": 0.5, "stage": "s"},
        {"id": "j", "status": "succeeded", "result": 1},
    )
    out = io.StringIO()
    watch(rows, out=out, tty=True, interval=0)
    assert out.getvalue().startswith("\r[") and out.getvalue().count("\n") == 2


def test_watch_gives_up_after_its_timeout_with_exit_3() -> None:
    out = io.StringIO()
    assert watch(Rows({"id": "j", "status": "queued"}), out=out, tty=False, timeout=0.05) == 3


FRAMES = [
    {"frame_index": 0, "timestamp": 0.0, "values": {"cut": False, "hist": [1, 2]}},
    {"frame_index": 5, "timestamp": 0.2, "values": {"cut": True, "hist": [3, 4]}},
]


def test_frame_table_has_a_column_per_value_key() -> None:
    header, rows = frame_table(FRAMES)
    assert header == ["frame_index", "timestamp", "cut", "hist"]
    assert rows[1] == [5, 0.2, True, "[3, 4]"]


def test_results_exports_frames_as_csv() -> None:
    text = render_results({"result": None}, FRAMES, "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["frame_index"] for r in parsed] == ["0", "5"] and parsed[1]["cut"] == "True"


def test_results_prints_the_result_as_json() -> None:
    assert json.loads(render_results({"result": {"a": [1]}}, None, "json")) == {"a": [1]}
