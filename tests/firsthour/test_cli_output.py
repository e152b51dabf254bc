"""What the CLI prints: nothing cut silently, tracebacks as tracebacks, a readable table."""

from __future__ import annotations

import pytest

from worker.cli_output import (
    failed_table,
    format_failed_entry,
    format_info,
    format_status,
    progress_bar,
    shorten,
)

TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom'


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abc", 5, "abc"),
        ("abcdef", None, "abcdef"),
        ("abcdef", 3, "abc… [3 more characters]"),
    ],
)
def test_shorten_keeps_short_text_and_marks_what_it_cuts(
    text: str, limit: int | None, expected: str
) -> None:
    assert shorten(text, limit) == expected


def test_status_marks_a_long_result_as_cut_and_names_the_full_option() -> None:
    row = {"id": "j", "status": "succeeded", "result": {"text": "x" * 5000}}
    out = format_status(row, [])
    assert "more characters; --full shows all]" in out
    assert out.count("x") < 2100


def test_status_full_prints_the_whole_result() -> None:
    row = {"id": "j", "status": "succeeded", "result": {"text": "x" * 5000}}
    assert "x" * 5000 in format_status(row, [], full=True)


def test_status_full_prints_each_attempts_traceback_as_lines() -> None:
    row = {"id": "j", "status": "failed"}
    attempt = {"number": 1, "outcome": "error", "worker_id": "w", "traceback": TRACEBACK}
    out = format_status(row, [attempt], full=True)
    assert '      File "x.py", line 1' in out.splitlines()


def test_failed_table_has_a_header_row() -> None:
    out = failed_table([{"id": "a", "error": {"type": "ValueError", "message": "bad"}}])
    assert out.splitlines()[0].split() == ["ID", "FAILED", "AT", "TRIES", "QUEUE", "ERROR"]


def test_failed_table_cuts_only_to_the_given_width_with_an_ellipsis() -> None:
    entry = {"id": "a", "queue": "q", "error": {"type": "E", "message": "m" * 300}}
    cut = failed_table([entry], width=80).splitlines()[1]
    assert len(cut) <= 80 and cut.endswith("…")
    assert "m" * 300 in failed_table([entry], width=None)


def test_failed_show_prints_the_traceback_as_lines_not_an_escaped_string() -> None:
    entry = {"id": "a", "error": {"type": "ValueError", "message": "boom", "traceback": TRACEBACK}}
    out = format_failed_entry(entry)
    assert TRACEBACK in out and "\\n" not in out


def test_info_says_which_redis_and_database_it_reads() -> None:
    info = {
        "where": {"redis": "redis://127.0.0.1:6379/0", "database": "sqlite:////x.db"},
        "redis_down": "no worker",
        "jobs_by_status": {},
    }
    out = format_info(info, {}, "stoker:failed")
    assert "redis:    redis://127.0.0.1:6379/0" in out and "database: sqlite:////x.db" in out


@pytest.mark.parametrize(
    ("fraction", "stage", "expected"),
    [
        (0.0, "load", "[..........]   0%  load"),
        (0.5, None, "[#####.....]  50%"),
        (1.7, "done", "[##########] 100%  done"),
    ],
)
def test_progress_bar_shows_fraction_and_stage(
    fraction: float, stage: str | None, expected: str
) -> None:
    assert progress_bar(fraction, stage, width=10) == expected
